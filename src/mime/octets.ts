/**
 * Turning header octets into JavaScript strings. Headers are ASCII, UTF-8
 * (RFC 6532) or, in old mail, some unlabelled 8-bit charset.
 */

const utf8Strict = new TextDecoder("utf-8", { fatal: true });
const latin1Decoder = new TextDecoder("latin1");

/**
 * Octets as a string, one character per octet (ISO-8859-1).
 *
 * @example
 * ```ts
 * latin1(new Uint8Array([0x48, 0xe9])); // "Hé"
 * ```
 */
export function latin1(bytes: Uint8Array, start = 0, end = bytes.length): string {
  if (end - start < 64) {
    let out = "";
    for (let i = start; i < end; i++) out += String.fromCharCode(bytes[i]);
    return out;
  }
  // The WHATWG "latin1" label is windows-1252, which remaps 0x80-0x9f: do those by hand.
  let has8bit = false;
  for (let i = start; i < end; i++) {
    if (bytes[i] >= 0x80) {
      has8bit = true;
      break;
    }
  }
  if (!has8bit) return latin1Decoder.decode(bytes.subarray(start, end));
  let out = "";
  for (let i = start; i < end; i += 8192) {
    out += String.fromCharCode(...bytes.subarray(i, Math.min(end, i + 8192)));
  }
  return out;
}

/**
 * Header octets as a string: UTF-8 when they are valid UTF-8 (RFC 6532),
 * ISO-8859-1 otherwise, so that no octet is ever lost or rejected.
 *
 * @example
 * ```ts
 * headerText(new TextEncoder().encode("Grüße")); // "Grüße"
 * headerText(new Uint8Array([0x47, 0xfc])); // "Gü"
 * ```
 */
export function headerText(bytes: Uint8Array, start = 0, end = bytes.length): string {
  if (!has8bit(bytes, start, end)) return latin1(bytes, start, end);
  try {
    return utf8Strict.decode(bytes.subarray(start, end));
  } catch {
    return latin1(bytes, start, end);
  }
}

/**
 * Whether octets are valid UTF-8 (ASCII included).
 *
 * @example
 * ```ts
 * isUtf8(new Uint8Array([0xc3, 0xa9])); // true
 * ```
 */
export function isUtf8(bytes: Uint8Array): boolean {
  if (!has8bit(bytes, 0, bytes.length)) return true;
  try {
    utf8Strict.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

function has8bit(bytes: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (bytes[i] >= 0x80) return true;
  return false;
}
