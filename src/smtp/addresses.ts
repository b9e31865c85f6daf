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
  const end = blankLineAt(raw);
  const text = new TextDecoder().decode(end < 0 ? raw : raw.subarray(0, end));
  const lines = text.split(/\r\n(?![ \t])/);
  const want = name.toLowerCase() + ":";
  return lines
    .filter((l) => l.toLowerCase().startsWith(want))
    .map((l) => l.slice(want.length).replace(/\r\n[ \t]/g, " ").trim());
}

/**
 * Where the header section of a message ends: the offset of the CRLF CRLF that closes its last
 * field and the empty line (RFC 5322 §2.1), or -1 when the message has no empty line.
 */
export function blankLineAt(raw: Uint8Array): number {
  for (let i = raw.indexOf(0x0d); i >= 0 && i + 3 < raw.length; i = raw.indexOf(0x0d, i + 1)) {
    if (raw[i + 1] === 0x0a && raw[i + 2] === 0x0d && raw[i + 3] === 0x0a) return i;
  }
  return -1;
}

/** A MAIL FROM or RCPT TO argument, parsed (RFC 5321 §4.1.2). */
export interface EnvelopePath {
  /** The mailbox, without angle brackets or source route; "" for the null path `<>`. */
  address: string;
  /** The path as the client wrote it, brackets included (`<@a:b@c>`). */
  rawPath: string;
  /** ESMTP parameters, keyword upper-cased: `SIZE=123` → `{ SIZE: "123" }`, `SMTPUTF8` → `true`. */
  params: Record<string, string | true>;
}

/**
 * Parses the path and parameters after `MAIL FROM:` or `RCPT TO:`. Returns a
 * sentence for the client when the syntax is wrong. Lenient where real
 * clients are (a space after the colon, a path without brackets); strict
 * about the mailbox: one "@", a non-empty local part and domain, no spaces
 * or control characters. An "@" inside a quoted local part is refused here:
 * it is legal (RFC 5321 §4.1.2) but has no use beyond confusing relays.
 */
export function parseEnvelopePath(text: string): EnvelopePath | string {
  const rest = text.trimStart();
  let rawPath: string, after: string;
  if (rest.startsWith("<")) {
    let end = -1, quoted = false;
    for (let i = 1; i < rest.length; i++) {
      const c = rest[i];
      if (c === "\\" && quoted) i++;
      else if (c === '"') quoted = !quoted;
      else if (c === ">" && !quoted) {
        end = i;
        break;
      }
    }
    if (end < 0) return "the address is missing its closing >";
    rawPath = rest.slice(0, end + 1);
    after = rest.slice(end + 1);
    if (after && !after.startsWith(" ")) return "a space must follow the address";
  } else {
    const space = rest.indexOf(" ");
    rawPath = space < 0 ? rest : rest.slice(0, space);
    after = space < 0 ? "" : rest.slice(space);
  }
  let path = rawPath.startsWith("<") ? rawPath.slice(1, -1) : rawPath;
  // A source route (@a,@b:user@domain) is syntax the client may send; the callers decide.
  if (path.startsWith("@")) {
    const colon = path.indexOf(":");
    if (colon < 0) return "the source route has no colon";
    path = path.slice(colon + 1);
  }
  const params: Record<string, string | true> = {};
  for (const word of after.split(" ")) {
    if (!word) continue;
    const eq = word.indexOf("=");
    const key = (eq < 0 ? word : word.slice(0, eq)).toUpperCase();
    if (!/^[A-Z0-9][A-Z0-9-]*$/.test(key)) return `malformed parameter ${word}`;
    params[key] = eq < 0 ? true : word.slice(eq + 1);
  }
  if (path === "") return { address: "", rawPath, params };
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x20\x7f]/.test(path)) return "the address has a space or a control character";
  const at = path.indexOf("@");
  if (at <= 0 || at !== path.lastIndexOf("@") || at === path.length - 1) {
    return "the address must be local-part@domain";
  }
  return { address: path, rawPath, params };
}
