/**
 * Modified UTF-7 for mailbox names (RFC 3501 §5.1.3), spoken by IMAP4rev1
 * clients that have not enabled UTF8=ACCEPT.
 *
 * @example
 * ```ts
 * decodeMutf7("Entw&APw-rfe"); // "Entwürfe"
 * encodeMutf7("日本語"); // "&ZeVnLIqe-"
 * ```
 * @module
 */

import { ProtocolError } from "../../src/errors.ts";

// RFC 3501 §5.1.3: modified BASE64 uses "," in place of "/".
const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";
const VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) VALUE[ALPHABET.charCodeAt(i)] = i;

function isPrintable(code: number): boolean {
  return code >= 0x20 && code <= 0x7e;
}

/**
 * Encode a mailbox name (any Unicode string) as modified UTF-7.
 *
 * @example
 * ```ts
 * encodeMutf7("Entwürfe & Co"); // "Entw&APw-rfe &- Co"
 * ```
 */
export function encodeMutf7(name: string): string {
  let out = "";
  let i = 0;
  while (i < name.length) {
    const code = name.charCodeAt(i);
    if (code === 0x26) {
      out += "&-";
      i++;
    } else if (isPrintable(code)) {
      // Copy the whole printable run at once.
      let j = i + 1;
      while (j < name.length) {
        const c = name.charCodeAt(j);
        if (!isPrintable(c) || c === 0x26) break;
        j++;
      }
      out += name.slice(i, j);
      i = j;
    } else {
      // A run of non-printable UTF-16 units goes into one shifted sequence.
      let j = i;
      while (j < name.length && !isPrintable(name.charCodeAt(j))) j++;
      out += "&" + base64Units(name, i, j) + "-";
      i = j;
    }
  }
  return out;
}

function base64Units(s: string, from: number, to: number): string {
  let out = "";
  let bits = 0;
  let nbits = 0;
  for (let i = from; i < to; i++) {
    bits = (bits << 16) | s.charCodeAt(i);
    nbits += 16;
    while (nbits >= 6) {
      nbits -= 6;
      out += ALPHABET[(bits >> nbits) & 0x3f];
    }
    bits &= (1 << nbits) - 1;
  }
  if (nbits > 0) out += ALPHABET[(bits << (6 - nbits)) & 0x3f];
  return out;
}

function malformed(name: string, why: string): ProtocolError {
  return new ProtocolError(
    "BAD",
    `Mailbox name ${JSON.stringify(name)} is not valid modified UTF-7 (${why}); ` +
      "encode it as RFC 3501 §5.1.3 describes or enable UTF8=ACCEPT",
  );
}

/**
 * Decode a modified UTF-7 mailbox name. Rejects what RFC 3501 §5.1.3 rules
 * out, so that every name has exactly one encoding: raw non-printable or
 * 8-bit characters, an unterminated shift, bad BASE64, non-zero padding
 * bits, unpaired surrogates and printable ASCII encoded in BASE64.
 *
 * @throws {ProtocolError} status `BAD` for malformed input.
 * @example
 * ```ts
 * decodeMutf7("&ZeVnLIqe-"); // "日本語"
 * ```
 */
export function decodeMutf7(text: string): string {
  let out = "";
  let i = 0;
  while (i < text.length) {
    const code = text.charCodeAt(i);
    if (!isPrintable(code)) throw malformed(text, "raw non-ASCII or control character");
    if (code !== 0x26) {
      let j = i + 1;
      while (j < text.length) {
        const c = text.charCodeAt(j);
        if (c === 0x26 || !isPrintable(c)) break;
        j++;
      }
      out += text.slice(i, j);
      i = j;
      continue;
    }
    const end = text.indexOf("-", i + 1);
    if (end < 0) throw malformed(text, "'&' without closing '-'");
    if (end === i + 1) {
      out += "&";
      i = end + 1;
      continue;
    }
    out += decodeShifted(text, i + 1, end);
    i = end + 1;
  }
  return out;
}

function decodeShifted(text: string, from: number, to: number): string {
  const units: number[] = [];
  let bits = 0;
  let nbits = 0;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    const v = c < 128 ? VALUE[c] : -1;
    if (v < 0) throw malformed(text, `'${text[i]}' is not modified BASE64`);
    bits = (bits << 6) | v;
    nbits += 6;
    if (nbits >= 16) {
      nbits -= 16;
      units.push((bits >> nbits) & 0xffff);
      bits &= (1 << nbits) - 1;
    }
  }
  if (nbits >= 6 || bits !== 0) throw malformed(text, "BASE64 sequence has leftover bits");
  let out = "";
  for (let k = 0; k < units.length; k++) {
    const u = units[k];
    if (isPrintable(u)) throw malformed(text, "printable ASCII must not be BASE64-encoded");
    if (u >= 0xd800 && u <= 0xdbff) {
      const low = units[k + 1];
      if (low === undefined || low < 0xdc00 || low > 0xdfff) {
        throw malformed(text, "unpaired UTF-16 surrogate");
      }
      out += String.fromCharCode(u, low);
      k++;
    } else if (u >= 0xdc00 && u <= 0xdfff) {
      throw malformed(text, "unpaired UTF-16 surrogate");
    } else {
      out += String.fromCharCode(u);
    }
  }
  return out;
}
