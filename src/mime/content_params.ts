import { decodeCharset } from "./charset.ts";
import { decodeEncodedWords } from "./encoded_words.ts";

/** A structured MIME header value: `text/plain; charset=utf-8` or `attachment; filename=a`. */
export interface ContentValue {
  /** The leading value as written, comments removed and trimmed ("text/plain", "attachment"). */
  value: string;
  /**
   * Parameters as BODYSTRUCTURE shows them, matching Dovecot: plain parameters
   * in order, then RFC 2231 parameters with their continuations joined, named
   * `name*` and still percent-encoded when extended.
   */
  imapParams: [string, string][];
  /** Parameters by lower-cased name, decoded to Unicode (RFC 2231, and RFC 2047 words as sent by some clients). */
  params: Map<string, string>;
}

/**
 * Parses Content-Type or Content-Disposition (RFC 2045 §5.1, RFC 2183 §2)
 * with RFC 2231 continuations and charsets. Lenient: never throws.
 *
 * @example
 * ```ts
 * const v = parseContentValue('text/plain; charset="utf-8"');
 * v.value; // "text/plain"
 * v.params.get("charset"); // "utf-8"
 * ```
 */
export function parseContentValue(text: string): ContentValue {
  const s = new Scanner(text);
  s.skipCfws();
  const value = s.readUntil(";").trim();
  const plain: [string, string][] = [];
  const extended = new Map<string, { name: string; segments: Segment[] }>();
  while (s.pos < text.length) {
    s.pos++; // ";"
    s.skipCfws();
    const name = s.readToken("=;").trim();
    s.skipCfws();
    if (text[s.pos] !== "=") {
      s.readUntil(";");
      continue;
    }
    s.pos++;
    s.skipCfws();
    const v = text[s.pos] === '"' ? s.readQuoted() : s.readToken(";").trim();
    s.readUntil(";");
    if (name === "") continue;
    // RFC 2231 §3 and §4: name*N, name*N* and name* forms.
    const m = /^(.+?)\*(?:(\d+))?(\*)?$/.exec(name);
    if (!m) {
      plain.push([name, v]);
      continue;
    }
    const base = m[1];
    const index = m[2] === undefined ? 0 : Number(m[2]);
    const encoded = m[2] === undefined || m[3] !== undefined;
    const key = base.toLowerCase();
    let entry = extended.get(key);
    if (!entry) extended.set(key, entry = { name: base, segments: [] });
    entry.segments.push({ index, encoded, text: v });
  }
  const imapParams: [string, string][] = [...plain];
  const params = new Map<string, string>();
  for (const [name, v] of plain) {
    const key = name.toLowerCase();
    if (!params.has(key)) params.set(key, decodeEncodedWords(v));
  }
  for (const [key, entry] of extended) {
    const segments = entry.segments.sort((a, b) => a.index - b.index);
    const firstEncoded = segments[0].encoded;
    imapParams.push([
      firstEncoded ? entry.name + "*" : entry.name,
      segments.map((seg) => seg.text).join(""),
    ]);
    params.set(key, decodeSegments(segments));
  }
  return { value, imapParams, params };
}

interface Segment {
  index: number;
  encoded: boolean;
  text: string;
}

function decodeSegments(segments: Segment[]): string {
  let charset = "us-ascii";
  const bytes: number[] = [];
  segments.forEach((seg, i) => {
    let t = seg.text;
    if (seg.encoded && i === 0) {
      // RFC 2231 §4: charset'language'value in the first segment only.
      const q1 = t.indexOf("'");
      const q2 = q1 < 0 ? -1 : t.indexOf("'", q1 + 1);
      if (q2 >= 0) {
        charset = t.slice(0, q1) || "us-ascii";
        t = t.slice(q2 + 1);
      }
    }
    for (let k = 0; k < t.length; k++) {
      const c = t.charCodeAt(k);
      if (seg.encoded && c === 0x25 && /^[0-9a-fA-F]{2}$/.test(t.slice(k + 1, k + 3))) {
        bytes.push(parseInt(t.slice(k + 1, k + 3), 16));
        k += 2;
      } else if (c < 0x80) bytes.push(c);
      else for (const b of new TextEncoder().encode(t[k])) bytes.push(b);
    }
  });
  return decodeCharset(new Uint8Array(bytes), charset);
}

class Scanner {
  pos = 0;
  constructor(readonly text: string) {}

  /** Skips blanks and RFC 5322 §3.2.2 comments, which may nest. */
  skipCfws(): void {
    const t = this.text;
    while (this.pos < t.length) {
      const c = t[this.pos];
      if (c === " " || c === "\t" || c === "\r" || c === "\n") this.pos++;
      else if (c === "(") this.skipComment();
      else break;
    }
  }

  skipComment(): void {
    const t = this.text;
    let depth = 0;
    while (this.pos < t.length) {
      const c = t[this.pos++];
      if (c === "\\") this.pos++;
      else if (c === "(") depth++;
      else if (c === ")" && --depth === 0) return;
    }
  }

  /** Reads up to (not including) a stop character, dropping comments outside quotes. */
  readUntil(stops: string): string {
    const t = this.text;
    let out = "";
    while (this.pos < t.length && !stops.includes(t[this.pos])) {
      const c = t[this.pos];
      if (c === "(") this.skipComment();
      else if (c === '"') out += this.readQuoted();
      else {
        out += c;
        this.pos++;
      }
    }
    return out;
  }

  /** Reads a token: up to a stop character, a blank or a comment. */
  readToken(stops: string): string {
    const t = this.text;
    const start = this.pos;
    while (this.pos < t.length) {
      const c = t[this.pos];
      if (stops.includes(c) || c === " " || c === "\t" || c === "(") break;
      this.pos++;
    }
    return t.slice(start, this.pos);
  }

  /** Reads a quoted string (RFC 5322 §3.2.4), returning its content unescaped. */
  readQuoted(): string {
    const t = this.text;
    let out = "";
    this.pos++;
    while (this.pos < t.length) {
      const c = t[this.pos++];
      if (c === '"') break;
      if (c === "\\" && this.pos < t.length) out += t[this.pos++];
      else out += c;
    }
    return out;
  }
}
