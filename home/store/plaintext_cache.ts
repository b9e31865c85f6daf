/**
 * Recently opened messages of one unlocked account, decrypted, bounded by
 * bytes and evicted least recently used first: a disk server leans on the
 * page cache, and this is Hearth's. Plaintext exists only here, in memory,
 * and only while the account is unlocked.
 *
 * @example
 * ```ts
 * const cache = new PlaintextCache(limits.messageCacheBytes);
 * const raw = cache.get(blob) ?? cache.add(blob, await openSealed(sealed, identity));
 * ```
 */
export class PlaintextCache {
  readonly #maxBytes: number;
  readonly #entries = new Map<string, Uint8Array>();
  #bytes = 0;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /** The message if cached; a hit becomes the most recently used. */
  get(blob: string): Uint8Array | undefined {
    const hit = this.#entries.get(blob);
    if (hit) {
      this.#entries.delete(blob);
      this.#entries.set(blob, hit);
    }
    return hit;
  }

  /** Keeps a message unless it is large (a sixteenth of the cache); returns it. */
  add(blob: string, raw: Uint8Array): Uint8Array {
    if (raw.length <= this.#maxBytes / 16) {
      this.#entries.set(blob, raw);
      this.#bytes += raw.length;
      while (this.#bytes > this.#maxBytes) {
        const [k, v] = this.#entries.entries().next().value!;
        this.#entries.delete(k);
        this.#bytes -= v.length;
      }
    }
    return raw;
  }

  /** Drops a message (it was expunged). */
  delete(blob: string): void {
    const cached = this.#entries.get(blob);
    if (cached) {
      this.#entries.delete(blob);
      this.#bytes -= cached.length;
    }
  }

  clear(): void {
    this.#entries.clear();
    this.#bytes = 0;
  }
}
