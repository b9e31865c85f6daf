/**
 * Splits a sync payload into parts that each fit one relay envelope, and
 * puts them back together on the other side. Part header: 8-byte payload id,
 * u16 index, u16 count. Reassembly is bounded: at most {@linkcode maxPending}
 * payloads in progress and {@linkcode maxPayloadBytes} per payload, so a
 * peer cannot make us hold unbounded memory.
 *
 * @example
 * ```ts
 * const parts = splitPayload(payload, 60_000);
 * const r = new Reassembler();
 * let whole; for (const p of parts) whole = r.add(p) ?? whole;
 * ```
 */
export const maxPayloadBytes = 64 * 1024 * 1024;
export const maxPending = 16;
const headerBytes = 12;

export function splitPayload(payload: Uint8Array, partBytes: number): Uint8Array[] {
  const body = partBytes - headerBytes;
  if (body <= 0) throw new RangeError("parts are too small for their header");
  const count = Math.max(1, Math.ceil(payload.length / body));
  if (count > 0xffff) throw new RangeError("payload too large to split");
  const id = crypto.getRandomValues(new Uint8Array(8));
  const parts: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const chunk = payload.subarray(i * body, (i + 1) * body);
    const part = new Uint8Array(headerBytes + chunk.length);
    part.set(id);
    part.set([i >> 8, i & 0xff, count >> 8, count & 0xff], 8);
    part.set(chunk, headerBytes);
    parts.push(part);
  }
  return parts;
}

export class Reassembler {
  readonly #pending = new Map<string, { parts: (Uint8Array | undefined)[]; bytes: number }>();

  /** Adds one part; returns the whole payload once its last part is in. */
  add(part: Uint8Array): Uint8Array | null {
    if (part.length < headerBytes) throw new RangeError("sync part is truncated");
    const id = Array.from(part.subarray(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
    const index = (part[8] << 8) | part[9];
    const count = (part[10] << 8) | part[11];
    if (count === 0 || index >= count) throw new RangeError("sync part index is out of range");
    let p = this.#pending.get(id);
    if (!p) {
      if (this.#pending.size >= maxPending) {
        // The oldest unfinished payload is dropped; the sync protocol asks again.
        this.#pending.delete(this.#pending.keys().next().value!);
      }
      // Filled, not sparse: `some` skips the holes of a sparse array.
      p = { parts: Array.from({ length: count }, () => undefined), bytes: 0 };
      this.#pending.set(id, p);
    }
    if (p.parts.length !== count) throw new RangeError("sync part count changed");
    if (!p.parts[index]) {
      p.bytes += part.length - headerBytes;
      if (p.bytes > maxPayloadBytes) {
        this.#pending.delete(id);
        throw new RangeError("sync payload is too large");
      }
      p.parts[index] = part.subarray(headerBytes);
    }
    if (p.parts.some((x) => !x)) return null;
    this.#pending.delete(id);
    const out = new Uint8Array(p.bytes);
    let at = 0;
    for (const x of p.parts) {
      out.set(x!, at);
      at += x!.length;
    }
    return out;
  }
}
