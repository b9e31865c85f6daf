/**
 * `hearth doctor`'s DNS checks: each record `hearth dns` prints, compared
 * with what a resolver finds published. TXT records are compared by meaning
 * where that is what receivers do (SPF mechanisms, DKIM's key, DMARC's
 * policy, the MTA-STS id), so a record that differs only in spacing or tag
 * order passes; MX by host, SRV by target and port, CNAME by target (or the
 * same addresses, for a provider that flattens CNAMEs).
 *
 * @example
 * ```ts
 * const resolver = new TestRecordResolver().publish(await dnsRecords(config));
 * const result = await checkDnsRecord(record, resolver);
 * ```
 */
import { limits } from "../src/limits.ts";
import { DnsError, type Resolver, SystemResolver, TestResolver } from "../src/dns.ts";
import { type DnsRecord, formatBind } from "./dns_records.ts";

export interface SrvRecord {
  priority: number;
  weight: number;
  port: number;
  target: string;
}

/** A resolver that may also look up SRV and CNAME records (only `hearth doctor` needs them). */
export interface DoctorResolver extends Resolver {
  resolveSrv?(name: string): Promise<SrvRecord[]>;
  resolveCname?(name: string): Promise<string[]>;
}

/** The result of one check: a sentence, and what to do when it is not `ok`. */
export interface CheckResult {
  status: "ok" | "warn" | "fail";
  sentence: string;
  fix?: string;
}

const bare = (name: string) => name.replace(/\.$/, "").toLowerCase();

/** The system resolver, plus SRV and CNAME lookups with the same timeout. */
export class SystemDoctorResolver extends SystemResolver implements DoctorResolver {
  async #lookup<T>(name: string, type: "SRV" | "CNAME"): Promise<T[]> {
    try {
      const signal = AbortSignal.timeout(limits.dnsTimeoutMs);
      // deno-lint-ignore no-explicit-any
      return (await Deno.resolveDns(name, type as any, { signal })) as unknown as T[];
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return [];
      throw new DnsError(name, type, e);
    }
  }
  resolveSrv(name: string): Promise<SrvRecord[]> {
    return this.#lookup<SrvRecord>(name, "SRV");
  }
  resolveCname(name: string): Promise<string[]> {
    return this.#lookup<string>(name, "CNAME");
  }
}

/** {@linkcode TestResolver} with SRV and CNAME records; `publish` adds what `hearth dns` prints. */
export class TestRecordResolver extends TestResolver implements DoctorResolver {
  readonly #srv = new Map<string, SrvRecord[]>();
  readonly #cname = new Map<string, string[]>();

  srv(name: string, record: SrvRecord): this {
    this.#srv.set(bare(name), [...(this.#srv.get(bare(name)) ?? []), record]);
    return this;
  }
  cname(name: string, target: string): this {
    this.#cname.set(bare(name), [...(this.#cname.get(bare(name)) ?? []), target]);
    return this;
  }
  /** Publishes records as `hearth dns` gives them (all of them, or those `keep` accepts). */
  publish(records: DnsRecord[], keep: (r: DnsRecord) => boolean = () => true): this {
    for (const r of records.filter(keep)) {
      if (r.type === "MX") {
        const [pref, host] = r.value.split(" ");
        this.mx(bare(r.name), bare(host), Number(pref));
      } else if (r.type === "TXT") {
        const parts: string[] = [];
        for (let i = 0; i < r.value.length; i += 255) parts.push(r.value.slice(i, i + 255));
        this.txt(bare(r.name), parts);
      } else if (r.type === "CNAME") this.cname(r.name, r.value);
      else {
        const [priority, weight, port, target] = r.value.split(" ");
        this.srv(r.name, {
          priority: Number(priority),
          weight: Number(weight),
          port: Number(port),
          target,
        });
      }
    }
    return this;
  }
  resolveSrv(name: string): Promise<SrvRecord[]> {
    return Promise.resolve([...(this.#srv.get(bare(name)) ?? [])]);
  }
  resolveCname(name: string): Promise<string[]> {
    return Promise.resolve([...(this.#cname.get(bare(name)) ?? [])]);
  }
}

/** The zone-file line to paste, as `hearth dns` prints it. */
function zoneLine(r: DnsRecord): string {
  return formatBind([r]).split("\n")[1];
}

/** `k=v; k=v` tags (DKIM RFC 6376 §3.2, DMARC RFC 7489 §6.4, MTA-STS, TLS-RPT), names lowercased. */
function tags(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of text.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    out.set(part.slice(0, eq).trim().toLowerCase(), part.slice(eq + 1).replace(/\s+/g, ""));
  }
  return out;
}

function shown(values: string[]): string {
  return values.map((v) => `"${v.length > 60 ? v.slice(0, 57) + "…" : v}"`).join(", ");
}

type Verdict = { status: CheckResult["status"]; sentence: string };

/** SPF (RFC 7208): exactly one `v=spf1` record that lets the MX send and ends in -all or ~all. */
function judgeSpf(published: string[], expected: string, r: DnsRecord): Verdict {
  const name = bare(r.name);
  if (published.length > 1) {
    // RFC 7208 §4.5: more than one SPF record is a permanent error for every receiver.
    return {
      status: "fail",
      sentence: `${name} publishes ${published.length} SPF records (${
        shown(published)
      }): receivers treat that as an error (RFC 7208 §4.5)`,
    };
  }
  const terms = published[0].toLowerCase().split(/\s+/).filter(Boolean);
  if (terms.join(" ") === expected.toLowerCase()) {
    return { status: "ok", sentence: `SPF of ${name} is published as expected (${expected})` };
  }
  const allowsMx = terms.some((t) => /^\+?mx(:|$)/.test(t) || /^\+?include:/.test(t));
  const all = terms.find((t) => /^[-~?+]?all$/.test(t));
  if (allowsMx && (all === "-all" || all === "~all")) {
    return {
      status: "ok",
      sentence: `SPF of ${name} is "${
        published[0]
      }": not Hearth's "${expected}", but it lets the MX send`,
    };
  }
  return {
    status: "fail",
    sentence: `SPF of ${name} is "${published[0]}", which does not let the edge (the MX) send ${
      all === "+all" || all === "?all" ? "and lets anyone send " : ""
    }(expected "${expected}")`,
  };
}

function judgeTagged(
  kind: "DKIM" | "DMARC" | "MTA-STS" | "TLS-RPT",
  published: string[],
  expected: string,
  r: DnsRecord,
): Verdict {
  const name = bare(r.name);
  const want = tags(expected);
  const got = tags(published[0]);
  const exact = published.length === 1 &&
    [...want].every(([k, v]) => got.get(k) === v) && got.size === want.size;
  if (exact) return { status: "ok", sentence: `${kind} record ${name} is published as expected` };
  if (published.length > 1) {
    return {
      status: "fail",
      sentence: `${name} publishes ${published.length} ${kind} records (${
        shown(published)
      }): receivers ignore them all`,
    };
  }
  switch (kind) {
    case "DKIM": {
      // Only the key matters to a verifier (RFC 6376 §3.6.1); k= defaults to rsa.
      if (got.get("p") === want.get("p") && (got.get("k") ?? "rsa") === "rsa") {
        return { status: "ok", sentence: `DKIM key ${name} is published (same key)` };
      }
      return {
        status: "fail",
        sentence: got.get("p")
          ? `DKIM record ${name} holds another key than this box signs with: receivers will reject the signatures`
          : `DKIM record ${name} has no key (p=)`,
      };
    }
    case "DMARC": {
      const p = got.get("p");
      if (p === "quarantine" || p === "reject") {
        return {
          status: "ok",
          sentence: `DMARC of ${name} is p=${p} (Hearth suggests quarantine)`,
        };
      }
      return {
        status: p === "none" ? "warn" : "fail",
        sentence: p === "none"
          ? `DMARC of ${name} is p=none: spoofed mail from your domain is still delivered`
          : `DMARC record ${name} has no valid policy (p=)`,
      };
    }
    case "MTA-STS":
      return {
        status: "warn",
        sentence: `MTA-STS record ${name} has id=${
          got.get("id") ?? "(none)"
        }, but the policy the edge serves has id=${want.get("id")}: senders keep a stale policy`,
      };
    case "TLS-RPT":
      return got.get("rua")
        ? { status: "ok", sentence: `TLS-RPT of ${name} sends reports to ${got.get("rua")}` }
        : { status: "warn", sentence: `TLS-RPT record ${name} names no report address (rua=)` };
  }
}

const txtKinds: [RegExp, "SPF" | "DKIM" | "DMARC" | "MTA-STS" | "TLS-RPT", boolean][] = [
  [/^v=spf1(\s|$)/i, "SPF", true],
  [/^v=DKIM1\s*(;|$)/i, "DKIM", true],
  [/^v=DMARC1\s*(;|$)/i, "DMARC", true],
  [/^v=STSv1\s*(;|$)/i, "MTA-STS", false],
  [/^v=TLSRPTv1\s*(;|$)/i, "TLS-RPT", false],
];

async function judgeTxt(r: DnsRecord, resolver: DoctorResolver): Promise<Verdict> {
  const [pattern, kind, required] = txtKinds.find(([p]) => p.test(r.value)) ??
    [/^/, "DKIM" as const, true];
  // RFC 7208 §3.3, RFC 6376 §3.6.2.2: a record's strings are joined without spaces.
  const all = (await resolver.resolveTxt(bare(r.name))).map((parts) => parts.join(""));
  // A DKIM key record may omit v= (RFC 6376 §3.6.1): any record there with p= counts.
  const published = all.filter((t) => pattern.test(t) || (kind === "DKIM" && /(^|;)\s*p=/.test(t)));
  if (published.length === 0) {
    return {
      status: required ? "fail" : "warn",
      sentence: `no ${kind} record is published at ${bare(r.name)}${
        all.length ? ` (only ${shown(all)})` : ""
      }`,
    };
  }
  return kind === "SPF"
    ? judgeSpf(published, r.value, r)
    : judgeTagged(kind, published, r.value, r);
}

async function judgeMx(r: DnsRecord, resolver: DoctorResolver): Promise<Verdict> {
  const want = bare(r.value.split(" ")[1]);
  const hosts = (await resolver.resolveMx(bare(r.name))).map((m) => bare(m.exchange));
  const name = bare(r.name);
  if (hosts.length === 0) return { status: "fail", sentence: `${name} has no MX record` };
  if (hosts.every((h) => h === want)) {
    return { status: "ok", sentence: `MX of ${name} is ${want}, the edge` };
  }
  if (hosts.includes(want)) {
    return {
      status: "warn",
      sentence: `MX of ${name} is ${hosts.join(", ")}: besides the edge, mail may go to ${
        hosts.filter((h) => h !== want).join(", ")
      }`,
    };
  }
  return {
    status: "fail",
    sentence: `MX of ${name} is ${
      hosts.join(", ") || "a null MX"
    }, not the edge ${want}: mail goes elsewhere`,
  };
}

async function judgeCname(r: DnsRecord, resolver: DoctorResolver): Promise<Verdict> {
  const name = bare(r.name), want = bare(r.value);
  const targets = (await resolver.resolveCname?.(name) ?? []).map(bare);
  if (targets.includes(want)) return { status: "ok", sentence: `${name} points to ${want}` };
  if (targets.length) {
    return { status: "warn", sentence: `${name} points to ${targets.join(", ")}, not ${want}` };
  }
  // Some providers flatten CNAMEs into addresses: the same addresses as the edge do as well.
  const [mine, edge] = await Promise.all([resolver.resolve4(name), resolver.resolve4(want)]);
  if (mine.length && mine.some((a) => edge.includes(a))) {
    return { status: "ok", sentence: `${name} has the edge's address (${mine.join(", ")})` };
  }
  return { status: "warn", sentence: `${name} does not point to ${want}` };
}

async function judgeSrv(r: DnsRecord, resolver: DoctorResolver): Promise<Verdict> {
  const name = bare(r.name);
  if (!resolver.resolveSrv) {
    return { status: "warn", sentence: `${name}: this resolver cannot look up SRV records` };
  }
  const [priority, , port, target] = r.value.split(" ");
  const found = await resolver.resolveSrv(name);
  const norm = (t: string) => bare(t) || ".";
  const match = found.find((s) => s.port === Number(port) && norm(s.target) === norm(target));
  if (!match) {
    return {
      status: "warn",
      sentence: found.length
        ? `${name} is ${
          found.map((s) => `${s.priority} ${s.weight} ${s.port} ${norm(s.target)}`).join(", ")
        }, not ${r.value}`
        : `no SRV record is published at ${name} (mail clients cannot discover the server)`,
    };
  }
  return match.priority === Number(priority)
    ? { status: "ok", sentence: `SRV ${name} is published as expected` }
    : {
      status: "warn",
      sentence: `SRV ${name} has priority ${match.priority}, not ${priority}: clients may prefer ${
        Number(priority) === 0 ? "STARTTLS over implicit TLS" : "this over implicit TLS"
      }`,
    };
}

/** Compares one record of `hearth dns` with what `resolver` finds; the fix is the line to publish. */
export async function checkDnsRecord(r: DnsRecord, resolver: DoctorResolver): Promise<CheckResult> {
  let verdict: Verdict;
  try {
    verdict = r.type === "MX"
      ? await judgeMx(r, resolver)
      : r.type === "TXT"
      ? await judgeTxt(r, resolver)
      : r.type === "CNAME"
      ? await judgeCname(r, resolver)
      : await judgeSrv(r, resolver);
  } catch (e) {
    return {
      status: "warn",
      sentence: `could not look up ${r.type} ${bare(r.name)}: ${(e as Error).message}`,
      fix: "check this machine's DNS resolver, then run hearth doctor again",
    };
  }
  if (verdict.status === "ok") return verdict;
  return {
    ...verdict,
    fix: `publish this record at your DNS provider (replacing the one there): ${zoneLine(r)}`,
  };
}
