/**
 * One entry of an address list in IMAP ENVELOPE form (RFC 9051 §7.5.2): a
 * mailbox, or a group marker. A group start has only `mailbox` (the group
 * name, host null); a group end has all four null (RFC 3501 §7.4.2).
 */
export interface EnvelopeAddress {
  name: string | null;
  route: string | null;
  mailbox: string | null;
  host: string | null;
}

/** Placeholders Dovecot uses for an address without a local part or domain. */
export const missingMailbox = "MISSING_MAILBOX";
export const missingDomain = "MISSING_DOMAIN";

/**
 * Parses an RFC 5322 §3.4 address-list (raw, unfolded, encoded words left as
 * they are) into ENVELOPE addresses with group markers. Lenient like Dovecot:
 * a bare word becomes a mailbox with host MISSING_DOMAIN; a comment names an
 * address that has no display name. Never throws.
 *
 * @example
 * ```ts
 * parseAddressList('"Joe" <joe@x.test>, team: a@x.test;');
 * // [{name:"Joe",route:null,mailbox:"joe",host:"x.test"},
 * //  {name:null,route:null,mailbox:"team",host:null},
 * //  {name:null,route:null,mailbox:"a",host:"x.test"},
 * //  {name:null,route:null,mailbox:null,host:null}]
 * ```
 */
export function parseAddressList(text: string): EnvelopeAddress[] {
  const p = new AddressParser(tokenize(text));
  const out: EnvelopeAddress[] = [];
  while (p.peek()) {
    const t = p.peek()!;
    if (t.kind === "special" && (t.text === "," || t.text === ";")) {
      p.pos++;
      continue;
    }
    p.parseItem(out, false);
  }
  return out;
}

interface Token {
  kind: "word" | "quoted" | "comment" | "special";
  text: string;
  spaceBefore: boolean;
}

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let space = false;
  while (i < text.length) {
    const c = text[i];
    if (c === " " || c === "\t" || c === "\r" || c === "\n") {
      space = true;
      i++;
      continue;
    }
    let tok: Token;
    if (c === ")") {
      // RFC 5322 §3.2.2: ")" only closes a comment. A stray one is dropped; read as a word
      // it was empty, `i` never advanced and tokens piled up until memory ran out (fuzzing).
      i++;
      continue;
    }
    if (c === "(") {
      // RFC 5322 §3.2.2: comments nest and may contain quoted pairs.
      let depth = 0;
      let out = "";
      while (i < text.length) {
        const d = text[i++];
        if (d === "\\" && i < text.length) out += text[i++];
        else if (d === "(") {
          if (depth++ > 0) out += d;
        } else if (d === ")") {
          if (--depth === 0) break;
          out += d;
        } else out += d;
      }
      tok = { kind: "comment", text: out.trim(), spaceBefore: space };
    } else if (c === '"') {
      let out = "";
      i++;
      while (i < text.length && text[i] !== '"') {
        if (text[i] === "\\" && i + 1 < text.length) i++;
        out += text[i++];
      }
      i++;
      tok = { kind: "quoted", text: out, spaceBefore: space };
    } else if (c === "[") {
      const close = text.indexOf("]", i);
      const e = close < 0 ? text.length : close + 1;
      tok = { kind: "word", text: text.slice(i, e), spaceBefore: space };
      i = e;
    } else if ("<>@,;:.".includes(c)) {
      tok = { kind: "special", text: c, spaceBefore: space };
      i++;
    } else {
      const start = i;
      while (i < text.length && !' \t\r\n()"[<>@,;:.'.includes(text[i])) i++;
      tok = { kind: "word", text: text.slice(start, i), spaceBefore: space };
    }
    tokens.push(tok);
    space = false;
  }
  return tokens;
}

class AddressParser {
  pos = 0;
  constructor(private readonly tokens: Token[]) {}

  peek(): Token | undefined {
    return this.tokens[this.pos];
  }

  private isSpecial(t: Token | undefined, chars: string): boolean {
    return t !== undefined && t.kind === "special" && chars.includes(t.text);
  }

  /** Parses one mailbox or group (RFC 5322 §3.4) and appends it to `out`. */
  parseItem(out: EnvelopeAddress[], inGroup: boolean): void {
    const words: Token[] = [];
    let comment: string | null = null;
    for (let t = this.peek(); t; t = this.peek()) {
      if (t.kind === "comment") comment = t.text;
      else if (t.kind === "word" || t.kind === "quoted" || this.isSpecial(t, ".")) words.push(t);
      else break;
      this.pos++;
    }
    const t = this.peek();
    if (this.isSpecial(t, "<")) {
      this.pos++;
      const addr = this.parseAngleAddr();
      addr.name = phrase(words) || null;
      out.push(addr);
      return;
    }
    if (this.isSpecial(t, ":") && !inGroup) {
      this.pos++;
      // RFC 3501 §7.4.2: group start marker, members, then an all-NIL end marker.
      out.push({ name: null, route: null, mailbox: phrase(words), host: null });
      for (let u = this.peek(); u && !this.isSpecial(u, ";"); u = this.peek()) {
        if (this.isSpecial(u, ",:>")) this.pos++;
        else this.parseItem(out, true);
      }
      this.pos++;
      out.push({ name: null, route: null, mailbox: null, host: null });
      return;
    }
    if (this.isSpecial(t, "@")) {
      this.pos++;
      const domain = this.readDomain();
      if (domain.comment !== null) comment = domain.comment;
      out.push({
        name: comment || null,
        route: null,
        mailbox: joined(words) || missingMailbox,
        host: domain.text || missingDomain,
      });
      return;
    }
    if (words.length > 0) {
      out.push({ name: comment || null, route: null, mailbox: joined(words), host: missingDomain });
    }
    if (t && !this.isSpecial(t, ",;")) this.pos++; // a stray ">" or ":": skip it
  }

  /** After "<": [route ":"] local-part "@" domain ">" (RFC 5322 §4.4 obs-route allowed). */
  private parseAngleAddr(): EnvelopeAddress {
    let route: string | null = null;
    if (this.isSpecial(this.peek(), "@")) {
      let text = "";
      for (let t = this.peek(); t && !this.isSpecial(t, ":>"); t = this.peek()) {
        if (t.kind !== "comment") text += t.text;
        this.pos++;
      }
      if (this.isSpecial(this.peek(), ":")) {
        this.pos++;
        route = text;
      }
    }
    const local: Token[] = [];
    for (let t = this.peek(); t && !this.isSpecial(t, "@>,;"); t = this.peek()) {
      if (t.kind !== "comment") local.push(t);
      this.pos++;
    }
    let host = "";
    if (this.isSpecial(this.peek(), "@")) {
      this.pos++;
      for (let t = this.peek(); t && !this.isSpecial(t, ">,;"); t = this.peek()) {
        if (t.kind !== "comment") host += t.text;
        this.pos++;
      }
    }
    if (this.isSpecial(this.peek(), ">")) this.pos++;
    return {
      name: null,
      route,
      mailbox: joined(local) || missingMailbox,
      host: host || missingDomain,
    };
  }

  private readDomain(): { text: string; comment: string | null } {
    let text = "";
    let comment: string | null = null;
    for (let t = this.peek(); t && !this.isSpecial(t, ",;<>:"); t = this.peek()) {
      if (t.kind === "comment") comment = t.text;
      else if (text !== "" && t.spaceBefore && t.kind !== "special" && !text.endsWith(".")) break;
      else text += t.text;
      this.pos++;
    }
    return { text, comment };
  }
}

/** A display-name phrase: words as written, one space where the source had blanks. */
function phrase(words: Token[]): string {
  let out = "";
  for (const w of words) out += (out !== "" && w.spaceBefore ? " " : "") + w.text;
  return out;
}

/** A local part: words and dots run together. */
function joined(words: Token[]): string {
  return words.map((w) => w.text).join("");
}
