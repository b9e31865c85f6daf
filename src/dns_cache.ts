/**
 * A short-lived cache in front of a {@linkcode Resolver}. The system resolver asks the network
 * (and, in Deno, builds a resolver from the system configuration) on every call, and every
 * inbound message asks the same few names (the sender domain's SPF and DMARC records): with it,
 * concurrent messages from one domain share one lookup, and later ones reuse the answer for a
 * minute. The edge's front and the home box's MX both put it in front of the system resolver. "No such record" is cached like an answer; failures (DnsError) are not.
 *
 * @example
 * ```ts
 * const resolver = new CachingResolver(new SystemResolver());
 * await resolver.resolveTxt("_dmarc.example.org"); // asks the network
 * await resolver.resolveTxt("_dmarc.example.org"); // answered from the cache
 * ```
 */
import type { MxRecord, Resolver } from "./dns.ts";

/** How long an answer is kept: shorter than the TTL of almost any SPF or DMARC record. */
export const dnsCacheMs = 60_000;

interface Entry {
  expires: number;
  answer: Promise<unknown[]>;
}

export class CachingResolver implements Resolver {
  readonly #inner: Resolver;
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  readonly #entries = new Map<string, Entry>();

  /**
   * Answers are kept `ttlMs` (default {@linkcode dnsCacheMs}; a cap, since Deno.resolveDns
   * gives no record TTLs).
   */
  constructor(
    inner: Resolver,
    opts: { ttlMs?: number; maxEntries?: number; now?: () => number } = {},
  ) {
    this.#inner = inner;
    this.#ttlMs = opts.ttlMs ?? dnsCacheMs;
    this.#maxEntries = opts.maxEntries ?? 10_000;
    this.#now = opts.now ?? Date.now;
  }

  #cached<T>(type: string, name: string, ask: () => Promise<T[]>): Promise<T[]> {
    const key = `${type} ${name.toLowerCase()}`;
    const now = this.#now();
    const hit = this.#entries.get(key);
    if (hit && hit.expires > now) return hit.answer as Promise<T[]>;
    this.#entries.delete(key);
    // Oldest first: Map keeps insertion order.
    if (this.#entries.size >= this.#maxEntries) {
      this.#entries.delete(this.#entries.keys().next().value!);
    }
    const answer = ask();
    const entry = { expires: now + this.#ttlMs, answer };
    this.#entries.set(key, entry);
    answer.catch(() => {
      if (this.#entries.get(key) === entry) this.#entries.delete(key);
    });
    return answer;
  }

  resolveMx(name: string): Promise<MxRecord[]> {
    return this.#cached("MX", name, () => this.#inner.resolveMx(name));
  }
  resolveTxt(name: string): Promise<string[][]> {
    return this.#cached("TXT", name, () => this.#inner.resolveTxt(name));
  }
  resolve4(name: string): Promise<string[]> {
    return this.#cached("A", name, () => this.#inner.resolve4(name));
  }
  resolve6(name: string): Promise<string[]> {
    return this.#cached("AAAA", name, () => this.#inner.resolve6(name));
  }
}
