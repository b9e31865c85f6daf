/**
 * Inbound mail authentication on the MX: SPF (RFC 7208), DKIM (RFC 6376),
 * DMARC (RFC 7489) and ARC (RFC 8617) with mailauth, through an injectable
 * DNS resolver. The verdict becomes an `Authentication-Results` header
 * (RFC 8601) and a `Received-SPF` header; a DMARC `p=reject` failure is
 * refused at DATA.
 *
 * @example
 * ```ts
 * const v = await verifyInbound(raw, {
 *   ip: "192.0.2.1", helo: "mx.example.org", sender: "a@example.org",
 *   hostname: "localhost", resolver: new TestResolver(),
 * });
 * if (v.dmarcReject) throw new Error(v.dmarcReject);
 * ```
 */
import { authenticate } from "mailauth";
import { Buffer } from "node:buffer";
import { mailauthResolver, type Resolver } from "../dns.ts";
import { dnsCacheMs } from "../dns_cache.ts";
import { ExpiringMap } from "../expiring_map.ts";
import { blankLineAt } from "./addresses.ts";
import { log } from "../log.ts";

export interface InboundContext {
  /** The client's IP address (SPF). */
  ip: string;
  /** EHLO/HELO name (SPF for the null sender). */
  helo: string;
  /** MAIL FROM address; empty for the null sender. */
  sender: string;
  /** Our host name: the authserv-id of the header. */
  hostname: string;
  resolver: Resolver;
}

export interface InboundVerdict {
  /** Header fields to prepend (CRLF-terminated), or "" when verification could not run. */
  headers: string;
  /** Why the message must be refused (DMARC policy reject), or null. */
  dmarcReject: string | null;
}

/**
 * Removes `Authentication-Results` fields that claim to come from us
 * (RFC 8601 §5: an MTA MUST delete such fields arriving from outside, or a
 * sender could forge our verdict). Other fields are kept byte for byte.
 */
export function removeForgedResults(raw: Uint8Array, authservId: string): Uint8Array {
  // Only the header section is looked at (and decoded): the body is never touched.
  const blank = blankLineAt(raw);
  const head = new TextDecoder("latin1").decode(blank < 0 ? raw : raw.subarray(0, blank + 2));
  // Header fields with their continuation lines (RFC 5322 §2.2.3).
  const fields = head.match(/[^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*/g) ?? [];
  const ours = (f: string) => {
    const m = f.match(/^authentication-results:\s*([^;\s]+)/i);
    return m !== null && m[1].toLowerCase() === authservId.toLowerCase();
  };
  if (!fields.some(ours)) return raw;
  let dropped = 0;
  for (const f of fields) if (ours(f)) dropped += f.length;
  const out = new Uint8Array(raw.length - dropped);
  let from = 0, to = 0;
  for (const f of fields) {
    if (!ours(f)) {
      out.set(raw.subarray(from, from + f.length), to);
      to += f.length;
    }
    from += f.length;
  }
  out.set(raw.subarray(from), to);
  return out;
}

/**
 * The part of a message mailauth needs: all of it when it carries a DKIM or ARC signature (the
 * body hash is checked), otherwise only the header section. Unsigned, the verdict cannot depend
 * on the body (SPF and DMARC look at the envelope and the From field; DKIM and ARC have nothing
 * to verify), and parsing it is most of the work for a message of some size.
 */
export function partToVerify(raw: Uint8Array): Uint8Array {
  return splitForVerify(raw).part;
}

/** {@linkcode partToVerify}, with the header section's text when the message is unsigned. */
function splitForVerify(raw: Uint8Array): { part: Uint8Array; unsignedHead: string | null } {
  const blank = blankLineAt(raw);
  if (blank < 0) return { part: raw, unsignedHead: null };
  const end = blank + 4;
  const text = new TextDecoder("latin1").decode(raw.subarray(0, end));
  // RFC 6376 §3.5 DKIM-Signature, RFC 8617 §4.1 ARC-Seal/ARC-Message-Signature/ARC-Authentication-Results.
  if (/(?:^|\n)(?:dkim-signature|arc-[a-z-]+)[ \t]*:/i.test(text)) {
    return { part: raw, unsignedHead: null };
  }
  return { part: raw.subarray(0, end), unsignedHead: text };
}

/**
 * Verdicts of unsigned messages, kept as long as the DNS answers they came from
 * (src/dns_cache.ts). Without a DKIM or ARC signature a verdict is a function of the
 * connection (IP, HELO, MAIL FROM) and the From fields alone (see {@linkcode partToVerify}),
 * so a sender's next message gets the same one without mailauth's parse and SPF evaluation.
 * Only passing and neutral verdicts are kept: a DMARC failure is evaluated each time (its
 * `pct` sampling is random per message, RFC 7489 §6.6.4).
 */
export class VerdictCache extends ExpiringMap<InboundVerdict> {
  constructor(opts: { ttlMs?: number; maxEntries?: number; now?: () => number } = {}) {
    super({ ttlMs: opts.ttlMs ?? dnsCacheMs, maxEntries: opts.maxEntries ?? 1_000, now: opts.now });
  }
}

/** What an unsigned message's verdict depends on: the connection and its From fields. */
function verdictKey(head: string, ctx: InboundContext): string {
  // Every From field with its continuation lines (RFC 5322 §2.2.3), as sent.
  const from = head.match(/(?:^|\n)from[ \t]*:[^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*/gi) ?? [];
  return JSON.stringify([ctx.ip, ctx.helo, ctx.sender, ctx.hostname, from]);
}

/**
 * Verifies an inbound message; never throws (a failure to verify is logged and delivered).
 * With `cache`, an unsigned message's verdict may come from the same sender's earlier one.
 */
export async function verifyInbound(
  raw: Uint8Array,
  ctx: InboundContext,
  cache?: VerdictCache,
): Promise<InboundVerdict> {
  try {
    const { part, unsignedHead } = splitForVerify(raw);
    const key = cache && unsignedHead !== null ? verdictKey(unsignedHead, ctx) : null;
    const known = key === null ? undefined : cache!.get(key);
    if (known) return known;
    const result = await authenticate(Buffer.from(part.buffer, part.byteOffset, part.length), {
      ip: ctx.ip,
      helo: ctx.helo,
      sender: ctx.sender,
      mta: ctx.hostname,
      resolver: mailauthResolver(ctx.resolver),
      // Only our own view of the connection counts, never the message's Received headers.
      trustReceived: false,
      disableBimi: true,
    });
    const dmarc = result.dmarc;
    // RFC 7489 §6.3 p=reject (after pct and t=y, which mailauth applies): refuse at DATA.
    const reject = dmarc && dmarc.status?.result === "fail" && dmarc.policy === "reject";
    const verdict = {
      headers: result.headers,
      dmarcReject: reject
        ? `message refused by the DMARC policy of ${dmarc.domain}: the sender is not authenticated`
        : null,
    };
    if (key !== null && !(dmarc && dmarc.status?.result === "fail")) cache!.set(key, verdict);
    return verdict;
  } catch (e) {
    log.warn("mx.authentication-failed", { error: e });
    return { headers: "", dmarcReject: null };
  }
}
