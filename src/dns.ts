/**
 * DNS lookups behind one small interface, so that every role can be tested
 * without the network: {@linkcode SystemResolver} asks the system through
 * `Deno.resolveDns`; {@linkcode TestResolver} answers from a table.
 *
 * A name that does not exist, or has no record of the type, resolves to an
 * empty list; other failures (timeouts, SERVFAIL) throw a {@linkcode DnsError}
 * so that callers can tell "no such record" (often permanent) from "ask again
 * later" (transient).
 *
 * @example
 * ```ts
 * const dns = new TestResolver()
 *   .mx("remote.test", "mx.remote.test")
 *   .a("mx.remote.test", "127.0.0.1");
 * await dns.resolveMx("remote.test"); // [{ preference: 10, exchange: "mx.remote.test" }]
 * ```
 */
import { limits } from "./limits.ts";

export interface MxRecord {
  preference: number;
  exchange: string;
}

export interface Resolver {
  /** MX records of a domain, unsorted. */
  resolveMx(name: string): Promise<MxRecord[]>;
  /** TXT records, each as its list of character-strings. */
  resolveTxt(name: string): Promise<string[][]>;
  resolve4(name: string): Promise<string[]>;
  resolve6(name: string): Promise<string[]>;
}

/** A lookup failed for a reason other than "no such name or record": try again later. */
export class DnsError extends Error {
  constructor(name: string, type: string, cause: unknown) {
    super(`DNS ${type} lookup of ${name} failed: ${(cause as Error)?.message ?? cause}`);
    this.name = "DnsError";
  }
}

function stripDot(name: string): string {
  return name.endsWith(".") && name.length > 1 ? name.slice(0, -1) : name;
}

/** The system resolver (`Deno.resolveDns`). */
export class SystemResolver implements Resolver {
  readonly #nameServer?: { ipAddr: string; port?: number };

  constructor(opts: { nameServer?: { ipAddr: string; port?: number } } = {}) {
    this.#nameServer = opts.nameServer;
  }

  async #query<T>(name: string, type: "MX" | "TXT" | "A" | "AAAA"): Promise<T[]> {
    try {
      // A stalled DNS server must not hold an SMTP reply for ever: the caller sees a
      // temporary error (SPF/DMARC "temperror", RFC 7208 §2.6.6) after limits.dnsTimeoutMs.
      const signal = AbortSignal.timeout(limits.dnsTimeoutMs);
      const options = this.#nameServer ? { nameServer: this.#nameServer, signal } : { signal };
      // deno-lint-ignore no-explicit-any
      return (await Deno.resolveDns(name, type as any, options)) as unknown as T[];
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return [];
      throw new DnsError(name, type, e);
    }
  }

  async resolveMx(name: string): Promise<MxRecord[]> {
    const list = await this.#query<MxRecord>(name, "MX");
    return list.map((r) => ({ preference: r.preference, exchange: stripDot(r.exchange) }));
  }
  resolveTxt(name: string): Promise<string[][]> {
    return this.#query<string[]>(name, "TXT");
  }
  resolve4(name: string): Promise<string[]> {
    return this.#query<string>(name, "A");
  }
  resolve6(name: string): Promise<string[]> {
    return this.#query<string>(name, "AAAA");
  }
}

/** A resolver answering from a table; names are case-insensitive. Unknown names have no records. */
export class TestResolver implements Resolver {
  readonly #records = new Map<string, unknown[]>();
  /** Names whose lookups fail as a server failure would. */
  readonly failing = new Set<string>();
  /** Every lookup made, as `TYPE name`, for assertions. */
  readonly queries: string[] = [];

  #add(type: string, name: string, value: unknown): this {
    const key = `${type} ${name.toLowerCase()}`;
    this.#records.set(key, [...(this.#records.get(key) ?? []), value]);
    return this;
  }

  mx(name: string, exchange: string, preference = 10): this {
    return this.#add("MX", name, { preference, exchange });
  }
  txt(name: string, text: string | string[]): this {
    return this.#add("TXT", name, Array.isArray(text) ? text : [text]);
  }
  a(name: string, address: string): this {
    return this.#add("A", name, address);
  }
  aaaa(name: string, address: string): this {
    return this.#add("AAAA", name, address);
  }

  #get<T>(type: string, name: string): Promise<T[]> {
    const key = `${type} ${stripDot(name).toLowerCase()}`;
    this.queries.push(key);
    if (this.failing.has(stripDot(name).toLowerCase())) {
      return Promise.reject(new DnsError(name, type, new Error("server failure")));
    }
    return Promise.resolve([...(this.#records.get(key) ?? [])] as T[]);
  }

  resolveMx(name: string): Promise<MxRecord[]> {
    return this.#get("MX", name);
  }
  resolveTxt(name: string): Promise<string[][]> {
    return this.#get("TXT", name);
  }
  resolve4(name: string): Promise<string[]> {
    return this.#get("A", name);
  }
  resolve6(name: string): Promise<string[]> {
    return this.#get("AAAA", name);
  }
}

/**
 * The resolver shape mailauth expects (`resolver(name, rrtype)`), rejecting
 * with `ENOTFOUND`/`ENODATA` codes as Node's resolver does when nothing exists.
 */
export function mailauthResolver(resolver: Resolver) {
  return async (name: string, rrtype: string): Promise<string[][] | string[]> => {
    let list: unknown[];
    switch (rrtype.toUpperCase()) {
      case "TXT":
        list = await resolver.resolveTxt(name);
        break;
      case "MX":
        // Node's shape: { exchange, priority }.
        list = (await resolver.resolveMx(name)).map((r) => ({
          exchange: r.exchange,
          priority: r.preference,
        }));
        break;
      case "A":
        list = await resolver.resolve4(name);
        break;
      case "AAAA":
        list = await resolver.resolve6(name);
        break;
      default:
        list = [];
    }
    if (list.length === 0) throw notFound(`no ${rrtype} record for ${name}`);
    return list as string[][] | string[];
  };
}

/**
 * The "nothing there" error mailauth expects (an Error with Node's code). Most names it asks
 * about have no record, and capturing a stack would cost more than the cached lookup: this one
 * has none.
 */
function notFound(message: string): Error {
  const e = Object.create(Error.prototype) as Error & { code: string };
  e.message = message;
  e.code = "ENOTFOUND";
  return e;
}
