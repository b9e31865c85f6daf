import iconv from "iconv-lite";
import { Buffer } from "node:buffer";
import { isUtf8, latin1 } from "./octets.ts";

const utf8Lenient = new TextDecoder("utf-8");

/**
 * Decodes octets in a MIME charset (RFC 2046 §4.1.2) to a string. UTF-8 and
 * US-ASCII take a fast path; other charsets go through iconv-lite. An unknown
 * or empty charset keeps each octet as ISO-8859-1: never throws.
 *
 * @example
 * ```ts
 * decodeCharset(new Uint8Array([0x43, 0x61, 0x66, 0xe9]), "ISO-8859-1"); // "Café"
 * decodeCharset(new Uint8Array([0x41]), "x-unknown"); // "A"
 * ```
 */
export function decodeCharset(bytes: Uint8Array, charset: string): string {
  // RFC 2231 §5: a language may follow the charset in an encoded word ("utf-8*en").
  const name = charset.split("*")[0].trim().toLowerCase();
  if (name === "utf-8" || name === "utf8") return utf8Lenient.decode(bytes);
  if (name === "us-ascii" || name === "ascii" || name === "") {
    // Mislabelled 8-bit text is common: prefer UTF-8 when it fits, else latin1.
    return isUtf8(bytes) ? utf8Lenient.decode(bytes) : latin1(bytes);
  }
  try {
    if (iconv.encodingExists(name)) return iconv.decode(Buffer.from(bytes), name);
  } catch {
    // fall through: a broken table must not break parsing
  }
  return latin1(bytes);
}
