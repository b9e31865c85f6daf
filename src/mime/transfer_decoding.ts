/**
 * Content-Transfer-Encoding decoders (RFC 2045 §6). Lenient: characters
 * outside the alphabet are skipped and broken escapes kept, never thrown on.
 */

const base64Value = new Int8Array(256).fill(-1);
for (let i = 0; i < 64; i++) {
  base64Value["ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".charCodeAt(i)] = i;
}
// RFC 4648 §5: accept the URL-safe alphabet too; some senders use it in encoded words.
base64Value[0x2d] = 62;
base64Value[0x5f] = 63;

/**
 * Decodes base64 (RFC 2045 §6.8), ignoring line breaks and any other
 * character outside the alphabet, and stopping at the first "=" pad.
 *
 * @example
 * ```ts
 * decodeBase64(new TextEncoder().encode("SGk=\r\n")); // Uint8Array "Hi"
 * ```
 */
export function decodeBase64(bytes: Uint8Array, start = 0, end = bytes.length): Uint8Array {
  const out = new Uint8Array(Math.ceil(((end - start) * 3) / 4));
  let n = 0;
  let acc = 0;
  let bits = 0;
  for (let i = start; i < end; i++) {
    const c = bytes[i];
    if (c === 0x3d) break; // RFC 2045 §6.8: "=" only pads the end
    const v = base64Value[c];
    if (v < 0) continue;
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (acc >> bits) & 0xff;
    }
  }
  return out.subarray(0, n);
}

/**
 * The length decodeBase64() would return, without allocating.
 *
 * @example
 * ```ts
 * base64DecodedLength(new TextEncoder().encode("SGk=")); // 2
 * ```
 */
export function base64DecodedLength(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let chars = 0;
  for (let i = start; i < end; i++) {
    const c = bytes[i];
    if (c === 0x3d) break;
    if (base64Value[c] >= 0) chars++;
  }
  return Math.floor((chars * 6) / 8);
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/**
 * Decodes quoted-printable (RFC 2045 §6.7): "=XX" escapes, soft line breaks
 * ("=" at the end of a line) removed, and whitespace at the end of a line
 * dropped (rule 3: it may have been added in transport). Line breaks stay as written.
 *
 * @example
 * ```ts
 * decodeQuotedPrintable(new TextEncoder().encode("Caf=C3=A9=\r\n!")); // "Café!" as UTF-8
 * ```
 */
export function decodeQuotedPrintable(
  bytes: Uint8Array,
  start = 0,
  end = bytes.length,
): Uint8Array {
  const out = new Uint8Array(end - start);
  let n = 0;
  let i = start;
  while (i < end) {
    const c = bytes[i];
    if (c === 0x3d) {
      const h1 = i + 1 < end ? hexValue(bytes[i + 1]) : -1;
      const h2 = i + 2 < end ? hexValue(bytes[i + 2]) : -1;
      if (h1 >= 0 && h2 >= 0) {
        out[n++] = (h1 << 4) | h2;
        i += 3;
        continue;
      }
      // Soft line break: "=" then optional transport whitespace, then the line end.
      let j = i + 1;
      while (j < end && (bytes[j] === 0x20 || bytes[j] === 0x09)) j++;
      if (j >= end || bytes[j] === 0x0a || (bytes[j] === 0x0d && bytes[j + 1] === 0x0a)) {
        i = j >= end ? end : bytes[j] === 0x0a ? j + 1 : j + 2;
        continue;
      }
      out[n++] = c; // a broken escape is kept as written (RFC 2045 §6.7 note 1)
      i++;
      continue;
    }
    if (c === 0x20 || c === 0x09) {
      // Rule 3: trailing whitespace before a line end is dropped.
      let j = i;
      while (j < end && (bytes[j] === 0x20 || bytes[j] === 0x09)) j++;
      if (j >= end || bytes[j] === 0x0a || (bytes[j] === 0x0d && bytes[j + 1] === 0x0a)) {
        i = j;
        continue;
      }
      while (i < j) out[n++] = bytes[i++];
      continue;
    }
    out[n++] = c;
    i++;
  }
  return out.subarray(0, n);
}
