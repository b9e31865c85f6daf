/**
 * Upload batch bodies read into reused buffers on the backup host (docs/backup.md,
 * "Uploads"): one buffer per request in flight, kept for the next one, instead of
 * a fresh 8 MiB array per request (garbage the collector was late to free). A
 * served request is read with a BYOB reader straight into the buffer; a stream
 * that is not a byte stream (a request built in process, the edge relay) is
 * copied chunk by chunk.
 *
 * @example
 * ```ts
 * const pool = new BodyPool(batchBytes + 36 * batchObjects);
 * const { body, release } = await pool.read(req, maxBytes);
 * try { handle(body); } finally { release(); }
 * ```
 */
import { ProtocolError } from "../../src/errors.ts";

/** Buffers kept idle at most (requests in flight beyond this allocate and drop theirs). */
const keepIdle = 4;

export class BodyPool {
  readonly #size: number;
  #idle: ArrayBuffer[] = [];

  constructor(size: number) {
    this.#size = size;
  }

  /** The request's body in a pooled buffer (valid until `release`); 413 past `maxBytes`. */
  async read(req: Request, maxBytes: number): Promise<{ body: Uint8Array; release: () => void }> {
    const tooLarge = () => new ProtocolError("NO", "the request body is too large", { http: 413 });
    const declared = Number(req.headers.get("content-length") ?? NaN);
    if (declared > maxBytes) throw tooLarge();
    const want = Number.isFinite(declared) ? declared : this.#size;
    let buf: ArrayBuffer = want <= this.#size
      ? this.#idle.pop() ?? new ArrayBuffer(this.#size)
      : new ArrayBuffer(want);
    let off = 0;
    const grow = (need: number) => {
      if (need > maxBytes) throw tooLarge();
      if (need <= buf.byteLength) return;
      const next = new ArrayBuffer(Math.min(maxBytes, Math.max(need, buf.byteLength * 2)));
      new Uint8Array(next).set(new Uint8Array(buf, 0, off));
      buf = next;
    };
    const stream = req.body;
    if (stream) {
      let byob: ReadableStreamBYOBReader | null = null;
      try {
        byob = stream.getReader({ mode: "byob" });
      } catch { /* not a byte stream */ }
      if (byob) {
        while (true) {
          // The declared length read: stop before a read that would need a larger buffer.
          if (Number.isFinite(declared) && off >= declared) {
            byob.releaseLock();
            break;
          }
          grow(off + 1);
          // The view's buffer is transferred to the stream and handed back with the bytes.
          const { value, done } = await byob.read(new Uint8Array(buf, off));
          if (value) {
            buf = value.buffer as ArrayBuffer;
            off += value.length;
          }
          if (done) break;
        }
      } else {
        const reader = stream.getReader();
        while (true) {
          const { value, done } = await reader.read();
          if (done) break;
          grow(off + value.length);
          new Uint8Array(buf, off, value.length).set(value);
          off += value.length;
        }
      }
    }
    const body = new Uint8Array(buf, 0, off);
    let released = false;
    return {
      body,
      release: () => {
        if (released) return;
        released = true;
        if (buf.byteLength === this.#size && this.#idle.length < keepIdle) this.#idle.push(buf);
      },
    };
  }
}
