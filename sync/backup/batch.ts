/**
 * An upload batch built in place (docs/backup.md, "Uploads"): objects are read
 * straight into one reused buffer in the upload framing (per object its
 * 32-character id, a u32 length, the bytes; as `encodeObjectBatch`), so a run
 * allocates one buffer per batch in flight instead of one per object.
 *
 * @example
 * ```ts
 * const batch = new ObjectBatch(batchBytes + 36 * batchObjects);
 * const into = batch.reserve(id, size); // fill it with the object's bytes
 * await client.putBatch(batch);
 * batch.reset();
 * ```
 */
import { batchObjects } from "./format.ts";

const head = new TextEncoder().encode("hearth-backup-batch-v1\n");

export class ObjectBatch {
  #buf: Uint8Array;
  #view: DataView;
  #used = 0;
  readonly ids: string[] = [];
  readonly sizes: number[] = [];

  constructor(capacity: number) {
    this.#buf = new Uint8Array(capacity);
    this.#view = new DataView(this.#buf.buffer);
  }

  get count(): number {
    return this.ids.length;
  }

  /** Bytes of the objects (without framing). */
  get objectBytes(): number {
    return this.sizes.reduce((n, s) => n + s, 0);
  }

  /** Half the objects a batch may hold, or half its buffer: worth sending without waiting. */
  get halfFull(): boolean {
    return this.ids.length >= batchObjects / 2 || this.#used >= this.#buf.length / 2;
  }

  /** Whether an object of `size` bytes fits (an empty batch takes any object: it grows). */
  fits(size: number): boolean {
    if (this.ids.length >= batchObjects) return false;
    return this.ids.length === 0 || this.#used + 36 + size <= this.#buf.length;
  }

  /** Frames an object and returns where its bytes go; the caller fills it before sending. */
  reserve(id: string, size: number): Uint8Array {
    if (!this.fits(size)) throw new RangeError("the batch is full");
    if (this.#used + 36 + size > this.#buf.length) {
      // One object larger than the buffer travels alone in a buffer of its own.
      this.#buf = new Uint8Array(36 + size);
      this.#view = new DataView(this.#buf.buffer);
    }
    const at = this.#used;
    new TextEncoder().encodeInto(id, this.#buf.subarray(at, at + 32));
    this.#view.setUint32(at + 32, size);
    this.#used += 36 + size;
    this.ids.push(id);
    this.sizes.push(size);
    return this.#buf.subarray(at + 36, at + 36 + size);
  }

  /** The request body: a view of the buffer, valid until {@linkcode reset}. */
  body(): Uint8Array {
    return this.#buf.subarray(0, this.#used);
  }

  /** What the request signature covers (as `batchSummary`): the ids and lengths. */
  summary(): Uint8Array {
    const out = new Uint8Array(head.length + this.ids.length * 36);
    const view = new DataView(out.buffer);
    out.set(head);
    this.ids.forEach((id, i) => {
      new TextEncoder().encodeInto(id, out.subarray(head.length + i * 36));
      view.setUint32(head.length + i * 36 + 32, this.sizes[i]);
    });
    return out;
  }

  /** Empties the batch, keeping its buffer (a buffer grown for one large object is dropped). */
  reset(capacity: number): void {
    if (this.#buf.length > capacity) {
      this.#buf = new Uint8Array(capacity);
      this.#view = new DataView(this.#buf.buffer);
    }
    this.#used = 0;
    this.ids.length = 0;
    this.sizes.length = 0;
  }
}
