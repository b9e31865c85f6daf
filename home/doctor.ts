/**
 * `hearth doctor`: a list of checks, each giving a plain sentence and, when
 * something is wrong, the fix. DNS as published versus `hearth dns`, the TLS
 * certificate, the listeners, the edge link and what waits there, the
 * outbound queue, backups, disk space and clock skew. The outside world
 * (resolver, clock, fetch) comes in through {@linkcode DoctorContext}.
 *
 * @example
 * ```ts
 * const ctx = await doctorContext(config, { resolver: new SystemDoctorResolver() });
 * const results = await runDoctor(ctx);
 * console.log(formatDoctor(results));
 * Deno.exit(doctorExitCode(results));
 * ```
 */
import { type BackupPeerRecord, backupPeers } from "./backup.ts";
import { type DrillResult, lastDrill } from "./backup_drill.ts";
import type { HearthConfig } from "../src/config.ts";
import { certificateInfo } from "../src/tls.ts";
import { dnsRecords } from "./dns_records.ts";
import { checkDnsRecord, type CheckResult, type DoctorResolver } from "./doctor_dns.ts";
import { type EdgeLinkConfig, homeSigningKey, readEdgeLink } from "./edge_link.ts";
import {
  type EdgeProbe,
  type FreeSpace,
  freeSpace,
  probeEdge,
  probeListeners,
  queueSummary,
} from "./probes.ts";
import { formatDuration } from "./queue/cli.ts";
import { openStore } from "./box.ts";
import { maxSkewMs } from "../src/wire/signed_request.ts";

export type { CheckResult } from "./doctor_dns.ts";

/** Everything a check may look at; tests replace the resolver, the clock and fetch. */
export interface DoctorContext {
  config: HearthConfig;
  resolver: DoctorResolver;
  now: () => number;
  fetch: typeof fetch;
  link: EdgeLinkConfig | null;
  /** Free space of the data directory's file system (default: `df`). */
  freeSpace: (dir: string) => Promise<FreeSpace | null>;
  /** Bounds each network probe. */
  timeoutMs: number;
  /** The edge probe, made once and shared by the edge and clock checks. */
  edge?: Promise<EdgeProbe | null>;
}

export interface Check {
  name: string;
  run(ctx: DoctorContext): Promise<CheckResult>;
}

/** One printed line of `hearth doctor`. */
export interface DoctorResult extends CheckResult {
  name: string;
}

/** A context for `config`, with the real outside world unless given. */
export async function doctorContext(
  config: HearthConfig,
  given: Partial<DoctorContext> & { resolver: DoctorResolver },
): Promise<DoctorContext> {
  return {
    config,
    now: Date.now,
    fetch: globalThis.fetch,
    link: given.link !== undefined ? given.link : await readEdgeLink(config.dataDir),
    freeSpace,
    timeoutMs: 5_000,
    ...given,
  };
}

const dayMs = 24 * 3600_000;
const data = (ctx: DoctorContext) => `--data ${ctx.config.dataDir}`;

/** RFC 6761 §6.3-6.4: these names never resolve on the Internet, so nothing is published. */
function localDomain(domain: string): boolean {
  return /(^|\.)(localhost|invalid)$/i.test(domain);
}

/** RFC 6125 §6.4.3: a wildcard stands for exactly one leftmost label. */
function certCovers(names: string[], host: string): boolean {
  const h = host.toLowerCase();
  return names.some((n) => {
    const name = n.toLowerCase();
    if (name === h) return true;
    return name.startsWith("*.") && h.slice(h.indexOf(".") + 1) === name.slice(2) &&
      h.indexOf(".") > 0;
  });
}

const certificateCheck: Check = {
  name: "certificate",
  async run(ctx) {
    const path = `${ctx.config.dataDir}/tls/cert.pem`;
    const renew = `remove ${ctx.config.dataDir}/tls/cert.pem and tls/key.pem, run "hearth init ${
      data(ctx)
    }" (it issues a new certificate from the local CA and changes nothing else), then restart the box`;
    let info;
    try {
      info = certificateInfo(await Deno.readTextFile(path));
    } catch (e) {
      return {
        status: "fail",
        sentence: e instanceof Deno.errors.NotFound
          ? `there is no TLS certificate at ${path}`
          : `${path} is not a readable certificate (${(e as Error).message})`,
        fix: `run "hearth init ${data(ctx)}": it makes the certificate`,
      };
    }
    const now = ctx.now();
    const until = info.notAfter.getTime();
    const day = info.notAfter.toISOString().slice(0, 10);
    if (until <= now) {
      return {
        status: "fail",
        sentence: `the TLS certificate expired on ${day}: mail clients refuse to connect`,
        fix: renew,
      };
    }
    if (info.notBefore.getTime() > now) {
      return {
        status: "fail",
        sentence: `the TLS certificate is not valid before ${info.notBefore.toISOString()}`,
        fix: "check this machine's clock (see the clock check)",
      };
    }
    const hosts = [...new Set([ctx.config.hostname, ctx.config.mailHostname])];
    const missing = hosts.filter((h) => !certCovers(info.names, h));
    if (missing.length) {
      return {
        status: "fail",
        sentence: `the TLS certificate names ${info.names.join(", ")}, not ${
          missing.join(" or ")
        }: clients connecting by that name see a mismatch`,
        fix: missing.every((m) => m === ctx.config.hostname)
          ? renew
          : `put a certificate for ${
            missing.join(", ")
          } in ${path} (and its key in tls/key.pem), ` +
            `or set "mailHostname" in config.json to a name it covers`,
      };
    }
    const left = until - now;
    if (left < 21 * dayMs) {
      return {
        status: "warn",
        sentence: `the TLS certificate expires in ${formatDuration(left)} (${day})`,
        fix: renew,
      };
    }
    return {
      status: "ok",
      sentence: `the TLS certificate is valid until ${day} for ${hosts.join(", ")}`,
    };
  },
};

const listenersCheck: Check = {
  name: "listeners",
  async run(ctx) {
    const probes = await probeListeners(ctx.config, Math.min(ctx.timeoutMs, 2_000));
    const list = (ps: typeof probes) => ps.map((p) => `${p.name} ${p.port}`).join(", ");
    const closed = probes.filter((p) => p.state === "closed");
    const foreign = probes.filter((p) => p.state === "foreign");
    if (probes.length && closed.length === probes.length) {
      return {
        status: "warn",
        sentence: "the home box is not running (none of its ports answers)",
        fix: `start it with "hearth home ${data(ctx)}" (or "hearth up" to run the edge too)`,
      };
    }
    if (foreign.length) {
      return {
        status: "fail",
        sentence: `something other than Hearth answers on ${list(foreign)}`,
        fix: "stop the other server, or give Hearth other ports (--imap-port and the like)",
      };
    }
    if (closed.length) {
      return {
        status: "fail",
        sentence: `the box runs, but ${list(closed)} does not answer`,
        fix: "look at the box's log for a failed listener, then restart it",
      };
    }
    return {
      status: "ok",
      sentence: `the home box answers on ${list(probes)} (on ${ctx.config.listen})`,
    };
  },
};

function edgeProbe(ctx: DoctorContext): Promise<EdgeProbe | null> {
  ctx.edge ??= ctx.link
    ? homeSigningKey(ctx.config.dataDir).then((key) =>
      probeEdge(ctx.link!, key, { fetch: ctx.fetch, now: ctx.now, timeoutMs: ctx.timeoutMs })
    )
    : Promise.resolve(null);
  return ctx.edge;
}

const edgeCheck: Check = {
  name: "edge link",
  async run(ctx) {
    const probe = await edgeProbe(ctx);
    if (!probe) {
      return {
        status: "warn",
        sentence:
          "this box is not linked to an edge: mail reaches it only on its own MX port, and it sends directly",
        fix: `run "hearth up ${
          data(ctx)
        }" (edge here), or "hearth edge add-home --domain ${ctx.config.domain}" on the edge and then "hearth home link URL TOKEN ${
          data(ctx)
        }"`,
      };
    }
    if (probe.unreachable) {
      return {
        status: "fail",
        sentence: `the edge at ${probe.url} is unreachable: ${probe.unreachable}`,
        fix:
          `start the edge ("hearth edge" there, or "hearth up" here), or correct the URL in ${ctx.config.dataDir}/edge-link.json`,
      };
    }
    if (probe.refused) {
      return {
        status: "fail",
        sentence:
          `the edge at ${probe.url} answers but refuses this box's signed requests: ${probe.refused}`,
        fix:
          `if the clock check fails, fix the clock; otherwise link again: "hearth edge add-home --domain ${ctx.config.domain}" on the edge, then "hearth home link ${probe.url} TOKEN ${
            data(ctx)
          }"`,
      };
    }
    if (probe.waiting === 0) {
      return { status: "ok", sentence: `the edge at ${probe.url} answers; no mail waits there` };
    }
    const count = `${probe.waiting}${probe.more ? "+" : ""} message${probe.waiting > 1 ? "s" : ""}`;
    const age = probe.oldest === null ? 0 : ctx.now() - probe.oldest;
    const sentence = `the edge at ${probe.url} answers; ${count} (${probe.waitingBytes} bytes) ` +
      `wait${probe.waiting > 1 ? "" : "s"} there, the oldest since ${formatDuration(age)}`;
    // A running box fetches within seconds: minutes of waiting mean it is not fetching.
    if (age > 10 * 60_000) {
      return {
        status: "warn",
        sentence,
        fix: `start the home box ("hearth home ${
          data(ctx)
        }"); if it runs, its log says why it does not fetch (edge-link.failed)`,
      };
    }
    return { status: "ok", sentence };
  },
};

const clockCheck: Check = {
  name: "clock",
  async run(ctx) {
    const probe = await edgeProbe(ctx);
    if (!probe || probe.skewMs === null) {
      return {
        status: "ok",
        sentence: probe
          ? `not checked: the edge ${probe.unreachable ? "did not answer" : "gave no time"}`
          : "not checked: there is no edge to compare with",
      };
    }
    const skew = Math.abs(probe.skewMs) - probe.uncertaintyMs;
    const direction = probe.skewMs > 0 ? "behind" : "ahead of";
    const sentence = `this clock is ${
      formatDuration(Math.abs(probe.skewMs))
    } ${direction} the edge's`;
    const fix = "synchronise the clock (NTP: timedatectl set-ntp true, or chrony)";
    // The edge refuses signed requests more than five minutes off (docs/edge.md).
    if (skew > maxSkewMs * 0.8) {
      return { status: "fail", sentence: `${sentence}: the edge refuses its requests`, fix };
    }
    if (skew > 30_000) return { status: "warn", sentence, fix };
    return { status: "ok", sentence: `this clock agrees with the edge's (within a few seconds)` };
  },
};

const queueCheck: Check = {
  name: "outbound queue",
  async run(ctx) {
    const { kv } = await openStore(ctx.config);
    let q;
    try {
      q = await queueSummary(kv, ctx.config.dataDir);
    } finally {
      kv.close();
    }
    if (q.items === 0) return { status: "ok", sentence: "the outbound queue is empty" };
    const age = ctx.now() - q.oldestCreated!;
    let sentence = `${q.items} message${
      q.items > 1 ? "s" : ""
    } in the outbound queue for ${q.recipients} recipient${
      q.recipients === 1 ? "" : "s"
    }, the oldest ${formatDuration(age)} old`;
    if (q.failing.length === 0 && age < 3600_000) return { status: "ok", sentence };
    const reasons = q.failing.slice(0, 3).map((f) => `${f.domain}: ${f.reason || f.state}`);
    if (reasons.length) {
      sentence += `; failing: ${reasons.join("; ")}${q.failing.length > 3 ? "; …" : ""}`;
    }
    return {
      status: age > dayMs ? "fail" : "warn",
      sentence,
      fix: `"hearth queue ${
        data(ctx)
      }" shows each item; after fixing the cause, "hearth queue retry --all"`,
    };
  },
};

const backupCheck: Check = {
  name: "backups",
  async run(ctx) {
    const { kv } = await openStore(ctx.config);
    let peers: BackupPeerRecord[];
    const drills = new Map<string, DrillResult | null>();
    try {
      peers = await backupPeers(kv);
      for (const p of peers) drills.set(p.peer, await lastDrill(kv, p.peer));
    } finally {
      kv.close();
    }
    if (!peers.length) {
      return {
        status: "warn",
        sentence: "no backup peer is configured: a dead disk would lose this box's mail",
        fix: 'ask a friend with a Hearth box for a grant ("hearth friend allow"), then run ' +
          `"hearth backup add-peer GRANT ${data(ctx)}"`,
      };
    }
    const problems: string[] = [];
    for (const p of peers) {
      const drill = drills.get(p.peer);
      if (p.lastError) problems.push(`${p.url}: the last run failed (${p.lastError})`);
      else if (!p.lastSuccess || ctx.now() - p.lastSuccess > dayMs) {
        problems.push(`${p.url}: no successful backup for more than a day`);
      }
      if (drill && !drill.ok) problems.push(`${p.url}: the last restore drill failed`);
    }
    if (problems.length) {
      return {
        status: "fail",
        sentence: problems.join("; "),
        fix: `"hearth backup status ${data(ctx)}" shows each peer; "hearth backup run" retries`,
      };
    }
    const last = Math.max(...peers.map((p) => p.lastSuccess ?? 0));
    const drilled = [...drills.values()].filter((d) => d?.ok).length;
    return {
      status: "ok",
      sentence: `${peers.length} backup peer${peers.length > 1 ? "s" : ""}, last backup ${
        formatDuration(ctx.now() - last)
      } ago; ${drilled} with a passed restore drill`,
    };
  },
};

const diskCheck: Check = {
  name: "disk space",
  async run(ctx) {
    const space = await ctx.freeSpace(ctx.config.dataDir);
    if (!space) {
      return {
        status: "warn",
        sentence:
          `could not tell the free space of ${ctx.config.dataDir} ("df" is missing or failed)`,
        fix: "check it by hand; the box needs room for mail and its index",
      };
    }
    const gib = (n: number) => `${(n / 2 ** 30).toFixed(1)} GiB`;
    const share = space.totalBytes ? space.availableBytes / space.totalBytes : 1;
    const sentence = `${gib(space.availableBytes)} free of ${
      gib(space.totalBytes)
    } on the data directory's disk`;
    const fix = "free some space, or move the data directory to a larger disk (--data)";
    // Deno KV (SQLite) needs room for its WAL; a full disk refuses deliveries (SMTP 452).
    if (space.availableBytes < 256 * 2 ** 20) return { status: "fail", sentence, fix };
    if (space.availableBytes < 2 * 2 ** 30 || share < 0.05) {
      return { status: "warn", sentence, fix };
    }
    return { status: "ok", sentence };
  },
};

/** The checks, in the order they print: one per DNS record, then the box itself. */
export async function doctorChecks(config: HearthConfig): Promise<Check[]> {
  const dns: Check[] = localDomain(config.domain)
    ? [{
      name: "dns",
      run: () =>
        Promise.resolve({
          status: "ok" as const,
          sentence:
            `${config.domain} is a local name (RFC 6761): nothing is published in DNS for it`,
        }),
    }]
    : (await dnsRecords(config)).map((record) => ({
      name: `dns ${record.type} ${record.name.replace(/\.$/, "")}`,
      run: (ctx: DoctorContext) => checkDnsRecord(record, ctx.resolver),
    }));
  return [
    ...dns,
    certificateCheck,
    listenersCheck,
    edgeCheck,
    queueCheck,
    backupCheck,
    diskCheck,
    clockCheck,
  ];
}

/** Runs every check (concurrently; each is bounded); a check that throws is a failure. */
export async function runDoctor(ctx: DoctorContext, checks?: Check[]): Promise<DoctorResult[]> {
  const list = checks ?? await doctorChecks(ctx.config);
  return await Promise.all(list.map(async (check) => {
    try {
      return { name: check.name, ...(await check.run(ctx)) };
    } catch (e) {
      return {
        name: check.name,
        status: "fail" as const,
        sentence: `the check failed: ${(e as Error).message}`,
        fix: "run hearth doctor again; if it persists, report it with this line",
      };
    }
  }));
}

const symbols = { ok: "✓", warn: "!", fail: "✗" };

/** One line per check (symbol, name, sentence), an indented `fix:` line, then a verdict. */
export function formatDoctor(results: DoctorResult[]): string {
  const lines: string[] = [];
  for (const r of results) {
    lines.push(`${symbols[r.status]} ${r.name}: ${r.sentence}.`);
    if (r.fix && r.status !== "ok") lines.push(`    fix: ${r.fix}`);
  }
  const fails = results.filter((r) => r.status === "fail").length;
  const warns = results.filter((r) => r.status === "warn").length;
  const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? "" : "s"}`;
  lines.push("");
  lines.push(
    fails
      ? `${plural(fails, "problem")} to fix${warns ? `, ${plural(warns, "warning")}` : ""}.`
      : warns
      ? `All is well: no problem found (${plural(warns, "warning")} above).`
      : "All is well.",
  );
  return lines.join("\n");
}

/** 0 when no check failed, else 1. */
export function doctorExitCode(results: DoctorResult[]): number {
  return results.some((r) => r.status === "fail") ? 1 : 0;
}
