/**
 * Address checks at RCPT and MAIL: Hearth is never an open relay, so every
 * address form that older MTAs interpret as routing is refused outright.
 *
 * @example
 * ```ts
 * recipientSyntaxProblem("a%b@hearth.localhost"); // "percent-hack routing (…) is not accepted"
 * domainOf("Me@Hearth.Localhost"); // "hearth.localhost"
 * ```
 */

/** The lower-cased domain of an address (empty when it has none). */
export function domainOf(address: string): string {
  const at = address.lastIndexOf("@");
  return at < 0 ? "" : address.slice(at + 1).toLowerCase();
}

/**
 * Why an envelope address is refused as a routing or ambiguous form, or null
 * when it is a plain `local@domain`. `rawCommand` is the command line as the
 * client sent it, since the library strips source routes before we see them.
 */
export function recipientSyntaxProblem(address: string, rawPath?: string): string | null {
  // RFC 5321 §4.1.2 and Appendix C: source routes must be accepted by the syntax but
  // "SHOULD be ignored"; a relay-free box has no use for them, so they are refused.
  if (rawPath !== undefined && /^<?\s*@/.test(rawPath.trim())) {
    return "source routes (@host:user@domain) are not accepted";
  }
  if (address.startsWith("@")) return "source routes (@host:user@domain) are not accepted";
  const at = address.lastIndexOf("@");
  if (at <= 0) return "the address needs a local part and a domain";
  const local = address.slice(0, at);
  // RFC 5321 §4.1.2 Quoted-string: legal, but the classic way to smuggle "@" or "%" into
  // a local part that a downstream MTA re-parses.
  if (local.includes('"')) return "quoted local parts are not accepted";
  // The "percent hack" (RFC 1123 §5.2.16) and UUCP bang paths route through the receiver.
  if (local.includes("%")) return "percent-hack routing (user%host@domain) is not accepted";
  if (local.includes("!")) return "bang paths (host!user@domain) are not accepted";
  if (local.includes("@") || local.includes("\\")) {
    return "the local part has a forbidden character";
  }
  return null;
}

/**
 * The addresses in a `From:` (or `Sender:`) header value: `Name <a@b>`,
 * bare `a@b`, and lists of them. Comments and quoted display names are
 * skipped so that `"x@evil" <me@home>` yields only `me@home`.
 */
export function headerAddresses(value: string): string[] {
  // Drop quoted strings and comments first: they may contain "<", "@" or ",".
  const plain = value.replace(/"(?:[^"\\]|\\.)*"/g, " ").replace(/\((?:[^()\\]|\\.)*\)/g, " ");
  const out: string[] = [];
  for (const part of plain.split(",")) {
    const angle = part.match(/<([^<>]*)>/);
    const addr = (angle ? angle[1] : part).trim();
    if (addr) out.push(addr.toLowerCase());
  }
  return out;
}

/**
 * The unfolded values of every header field named `name` in a message's
 * header section (RFC 5322 §2.2.3 unfolding).
 */
export function headerValues(raw: Uint8Array, name: string): string[] {
  const text = new TextDecoder().decode(raw.subarray(0, headerEnd(raw)));
  const lines = text.split(/\r\n(?![ \t])/);
  const want = name.toLowerCase() + ":";
  return lines
    .filter((l) => l.toLowerCase().startsWith(want))
    .map((l) => l.slice(want.length).replace(/\r\n[ \t]/g, " ").trim());
}

/** Offset of the end of the header section (before the empty line), or the whole message. */
function headerEnd(raw: Uint8Array): number {
  for (let i = 0; i + 3 < raw.length; i++) {
    if (raw[i] === 0x0d && raw[i + 1] === 0x0a && raw[i + 2] === 0x0d && raw[i + 3] === 0x0a) {
      return i;
    }
  }
  return raw.length;
}
