/**
 * A bounded map whose entries expire: what the DNS cache (dns_cache.ts) and the MX's verdict
 * cache (smtp/authenticate.ts) keep. Past `maxEntries` the oldest entry goes (a Map keeps
 * insertion order).
 *
 * @example
 * ```ts
 * const cache = new ExpiringMap<string>({ ttlMs: 60_000, maxEntries: 100 });
 * cache.set("key", "value");
 * cache.get("key"); // "value", for a minute
 * ```
 */

/** Bounds of an {@linkcode ExpiringMap}; `now` is for tests. */
export interface ExpiringMapOptions {
  ttlMs: number;
  maxEntries: number;
  now?: () => number;
}

export class ExpiringMap<V> {
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  readonly #entries = new Map<string, { value: V; until: number }>();

  constructor(opts: ExpiringMapOptions) {
    this.#ttlMs = opts.ttlMs;
    this.#maxEntries = opts.maxEntries;
    this.#now = opts.now ?? Date.now;
  }

  /** The value, while it has not expired. */
  get(key: string): V | undefined {
    const hit = this.#entries.get(key);
    if (!hit) return undefined;
    if (hit.until > this.#now()) return hit.value;
    this.#entries.delete(key);
    return undefined;
  }

  /** Keeps a value for the time-to-live from now. */
  set(key: string, value: V) {
    this.#entries.delete(key);
    if (this.#entries.size >= this.#maxEntries) {
      this.#entries.delete(this.#entries.keys().next().value!);
    }
    this.#entries.set(key, { value, until: this.#now() + this.#ttlMs });
  }

  /** Forgets a key, if it still holds `value`. */
  deleteIf(key: string, value: V) {
    if (this.#entries.get(key)?.value === value) this.#entries.delete(key);
  }
}
