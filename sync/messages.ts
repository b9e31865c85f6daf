/**
 * What a home box and a phone say to each other inside sync envelopes
 * (sync/envelope.ts), after reassembly (sync/parts.ts). One message is a
 * kind byte followed by its body:
 *
 * - `1` sync: a frame of the account document's sync (sync/peer.ts);
 * - `2` welcome (home → new phone, JSON): the account, its identity and the home's keys;
 * - `3` unlock (phone → home, JSON): the account identity, for a home box that was restarted
 *   and has not been unlocked since (docs/sync.md);
 * - `4` state (home → phone, JSON): "locked" when the home cannot open the document yet.
 *
 * @example
 * ```ts
 * const bytes = encodeMessage({ kind: "sync", frame });
 * const msg = decodeMessage(bytes); // throws RangeError on anything malformed
 * ```
 */

/** What a new phone receives when pairing completes. */
export interface Welcome {
  /** The home box's id for the account (opaque). */
  account: string;
  address: string;
  /** The account's age identity (`AGE-SECRET-KEY-1…`): the phone opens sealed mail with it. */
  identity: string;
  /** The home box's envelope recipient (`age1…`) and Ed25519 key, for envelopes to it. */
  homeRecipient: string;
  homeKey: string;
  homeId: string;
}

export type SyncMessage =
  | { kind: "sync"; frame: Uint8Array }
  | { kind: "welcome"; welcome: Welcome }
  | { kind: "unlock"; account: string; identity: string }
  | { kind: "state"; state: "locked" | "unknown-device" };

const kinds = { sync: 1, welcome: 2, unlock: 3, state: 4 } as const;

export function encodeMessage(m: SyncMessage): Uint8Array {
  const body = m.kind === "sync" ? m.frame : new TextEncoder().encode(JSON.stringify(
    m.kind === "welcome"
      ? m.welcome
      : m.kind === "unlock"
      ? { account: m.account, identity: m.identity }
      : { state: m.state },
  ));
  const out = new Uint8Array(body.length + 1);
  out[0] = kinds[m.kind];
  out.set(body, 1);
  return out;
}

function json(body: Uint8Array): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch {
    throw new RangeError("sync message body is not JSON");
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new RangeError("sync message body is not an object");
  }
  return v as Record<string, unknown>;
}

function str(o: Record<string, unknown>, k: string): string {
  if (typeof o[k] !== "string") throw new RangeError(`sync message field ${k} is missing`);
  return o[k] as string;
}

/** Decodes a message; throws RangeError on anything malformed. */
export function decodeMessage(bytes: Uint8Array): SyncMessage {
  if (bytes.length === 0) throw new RangeError("empty sync message");
  const body = bytes.subarray(1);
  switch (bytes[0]) {
    case kinds.sync:
      return { kind: "sync", frame: body.slice() };
    case kinds.welcome: {
      const o = json(body);
      return {
        kind: "welcome",
        welcome: {
          account: str(o, "account"),
          address: str(o, "address"),
          identity: str(o, "identity"),
          homeRecipient: str(o, "homeRecipient"),
          homeKey: str(o, "homeKey"),
          homeId: str(o, "homeId"),
        },
      };
    }
    case kinds.unlock: {
      const o = json(body);
      return { kind: "unlock", account: str(o, "account"), identity: str(o, "identity") };
    }
    case kinds.state: {
      const state = str(json(body), "state");
      if (state !== "locked" && state !== "unknown-device") {
        throw new RangeError("unknown sync state");
      }
      return { kind: "state", state };
    }
    default:
      throw new RangeError(`unknown sync message kind ${bytes[0]}`);
  }
}
