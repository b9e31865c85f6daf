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
import { ExpiringMap } from "./expiring_map.ts";

/** How long an answer is kept: shorter than the TTL of almost any SPF or DMARC record. */
export const dnsCacheMs = 60_000;

export class CachingResolver implements Resolver {
  readonly #inner: Resolver;
  readonly #entries: ExpiringMap<Promise<unknown[]>>;

  /**
   * Answers are kept `ttlMs` (default {@linkcode dnsCacheMs}; a cap, since Deno.resolveDns
   * gives no record TTLs).
   */
  constructor(
    inner: Resolver,
    opts: { ttlMs?: number; maxEntries?: number; now?: () => number } = {},
  ) {
    this.#inner = inner;
    this.#entries = new ExpiringMap({
      ttlMs: opts.ttlMs ?? dnsCacheMs,
      maxEntries: opts.maxEntries ?? 10_000,
      now: opts.now,
    });
  }

  #cached<T>(type: string, name: string, ask: () => Promise<T[]>): Promise<T[]> {
    const key = `${type} ${name.toLowerCase()}`;
    const hit = this.#entries.get(key);
    if (hit) return hit as Promise<T[]>;
    const answer = ask();
    this.#entries.set(key, answer);
    answer.catch(() => this.#entries.deleteIf(key, answer));
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
