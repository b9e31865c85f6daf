import { deepStrictEqual as assertEquals, rejects } from "node:assert/strict";
import { DnsError, type MxRecord, type Resolver, TestResolver } from "../../src/dns.ts";
import { CachingResolver, dnsCacheMs } from "../../src/dns_cache.ts";

/** Counts lookups; fails for names in `failing`. */
class CountingResolver implements Resolver {
  calls = 0;
  failing = new Set<string>();
  #answer(name: string): Promise<string[][]> {
    this.calls++;
    if (this.failing.has(name)) return Promise.reject(new DnsError(name, "TXT", "timeout"));
    return Promise.resolve(name.startsWith("none.") ? [] : [[`v=spf1 -all ${this.calls}`]]);
  }
  resolveTxt(name: string) {
    return this.#answer(name);
  }
  resolveMx(): Promise<MxRecord[]> {
    this.calls++;
    return Promise.resolve([]);
  }
  resolve4() {
    this.calls++;
    return Promise.resolve([]);
  }
  resolve6() {
    this.calls++;
    return Promise.resolve([]);
  }
}

Deno.test("CachingResolver shares one lookup per name and type, empty answers included", async () => {
  const inner = new CountingResolver();
  const dns = new CachingResolver(inner);
  const [a, b] = await Promise.all([dns.resolveTxt("x.test"), dns.resolveTxt("X.test")]);
  assertEquals(a, b);
  assertEquals(await dns.resolveTxt("none.test"), []);
  assertEquals(await dns.resolveTxt("none.test"), []);
  await dns.resolveMx("x.test");
  assertEquals(inner.calls, 3);
});

Deno.test("CachingResolver asks again after its TTL and after a failure", async () => {
  const inner = new CountingResolver();
  const dns = new CachingResolver(inner, { ttlMs: 0 });
  await dns.resolveTxt("x.test");
  await dns.resolveTxt("x.test");
  assertEquals(inner.calls, 2);
  const cached = new CachingResolver(inner);
  inner.failing.add("y.test");
  await rejects(() => cached.resolveTxt("y.test"), DnsError);
  inner.failing.delete("y.test");
  assertEquals((await cached.resolveTxt("y.test")).length, 1);
  assertEquals(inner.calls, 4);
});

Deno.test("CachingResolver keeps answers with an injected clock until they expire", async () => {
  const inner = new TestResolver().txt("example.org", "v=spf1 -all");
  let now = 1_000;
  const dns = new CachingResolver(inner, { now: () => now });
  assertEquals(await dns.resolveTxt("example.org"), [["v=spf1 -all"]]);
  assertEquals(await dns.resolveTxt("EXAMPLE.org"), [["v=spf1 -all"]]);
  assertEquals(await dns.resolveTxt("_dmarc.example.org"), []);
  assertEquals(await dns.resolveTxt("_dmarc.example.org"), []);
  assertEquals(inner.queries, ["TXT example.org", "TXT _dmarc.example.org"]);
  now += dnsCacheMs + 1;
  await dns.resolveTxt("example.org");
  assertEquals(inner.queries.length, 3);
});

Deno.test("CachingResolver does not keep a failure of a name it answered before", async () => {
  const inner = new TestResolver().a("flaky.example", "192.0.2.1");
  inner.failing.add("flaky.example");
  const dns = new CachingResolver(inner);
  await rejects(() => dns.resolve4("flaky.example"));
  inner.failing.delete("flaky.example");
  assertEquals(await dns.resolve4("flaky.example"), ["192.0.2.1"]);
});
