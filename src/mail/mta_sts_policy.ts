/**
 * The MTA-STS policy a domain publishes (RFC 8461): the policy file the edge
 * serves at `https://mta-sts.DOMAIN/.well-known/mta-sts.txt` (§3.2) and the
 * id of the `_mta-sts` TXT record (§3.1), derived from the policy text so it
 * changes exactly when the policy does. The edge serves the file and
 * `hearth dns` prints the record: both call these functions.
 *
 * @example
 * ```ts
 * const text = mtaStsPolicyText({ mode: "testing", mx: ["mx.example.org"] });
 * const record = `v=STSv1; id=${await mtaStsPolicyId(text)}`;
 * ```
 */
import { sha256, toHex } from "../encoding.ts";

export type MtaStsMode = "enforce" | "testing";

/** Policy lifetimes in seconds (RFC 8461 §3.2 `max_age`, at most 31557600). */
export const mtaStsMaxAge: Record<MtaStsMode, number> = {
  // A day while testing, so a mistake is forgotten quickly; a week once enforced (§3.2 suggests
  // weeks or more, which would keep a broken policy cached for as long).
  testing: 86_400,
  enforce: 604_800,
};

export interface MtaStsPolicy {
  mode: MtaStsMode;
  /** The MX host names senders may deliver to (`mx:` lines; `*.` wildcards allowed). */
  mx: string[];
  /** Default: {@linkcode mtaStsMaxAge} of the mode. */
  maxAgeSeconds?: number;
}

/** The policy file: `key: value` lines ending in CRLF (RFC 8461 §3.2). */
export function mtaStsPolicyText(policy: MtaStsPolicy): string {
  const lines = [
    "version: STSv1",
    `mode: ${policy.mode}`,
    ...policy.mx.map((mx) => `mx: ${mx.replace(/\.$/, "").toLowerCase()}`),
    `max_age: ${policy.maxAgeSeconds ?? mtaStsMaxAge[policy.mode]}`,
  ];
  return lines.map((l) => l + "\r\n").join("");
}

/**
 * The record's `id`: 1 to 32 letters and digits (RFC 8461 §3.1). Twenty hex
 * digits of the policy's SHA-256, so publishing a changed policy changes it.
 */
export async function mtaStsPolicyId(policyText: string): Promise<string> {
  return toHex(await sha256(new TextEncoder().encode(policyText))).slice(0, 20);
}
