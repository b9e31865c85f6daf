/**
 * SMTP receive benchmark: Postfix's smtp-source drives Hearth's MX and a private Postfix
 * (delivering to a maildir) with the same load, in the same run.
 *
 *   deno run -A bench/smtp_bench.ts [--smtp-messages 2000] [--smtp-concurrency 1,4,16]
 *                                   [--smtp-size 10240] [--smtp-only hearth|postfix]
 *                                   [--smtp-rounds 1] [--smtp-warmup 200] [--keep]
 *
 * For each concurrency, smtp-source sends the messages as that many parallel sessions, one
 * message per connection (its default), and the wall clock from start to exit gives messages
 * per second: every message then has had its 250, which both servers give only once the message
 * is durable. Afterwards the arrivals are counted (Hearth: IMAP STATUS; Postfix: maildir files
 * once the queue has drained), so a fast wrong answer does not pass as a win. With
 * `--smtp-rounds N` every level is run N times (the first server alternating), and the table
 * gives medians: on a shared machine a ratio from two runs a few seconds apart is the figure.
 * Before the measured runs each server takes `--smtp-warmup` messages at the highest
 * concurrency, unmeasured: Postfix's master starts its smtpd and cleanup processes on demand,
 * and its first run was up to 40% slower than the later ones.
 */

import { cpuMsOf } from "./proc.ts";
import { exitWithUsage, log } from "./report.ts";
import { startHearth } from "./hearth.ts";
import { ImapClient } from "./imap_client.ts";
import { startPostfix } from "./postfix.ts";

export const SMTP_SOURCE = "/usr/sbin/smtp-source";
const TARGET_NAMES = ["hearth", "postfix"] as const;
// `.invalid` (RFC 2606): resolvers answer at once without asking the network, so the SPF and
// DMARC lookups an MX makes for the sender measure the server, not the machine's DNS.
const SENDER = "sender@bench-client.invalid";

export interface SmtpBenchOptions {
  messages: number;
  concurrency: number[];
  size: number;
  only?: string;
  rounds: number;
  warmup: number;
  keep: boolean;
}

/** One smtp-source run against one server. */
interface RunResult {
  ms: number;
  /** Postfix only: from the start until the last message was in the maildir. */
  deliveredMs?: number;
  arrived: number;
}

/** A server under test, reduced to what this benchmark needs. */
interface SmtpTarget {
  name: string;
  version: string;
  port: number;
  recipient: string;
  /** Messages stored for the recipient so far. */
  count(): Promise<number>;
  /** Postfix only: resolves when `expected` messages are in the maildir. */
  drained?(expected: number, timeoutMs: number): Promise<void>;
  /** Hearth only: resolves once its background work (the spill to files) is over. */
  settled?(timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

export function parseSmtpArgs(args: string[]): SmtpBenchOptions {
  const options: SmtpBenchOptions = {
    messages: 2000,
    concurrency: [1, 4, 16],
    size: 10240,
    rounds: 1,
    warmup: 200,
    keep: false,
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const [flag, inline] = arg.includes("=") ? arg.split(/=(.*)/s, 2) : [arg, undefined];
    const value = () => {
      const v = inline ?? args[++i];
      if (v === undefined) usage(`${flag} needs a value`);
      return v;
    };
    const integer = (text: string, min: number) => {
      const n = Number(text);
      if (!Number.isInteger(n) || n < min) usage(`${flag} needs integers of at least ${min}`);
      return n;
    };
    switch (flag) {
      case "--smtp-messages":
        options.messages = integer(value(), 1);
        break;
      case "--smtp-concurrency":
        options.concurrency = value().split(",").map((s) => integer(s, 1));
        break;
      case "--smtp-size":
        options.size = integer(value(), 1);
        break;
      case "--smtp-only": {
        const only = value();
        if (!(TARGET_NAMES as readonly string[]).includes(only)) {
          usage(`--smtp-only takes ${TARGET_NAMES.join(" or ")}`);
        }
        options.only = only;
        break;
      }
      case "--smtp-rounds":
        options.rounds = integer(value(), 1);
        break;
      case "--smtp-warmup":
        options.warmup = integer(value(), 0);
        break;
      case "--keep":
        options.keep = true;
        break;
      case "-h":
      case "--help":
        usage();
        break;
      default:
        usage(`unknown argument ${arg}`);
    }
  }
  return options;
}

function usage(problem?: string): never {
  const text = "usage: smtp_bench.ts [--smtp-messages N] [--smtp-concurrency 1,4,16] " +
    "[--smtp-size BYTES] [--smtp-only hearth|postfix] [--smtp-rounds N] [--smtp-warmup N] [--keep]";
  return exitWithUsage(text, problem);
}

async function startHearthTarget(keep: boolean): Promise<SmtpTarget> {
  const running = await startHearth({ keep });
  const { target } = running;
  if (running.mxPort === undefined) throw new Error("Hearth started without an MX port");
  // startHearth waits for the IMAP port; the MX listener opens a moment later.
  await waitForGreeting(running.mxPort, 20_000);
  return {
    name: "hearth",
    version: target.version ?? "Hearth",
    port: running.mxPort,
    recipient: target.user,
    async count() {
      const client = await ImapClient.connect(target);
      try {
        await client.login(target.user, target.password);
        const r = await client.command("STATUS INBOX (MESSAGES)");
        for (const u of r.untagged) {
          const m = u.text.match(/\bMESSAGES (\d+)/i);
          if (m) return Number(m[1]);
        }
        throw new Error(`no MESSAGES in STATUS response: ${r.tagged}`);
      } finally {
        await client.logout();
      }
    },
    async settled(timeoutMs) {
      // Work Hearth leaves for a quiet moment must not land in the other server's measurement:
      // the spiller moves staged blobs to files a second after the last delivery, and search
      // texts are made and stored once deliveries pause. A second reader of the SQLite file is
      // fine while Hearth runs.
      const until = Date.now() + timeoutMs;
      const kv = await Deno.openKv(`${running.dataDir}/home.kv`);
      try {
        while (Date.now() < until) {
          const staged = await Array.fromAsync(kv.list({ prefix: ["staged"] }, { limit: 1 }));
          if (staged.length === 0) break;
          await new Promise((r) => setTimeout(r, 50));
        }
        if (Date.now() >= until) {
          throw new Error(`hearth: blobs still staged in KV ${timeoutMs} ms after the run`);
        }
      } finally {
        kv.close();
      }
      // Then until the process is idle: under 3% of a core over half a second.
      while (Date.now() < until) {
        const before = cpuMsOf(target.pid);
        await new Promise((r) => setTimeout(r, 500));
        if (cpuMsOf(target.pid) - before < 15) return;
      }
      throw new Error(`hearth: still busy ${timeoutMs} ms after the run`);
    },
    stop: running.stop,
  };
}

async function waitForGreeting(port: number, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      const buf = new Uint8Array(512);
      const n = await conn.read(buf).finally(() => conn.close());
      if (new TextDecoder().decode(buf.subarray(0, n ?? 0)).startsWith("220")) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`Hearth's MX did not greet on port ${port} within ${timeoutMs} ms`);
}

async function startPostfixTarget(keep: boolean): Promise<SmtpTarget> {
  const postfix = await startPostfix({ keep });
  return {
    name: "postfix",
    version: postfix.version,
    port: postfix.port,
    recipient: postfix.recipient,
    count: postfix.deliveredCount,
    async drained(expected, timeoutMs) {
      const until = Date.now() + timeoutMs;
      while (Date.now() < until) {
        if (await postfix.deliveredCount() >= expected) return;
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error(
        `postfix: ${await postfix.deliveredCount()} of ${expected} messages in the maildir ` +
          `after ${timeoutMs} ms, ${await postfix
            .queuedCount()} still queued (see ${postfix.dir}/maillog with --keep)`,
      );
    },
    stop: postfix.stop,
  };
}

async function smtpSource(
  target: SmtpTarget,
  options: SmtpBenchOptions,
  sessions: number,
): Promise<RunResult> {
  const before = await target.count();
  const args = [
    "-s",
    String(sessions),
    "-l",
    String(options.size),
    "-m",
    String(options.messages),
    "-f",
    SENDER,
    "-t",
    target.recipient,
    "-M",
    "bench-client.invalid",
    `127.0.0.1:${target.port}`,
  ];
  const started = performance.now();
  const out = await new Deno.Command(SMTP_SOURCE, { args, stdout: "piped", stderr: "piped" })
    .output();
  const ms = performance.now() - started;
  if (!out.success) {
    const text = new TextDecoder().decode(out.stderr).trim() ||
      new TextDecoder().decode(out.stdout).trim();
    throw new Error(`${target.name}: smtp-source ${args.join(" ")} failed: ${text}`);
  }
  let deliveredMs: number | undefined;
  if (target.drained) {
    await target.drained(before + options.messages, 60_000 + options.messages * 20);
    deliveredMs = performance.now() - started;
  }
  const arrived = (await target.count()) - before;
  return { ms, deliveredMs, arrived };
}

function perSecond(messages: number, ms: number | undefined): string {
  return ms === undefined ? "—" : (messages / (ms / 1000)).toFixed(0);
}

/** Two significant digits, so a ratio far below 1 still shows its size. */
function formatRatio(ratio: number): string {
  return ratio >= 1 ? ratio.toFixed(2) : ratio.toPrecision(2);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** The median wall clock of a server's runs at one level (undefined without runs). */
function medianMs(runs: RunResult[] | undefined, pick: (r: RunResult) => number | undefined) {
  const values = (runs ?? []).map(pick).filter((v): v is number => v !== undefined);
  return values.length ? median(values) : undefined;
}

function printTable(
  results: Map<string, Map<number, RunResult[]>>,
  options: SmtpBenchOptions,
  versions: string[],
): void {
  const rows: string[][] = [[
    "sessions",
    "Hearth msg/s",
    "Postfix msg/s",
    "Postfix to maildir msg/s",
    "Hearth/Postfix",
    ...(options.rounds > 1 ? ["each round"] : []),
  ]];
  for (const c of options.concurrency) {
    const h = results.get("hearth")?.get(c);
    const p = results.get("postfix")?.get(c);
    // Ratios are paired by round (both servers a few seconds apart), then the median is taken.
    const ratios = h && p ? h.map((r, i) => p[i].ms / r.ms) : [];
    rows.push([
      String(c),
      perSecond(options.messages, medianMs(h, (r) => r.ms)),
      perSecond(options.messages, medianMs(p, (r) => r.ms)),
      perSecond(options.messages, medianMs(p, (r) => r.deliveredMs)),
      ratios.length ? formatRatio(median(ratios)) : "—",
      ...(options.rounds > 1 ? [ratios.map(formatRatio).join(" ")] : []),
    ]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) =>
    r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join("  ");
  console.log(
    `\nSMTP benchmark: smtp-source, ${options.messages} messages of ${options.size} bytes ` +
      `per run, one message per connection` +
      (options.rounds > 1 ? `, ${options.rounds} rounds (medians)` : ""),
  );
  console.log(line(rows[0]));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const r of rows.slice(1)) console.log(line(r));
  console.log(
    "\nmsg/s: messages over the wall clock of smtp-source (every message has had its 250).",
  );
  console.log("Hearth/Postfix: throughput ratio; 1 or more means Hearth is at least as fast.");
  for (const v of versions) console.log(v);
}

/** Runs the SMTP benchmark; throws when a server lost or failed a message. */
export async function runSmtpBench(args: string[]): Promise<void> {
  const options = parseSmtpArgs(args);
  try {
    await Deno.stat(SMTP_SOURCE);
  } catch {
    throw new Error(`${SMTP_SOURCE} not found: install Debian's postfix (.ci/run does)`);
  }
  const names = options.only ? [options.only] : [...TARGET_NAMES];
  const targets: SmtpTarget[] = [];
  const stopAll = async () => {
    await Promise.all(targets.map((t) => t.stop().catch(() => {})));
  };
  const onSignal = () => {
    log("interrupted; stopping servers");
    stopAll().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);

  const results = new Map<string, Map<number, RunResult[]>>();
  const wrong: string[] = [];
  try {
    for (const name of names) {
      log(`starting ${name}`);
      targets.push(
        name === "hearth"
          ? await startHearthTarget(options.keep)
          : await startPostfixTarget(options.keep),
      );
    }
    // Both servers run at each concurrency, the first one alternating from level to level, so
    // that drift on the machine and a warm-up hit both alike. Before a server's run the other's
    // background work is over (Postfix: in the maildir; Hearth: staged blobs spilled).
    if (options.warmup > 0) {
      const sessions = Math.max(...options.concurrency);
      for (const target of targets) {
        log(`${target.name}: warming up with ${options.warmup} messages, ${sessions} sessions`);
        const r = await smtpSource(target, { ...options, messages: options.warmup }, sessions);
        if (target.settled) await target.settled(60_000 + options.warmup * 5);
        if (r.arrived !== options.warmup) {
          wrong.push(`${target.name}, warm-up: ${r.arrived} of ${options.warmup} messages arrived`);
        }
      }
    }
    const levels = Array.from(
      { length: options.rounds },
      () => [...options.concurrency.entries()],
    ).flat();
    for (const [step, [level, sessions]] of levels.entries()) {
      const round = Math.floor(step / options.concurrency.length);
      const order = (level + round) % 2 === 0 ? targets : [...targets].reverse();
      for (const target of order) {
        log(`${target.name}: ${options.messages} messages, ${sessions} sessions`);
        const r = await smtpSource(target, options, sessions);
        if (target.settled) await target.settled(60_000 + options.messages * 5);
        log(
          `${target.name}: ${perSecond(options.messages, r.ms)} msg/s` +
            (r.deliveredMs
              ? `, in the maildir at ${perSecond(options.messages, r.deliveredMs)} msg/s`
              : ""),
        );
        if (r.arrived !== options.messages) {
          const note = `${target.name}, ${sessions} sessions: ${r.arrived} of ` +
            `${options.messages} messages arrived`;
          wrong.push(note);
          log(`WARNING ${note}`);
        }
        let byConcurrency = results.get(target.name);
        if (!byConcurrency) results.set(target.name, byConcurrency = new Map());
        const runs = byConcurrency.get(sessions) ?? [];
        byConcurrency.set(sessions, [...runs, r]);
      }
    }
    printTable(results, options, targets.map((t) => `${t.name}: ${t.version}`));
    for (const note of wrong) console.log(`WARNING ${note}`);
    if (wrong.length > 0) throw new Error("some messages did not arrive (see WARNING lines)");
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
    await stopAll();
  }
}

if (import.meta.main) {
  try {
    await runSmtpBench(Deno.args);
  } catch (err) {
    console.error(`bench: ${(err as Error).message}`);
    Deno.exit(1);
  }
}
