/**
 * Line-ending normalisation for stored messages: Internet messages use CRLF
 * (RFC 5322 §2.1, RFC 5321 §2.3.8), so a bare CR or a bare LF becomes CRLF.
 *
 * @example
 * ```ts
 * normaliseLineEndings(new TextEncoder().encode("a\nb\rc\r\n")); // "a\r\nb\r\nc\r\n"
 * ```
 */

/** Returns the message with every bare CR or LF replaced by CRLF (the input itself when none). */
export function normaliseLineEndings(raw: Uint8Array): Uint8Array {
  let bare = 0;
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0x0a && (i === 0 || raw[i - 1] !== 0x0d)) bare++;
    else if (raw[i] === 0x0d && raw[i + 1] !== 0x0a) bare++;
  }
  if (!bare) return raw;
  const out = new Uint8Array(raw.length + bare);
  let j = 0;
  for (let i = 0; i < raw.length; i++) {
    const b = raw[i];
    if (b === 0x0d) {
      out[j++] = 0x0d;
      out[j++] = 0x0a;
      if (raw[i + 1] === 0x0a) i++;
    } else if (b === 0x0a) {
      out[j++] = 0x0d;
      out[j++] = 0x0a;
    } else out[j++] = b;
  }
  return out.subarray(0, j);
}
