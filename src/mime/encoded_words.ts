import { decodeCharset } from "./charset.ts";
import { decodeBase64 } from "./transfer_decoding.ts";

const encodedWord = /=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=/g;

/**
 * Decodes RFC 2047 encoded words in a header value. Adjacent encoded words
 * are joined without the blanks between them (§6.2), and their octets are
 * joined before charset decoding so a character split across two words
 * survives. Unknown charsets keep octets as ISO-8859-1; never throws.
 *
 * @example
 * ```ts
 * decodeEncodedWords("=?UTF-8?Q?Ren=C3=A9e?= =?UTF-8?B?IE0=?="); // "Renée M"
 * ```
 */
export function decodeEncodedWords(text: string): string {
  if (!text.includes("=?")) return text;
  let out = "";
  let last = 0;
  let pendingCharset = "";
  let pending: Uint8Array[] = [];
  const flush = () => {
    if (pending.length === 0) return;
    out += decodeCharset(concat(pending), pendingCharset);
    pending = [];
  };
  for (const m of text.matchAll(encodedWord)) {
    const between = text.slice(last, m.index);
    const adjacent = last > 0 && pending.length > 0 && /^[ \t\r\n]*$/.test(between);
    const charset = m[1];
    if (!adjacent) {
      flush();
      out += between;
    } else if (charset.toLowerCase() !== pendingCharset.toLowerCase()) {
      flush(); // §6.2: the blanks between adjacent encoded words are dropped
    }
    pendingCharset = charset;
    pending.push(decodeWordText(m[3], m[2]));
    last = m.index + m[0].length;
  }
  flush();
  return out + text.slice(last);
}

function decodeWordText(text: string, encoding: string): Uint8Array {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i) & 0xff;
  if (encoding === "B" || encoding === "b") return decodeBase64(bytes);
  // RFC 2047 §4.2: "_" is a space, "=XX" an octet.
  const out = new Uint8Array(bytes.length);
  let n = 0;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i];
    if (c === 0x5f) out[n++] = 0x20;
    else if (c === 0x3d && i + 2 < bytes.length && isHex(bytes[i + 1]) && isHex(bytes[i + 2])) {
      out[n++] = parseInt(text.slice(i + 1, i + 3), 16);
      i += 2;
    } else out[n++] = c;
  }
  return out.subarray(0, n);
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let n = 0;
  for (const p of parts) {
    out.set(p, n);
    n += p.length;
  }
  return out;
}
