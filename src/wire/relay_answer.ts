/**
 * The binary form of a relay mailbox answer (`GET /v1/relay/ID`,
 * `POST /v1/relay/ID/exchange`; docs/edge.md): the same content as the JSON
 * answer, with the sealed envelopes and inline sealed mail as raw bytes
 * rather than base64, a quarter less on the wire. A client asks for it with
 * `Accept: application/vnd.hearth.relay`; the JSON answer stays the default.
 *
 * Layout: `u32 n | head (n bytes of JSON) | bytes`, where the head lists the
 * items and mail in order, each with the length of its bytes (`n`), and the
 * bytes follow in the same order.
 *
 * @example
 * ```ts
 * const body = encodeRelayAnswer({ items, more: false });
 * const { items } = decodeRelayAnswer(body);
 * ```
 */
import type { SealedItem } from "./edge_api.ts";

export const relayAnswerType = "application/vnd.hearth.relay";

export interface RelayAnswer {
  items: { id: string; at?: number; envelope: Uint8Array }[];
  more: boolean;
  /** Mail waiting at the edge for a device's account; `sealed` when it came inline. */
  mail?: (Omit<SealedItem, "sealed"> & { sealed?: Uint8Array })[];
}

interface Head {
  items: { id: string; at?: number; n: number }[];
  more: boolean;
  mail?: (Omit<SealedItem, "sealed"> & { n?: number })[];
}

export function encodeRelayAnswer(a: RelayAnswer): Uint8Array<ArrayBuffer> {
  const parts: Uint8Array[] = [];
  const head: Head = {
    items: a.items.map((i) => {
      parts.push(i.envelope);
      return { id: i.id, at: i.at, n: i.envelope.length };
    }),
    more: a.more,
    mail: a.mail?.map(({ sealed, ...m }) => {
      if (!sealed) return m;
      parts.push(sealed);
      return { ...m, n: sealed.length };
    }),
  };
  const json = new TextEncoder().encode(JSON.stringify(head));
  const out = new Uint8Array(4 + json.length + parts.reduce((n, p) => n + p.length, 0));
  new DataView(out.buffer).setUint32(0, json.length);
  out.set(json, 4);
  let at = 4 + json.length;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Reads a body made by {@linkcode encodeRelayAnswer}; RangeError when it is malformed. */
export function decodeRelayAnswer(body: Uint8Array): RelayAnswer {
  if (body.length < 4) throw new RangeError("a relay answer is truncated");
  const n = new DataView(body.buffer, body.byteOffset, body.byteLength).getUint32(0);
  if (4 + n > body.length) throw new RangeError("a relay answer is truncated");
  let head: Head;
  try {
    head = JSON.parse(new TextDecoder().decode(body.subarray(4, 4 + n)));
  } catch {
    throw new RangeError("a relay answer's head is not JSON");
  }
  if (!Array.isArray(head?.items)) throw new RangeError("a relay answer lists no items");
  let at = 4 + n;
  const take = (len: unknown): Uint8Array => {
    if (typeof len !== "number" || !Number.isInteger(len) || len < 0 || at + len > body.length) {
      throw new RangeError("a relay answer is truncated");
    }
    const bytes = body.subarray(at, at + len);
    at += len;
    return bytes;
  };
  const items = head.items.map((i) => ({ id: String(i.id), at: i.at, envelope: take(i.n) }));
  const mail = head.mail?.map(({ n, ...m }) => n === undefined ? m : { ...m, sealed: take(n) });
  if (at !== body.length) throw new RangeError("a relay answer has bytes left over");
  return { items, more: head.more === true, mail };
}
