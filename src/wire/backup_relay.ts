/**
 * Wire framing of the edge's backup relay (docs/backup.md, "Through the
 * edge"): a post carries several sealed parts, `u32 length | bytes` each; a
 * pull answers with `u16 length | id | u16 length | from | u32 length | bytes`
 * per part. Shared by the edge (edge/backup_relay.ts) and both boxes.
 *
 * @example
 * ```ts
 * const body = encodeRelayParts([part1, part2]);
 * const parts = decodeRelayParts(body);
 * ```
 */

/** A part waiting in a backup relay mailbox: its id there, who posted it, the sealed bytes. */
export interface RelayPartItem {
  id: string;
  from: string;
  bytes: Uint8Array;
}

export function encodeRelayParts(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + 4 + p.length, 0));
  const view = new DataView(out.buffer);
  let at = 0;
  for (const p of parts) {
    view.setUint32(at, p.length);
    out.set(p, at + 4);
    at += 4 + p.length;
  }
  return out;
}

/** The parts of a post; RangeError when the framing is broken. */
export function decodeRelayParts(body: Uint8Array): Uint8Array[] {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const parts: Uint8Array[] = [];
  let at = 0;
  while (at < body.length) {
    if (at + 4 > body.length) throw new RangeError("a relay part is truncated");
    const n = view.getUint32(at);
    if (at + 4 + n > body.length) throw new RangeError("a relay part is truncated");
    parts.push(body.subarray(at + 4, at + 4 + n));
    at += 4 + n;
  }
  return parts;
}

export function encodeRelayItems(items: RelayPartItem[]): Uint8Array {
  const enc = new TextEncoder();
  const heads = items.map((i) => [enc.encode(i.id), enc.encode(i.from)]);
  const size = items.reduce(
    (n, it, k) => n + 8 + heads[k][0].length + heads[k][1].length + it.bytes.length,
    0,
  );
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let at = 0;
  items.forEach((it, k) => {
    for (const h of heads[k]) {
      view.setUint16(at, h.length);
      out.set(h, at + 2);
      at += 2 + h.length;
    }
    view.setUint32(at, it.bytes.length);
    out.set(it.bytes, at + 4);
    at += 4 + it.bytes.length;
  });
  return out;
}

/** The parts of a pull's answer; RangeError when the framing is broken. */
export function decodeRelayItems(body: Uint8Array): RelayPartItem[] {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const dec = new TextDecoder();
  const items: RelayPartItem[] = [];
  let at = 0;
  const take = (n: number) => {
    if (at + n > body.length) throw new RangeError("a relay answer is truncated");
    const out = body.subarray(at, at + n);
    at += n;
    return out;
  };
  const length = (bytes: 2 | 4) => {
    const b = take(bytes);
    return bytes === 2 ? (b[0] << 8) | b[1] : view.getUint32(at - 4);
  };
  while (at < body.length) {
    const id = dec.decode(take(length(2)));
    const from = dec.decode(take(length(2)));
    const bytes = take(length(4));
    items.push({ id, from, bytes });
  }
  return items;
}
