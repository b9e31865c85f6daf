/**
 * The LAN path of phone sync (docs/sync.md, "On the LAN"): a paired phone
 * posts the same sealed envelopes it would post to its home's relay mailbox
 * straight to the home box's HTTP port, and takes the home's envelopes for
 * it from the answer. Both bodies are a list of envelopes, each `u32 length |
 * sealed envelope` (sync/envelope.ts); nothing else travels in clear, not
 * even the device id: someone on the LAN learns sizes and times only.
 *
 * The first envelope of a request carries a `lan` message (a random nonce and
 * the phone's clock): it names the device (the home opens it and checks the
 * signature against the paired key), and the home refuses a nonce it has
 * seen or a date far from its own, so a recorded request cannot be replayed.
 * The first envelope of the answer echoes the nonce, so the phone takes no
 * answer that was recorded for another request.
 *
 * @example
 * ```ts
 * const body = encodeEnvelopes([hello, ...envelopes]);
 * const back = decodeEnvelopes(new Uint8Array(await res.arrayBuffer()), limits.lanExchangeBytes);
 * ```
 */

/** The route on the home box's HTTP port. */
export const lanExchangePath = "/v1/lan/exchange";

/** `u32 length | envelope` for each envelope. */
export function encodeEnvelopes(envelopes: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(envelopes.reduce((n, e) => n + 4 + e.length, 0));
  let at = 0;
  for (const e of envelopes) {
    new DataView(out.buffer).setUint32(at, e.length);
    out.set(e, at + 4);
    at += 4 + e.length;
  }
  return out;
}

/** Splits a body made by {@linkcode encodeEnvelopes}; RangeError when it is malformed. */
export function decodeEnvelopes(body: Uint8Array, maxEnvelopeBytes: number): Uint8Array[] {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const out: Uint8Array[] = [];
  let at = 0;
  while (at < body.length) {
    if (at + 4 > body.length) throw new RangeError("a LAN envelope list is truncated");
    const n = view.getUint32(at);
    if (n === 0 || n > maxEnvelopeBytes) throw new RangeError("a LAN envelope has a bad size");
    if (at + 4 + n > body.length) throw new RangeError("a LAN envelope list is truncated");
    out.push(body.subarray(at + 4, at + 4 + n));
    at += 4 + n;
  }
  return out;
}
