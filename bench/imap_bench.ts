/**
 * IMAP benchmark: Hearth against a private Dovecot, same corpus, same operations, same run.
 *
 *   deno task bench [--messages 10000] [--runs 5] [--only hearth|dovecot] [--seed N]
 *                   [--json FILE] [--keep]
 *
 * Each target is loaded by APPEND (not timed), then every operation is timed from the first
 * command byte written to the tagged response, on a fresh logged-in connection per run; the
 * table shows medians. Search results and fetched byte counts are checked against the corpus
 * so a fast wrong answer does not pass as a win.
 */

import { exitWithUsage, log } from "./report.ts";
import { generateCorpus, KNOWN_FROM, Prng, RARE_WORD } from "./corpus.ts";
import { startDovecot } from "./dovecot.ts";
import { startHearth } from "./hearth.ts";
import { type CommandResult, ImapClient, quote } from "./imap_client.ts";
import type { BenchTarget, RunningTarget } from "./target.ts";

interface Options {
  messages: number;
  runs: number;
  only?: string;
  seed: number;
  json?: string;
  keep: boolean;
}

const TARGET_NAMES = ["hearth", "dovecot"] as const;
const MOVE_MAILBOX = "BenchMoved";
const OPERATIONS = [
  "SELECT INBOX",
  "FETCH 1:* (UID FLAGS)",
  "FETCH 1:* (ENVELOPE)",
  "FETCH 1:* (BODYSTRUCTURE)",
  "UID FETCH 200 BODY.PEEK[]",
  "SEARCH FROM",
  "SEARCH TEXT (rare word)",
  "STORE 1:* +FLAGS (\\Flagged)",
  "UID MOVE 100",
] as const;
type Operation = typeof OPERATIONS[number];

interface TargetState {
  running: RunningTarget;
  samples: Map<Operation, number[]>;
  /** UIDs in load order, as assigned by this server. */
  loadedUids: number[];
  loadMs: number;
  notes: string[];
  memory?: { idleKb: number; clientsKb: number; clients: number };
}

function parseArgs(args: string[]): Options {
  const options: Options = { messages: 10_000, runs: 5, seed: 20240611, keep: false };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const [flag, inline] = arg.includes("=") ? arg.split(/=(.*)/s, 2) : [arg, undefined];
    const value = () => {
      const v = inline ?? args[++i];
      if (v === undefined) usage(`${flag} needs a value`);
      return v;
    };
    const count = (min: number) => {
      const n = Number(value());
      if (!Number.isInteger(n) || n < min) usage(`${flag} needs an integer of at least ${min}`);
      return n;
    };
    switch (flag) {
      case "--messages":
        options.messages = count(10);
        break;
      case "--runs":
        options.runs = count(1);
        break;
      case "--seed":
        options.seed = count(0);
        break;
      case "--only": {
        const only = value();
        if (!(TARGET_NAMES as readonly string[]).includes(only)) {
          usage(`--only takes ${TARGET_NAMES.join(" or ")}`);
        }
        options.only = only;
        break;
      }
      case "--json":
        options.json = value();
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
  const text = "usage: deno task bench [--messages N] [--runs N] [--only hearth|dovecot] " +
    "[--seed N] [--json FILE] [--keep]";
  return exitWithUsage(text, problem);
}

async function connect(target: BenchTarget): Promise<ImapClient> {
  const client = await ImapClient.connect(target);
  await client.login(target.user, target.password);
  return client;
}

function searchResults(r: CommandResult): number[] {
  const out: number[] = [];
  for (const u of r.untagged) {
    const m = u.text.match(/^\* (?:SEARCH|ESEARCH)\b(.*)$/i);
    if (m) out.push(...m[1].trim().split(/\s+/).filter((s) => /^\d+$/.test(s)).map(Number));
  }
  return out;
}

function existsCount(r: CommandResult): number | undefined {
  for (const u of r.untagged) {
    const m = u.text.match(/^\* (\d+) EXISTS/i);
    if (m) return Number(m[1]);
  }
  return undefined;
}

/** Compact UID set: 1,3:5,9. */
function uidSet(uids: number[]): string {
  const sorted = [...uids].sort((a, b) => a - b);
  const ranges: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
    ranges.push(i === j ? `${sorted[i]}` : `${sorted[i]}:${sorted[j]}`);
    i = j + 1;
  }
  return ranges.join(",");
}

async function load(state: TargetState, messages: Uint8Array[]): Promise<void> {
  const { target } = state.running;
  const client = await connect(target);
  try {
    const created = await client.send(`CREATE ${quote(MOVE_MAILBOX)}`);
    if (created.status !== "OK") log(`${target.name}: CREATE ${MOVE_MAILBOX}: ${created.tagged}`);
    const started = performance.now();
    const mode = client.capabilities.has("LITERAL+") ? "pipelined, LITERAL+" : "synchronising";
    log(`${target.name}: loading ${messages.length} messages (${mode})`);
    await client.appendAll("INBOX", messages, 64, (done) => {
      if (done % 2000 === 0) log(`${target.name}: ${done}/${messages.length} appended`);
    });
    state.loadMs = performance.now() - started;
    const selected = await client.command("SELECT INBOX");
    const exists = existsCount(selected);
    if (exists !== messages.length) {
      throw new Error(
        `${target.name}: INBOX has ${exists} messages after loading ${messages.length}`,
      );
    }
    state.loadedUids = searchResults(await client.command("UID SEARCH ALL"));
    log(`${target.name}: loaded in ${(state.loadMs / 1000).toFixed(1)} s`);
  } finally {
    await client.logout();
  }
}

interface Plan {
  /** Indices (load order) of the messages fetched whole; never moved, so their UIDs hold. */
  bodySample: number[];
  moveCount: number;
  knownFromCount: number;
  rareWordCount: number;
  /** Total size of the sampled messages, to check BODY[] returned them whole. */
  bodySampleBytes: number;
}

async function runOnce(state: TargetState, plan: Plan, run: number, messages: number) {
  const { target } = state.running;
  const client = await connect(target);
  const record = (op: Operation, r: CommandResult) => {
    let list = state.samples.get(op);
    if (!list) state.samples.set(op, list = []);
    list.push(r.ms);
  };
  const check = (ok: boolean, what: string) => {
    if (!ok) {
      const note = `run ${run}: ${what}`;
      state.notes.push(note);
      log(`${target.name}: WARNING ${note}`);
    }
  };
  try {
    const selected = await client.command("SELECT INBOX");
    record("SELECT INBOX", selected);
    check(existsCount(selected) === messages, `SELECT reported ${existsCount(selected)} EXISTS`);

    const flags = await client.command("FETCH 1:* (UID FLAGS)", { collect: false });
    record("FETCH 1:* (UID FLAGS)", flags);
    check(flags.untaggedCount >= messages, `FETCH FLAGS returned ${flags.untaggedCount}`);

    const envelope = await client.command("FETCH 1:* (ENVELOPE)", { collect: false });
    record("FETCH 1:* (ENVELOPE)", envelope);
    check(envelope.untaggedCount >= messages, `FETCH ENVELOPE returned ${envelope.untaggedCount}`);

    const structure = await client.command("FETCH 1:* (BODYSTRUCTURE)", { collect: false });
    record("FETCH 1:* (BODYSTRUCTURE)", structure);
    check(
      structure.untaggedCount >= messages,
      `FETCH BODYSTRUCTURE returned ${structure.untaggedCount}`,
    );

    const bodyUids = plan.bodySample.map((i) => state.loadedUids[i]);
    const bodies = await client.command(`UID FETCH ${uidSet(bodyUids)} (BODY.PEEK[])`);
    record("UID FETCH 200 BODY.PEEK[]", bodies);
    const literalBytes = bodies.untagged.reduce(
      (n, u) => n + u.literals.reduce((m, l) => m + l.length, 0),
      0,
    );
    check(
      literalBytes === plan.bodySampleBytes,
      `BODY[] returned ${literalBytes} bytes, expected ${plan.bodySampleBytes}`,
    );

    const from = await client.command(`SEARCH FROM ${quote(KNOWN_FROM)}`);
    record("SEARCH FROM", from);
    const fromHits = searchResults(from).length;
    check(fromHits === plan.knownFromCount, `SEARCH FROM found ${fromHits}/${plan.knownFromCount}`);

    const text = await client.command(`SEARCH TEXT ${RARE_WORD}`);
    record("SEARCH TEXT (rare word)", text);
    const textHits = searchResults(text).length;
    check(textHits === plan.rareWordCount, `SEARCH TEXT found ${textHits}/${plan.rareWordCount}`);

    const store = await client.command("STORE 1:* +FLAGS (\\Flagged)", { collect: false });
    record("STORE 1:* +FLAGS (\\Flagged)", store);
    await client.command("STORE 1:* -FLAGS.SILENT (\\Flagged)", { collect: false });

    // Move a different random 100 each run, never one of the BODY[] sample.
    const current = searchResults(await client.command("UID SEARCH ALL"));
    const keep = new Set(bodyUids);
    const movable = current.filter((uid) => !keep.has(uid));
    const rng = new Prng(1000 + run);
    const moveUids = rng.sample(movable.length, plan.moveCount).map((i) => movable[i]);
    const moved = await client.command(`UID MOVE ${uidSet(moveUids)} ${quote(MOVE_MAILBOX)}`, {
      collect: false,
    });
    record("UID MOVE 100", moved);

    // Restore the starting state (not timed).
    const other = await client.command(`SELECT ${quote(MOVE_MAILBOX)}`);
    check(existsCount(other) === plan.moveCount, `${MOVE_MAILBOX} has ${existsCount(other)}`);
    await client.command("UID MOVE 1:* INBOX", { collect: false });
  } finally {
    await client.logout();
  }
}

/** VmRSS of a process in KiB, from /proc/PID/status. */
async function residentKb(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const m = status.match(/^VmRSS:\s+(\d+) kB/m);
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

/** Sum of VmRSS over a process and its descendants (shared pages count once per process). */
async function treeResidentKb(pid: number): Promise<number> {
  const parents = new Map<number, number>();
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = await Deno.readTextFile(`/proc/${entry.name}/stat`);
      // Field 4 (ppid) follows the parenthesised command name, which may contain spaces.
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      parents.set(Number(entry.name), ppid);
    } catch {
      // The process exited while we looked.
    }
  }
  const inTree = (p: number): boolean => {
    for (let q: number | undefined = p; q !== undefined && q > 1; q = parents.get(q)) {
      if (q === pid) return true;
    }
    return false;
  };
  let total = 0;
  for (const p of parents.keys()) {
    if (inTree(p)) total += await residentKb(p).catch(() => 0);
  }
  return total;
}

async function measureMemory(state: TargetState, clients: number): Promise<void> {
  const { target } = state.running;
  const measure = target.name === "hearth" ? residentKb : treeResidentKb;
  await new Promise((r) => setTimeout(r, 2000));
  const idleKb = await measure(target.pid);
  const open: ImapClient[] = [];
  try {
    for (let i = 0; i < clients; i++) {
      const c = await connect(target);
      open.push(c);
      await c.command("SELECT INBOX", { collect: false });
    }
    await new Promise((r) => setTimeout(r, 1000));
    state.memory = { idleKb, clientsKb: await measure(target.pid), clients };
  } finally {
    await Promise.all(open.map((c) => c.logout()));
  }
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

function formatMs(ms: number | undefined): string {
  if (ms === undefined) return "—";
  return ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2);
}

function printTable(states: Map<string, TargetState>, options: Options): void {
  const hearth = states.get("hearth");
  const dovecot = states.get("dovecot");
  const rows: string[][] = [["operation", "Hearth ms", "Dovecot ms", "Hearth/Dovecot"]];
  for (const op of OPERATIONS) {
    const h = hearth?.samples.get(op);
    const d = dovecot?.samples.get(op);
    const hm = h ? median(h) : undefined;
    const dm = d ? median(d) : undefined;
    const ratio = hm !== undefined && dm !== undefined && dm > 0 ? (hm / dm).toFixed(2) : "—";
    rows.push([op, formatMs(hm), formatMs(dm), ratio]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) =>
    r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join("  ");
  console.log(
    `\nIMAP benchmark: ${options.messages} messages, median of ${options.runs} runs` +
      ` (seed ${options.seed})`,
  );
  console.log(line(rows[0]));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const r of rows.slice(1)) console.log(line(r));
  console.log("");
  for (const state of states.values()) {
    const { target } = state.running;
    const mb = (kb: number) => `${(kb / 1024).toFixed(1)} MiB`;
    console.log(
      `${target.name}${target.version ? ` ${target.version}` : ""}: loaded by APPEND in ` +
        `${(state.loadMs / 1000).toFixed(1)} s`,
    );
    if (state.memory) {
      const what = target.name === "hearth" ? "RSS" : "RSS summed over its processes";
      console.log(
        `  ${what}: idle ${mb(state.memory.idleKb)}, with ${state.memory.clients} logged-in ` +
          `clients (INBOX selected) ${mb(state.memory.clientsKb)}`,
      );
    }
    for (const note of state.notes) console.log(`  WARNING ${note}`);
  }
}

/** Runs the IMAP benchmark with the given arguments; throws when a result was wrong. */
export async function runImapBench(args: string[]): Promise<void> {
  const options = parseArgs(args);
  const names = options.only ? [options.only] : [...TARGET_NAMES];
  const started = performance.now();

  log(`generating ${options.messages} messages (seed ${options.seed})`);
  const corpus = generateCorpus({ count: options.messages, seed: options.seed });
  const sizes = corpus.messages.map((m) => m.length);
  log(
    `corpus: ${(corpus.totalBytes / 1048576).toFixed(1)} MiB, median ${
      median(sizes).toFixed(0)
    } bytes, ${corpus.knownFromCount} from ${KNOWN_FROM}, ${corpus.rareWordCount} with "${RARE_WORD}"`,
  );
  const rng = new Prng(options.seed ^ 0x5eed);
  const bodyCount = Math.min(200, Math.floor(options.messages / 2));
  const bodySample = rng.sample(options.messages, bodyCount);
  const plan: Plan = {
    bodySample,
    moveCount: Math.min(100, options.messages - bodyCount),
    knownFromCount: corpus.knownFromCount,
    rareWordCount: corpus.rareWordCount,
    bodySampleBytes: bodySample.reduce((n, i) => n + corpus.messages[i].length, 0),
  };

  const states = new Map<string, TargetState>();
  const stopAll = async () => {
    await Promise.all([...states.values()].map((s) => s.running.stop().catch(() => {})));
  };
  const onSignal = () => {
    log("interrupted; stopping servers");
    stopAll().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);

  try {
    for (const name of names) {
      log(`starting ${name}`);
      const running = name === "hearth"
        ? await startHearth({ keep: options.keep })
        : await startDovecot({ keep: options.keep });
      states.set(name, { running, samples: new Map(), loadedUids: [], loadMs: 0, notes: [] });
    }
    for (const state of states.values()) await load(state, corpus.messages);
    for (const state of states.values()) {
      if (state.running.restart) {
        log(`${state.running.target.name}: restarting after the load`);
        await state.running.restart();
      }
    }

    // Targets alternate within each run, so drift on the machine hits both alike.
    for (let run = 1; run <= options.runs; run++) {
      for (const state of states.values()) {
        log(`${state.running.target.name}: run ${run}/${options.runs}`);
        await runOnce(state, plan, run, options.messages);
      }
    }
    for (const state of states.values()) await measureMemory(state, 20);

    printTable(states, options);
    console.log(`total time ${((performance.now() - started) / 1000).toFixed(0)} s`);
    if (options.json) {
      const raw = Object.fromEntries(
        [...states].map(([name, s]) => [name, {
          version: s.running.target.version,
          loadMs: s.loadMs,
          memory: s.memory,
          samplesMs: Object.fromEntries(s.samples),
          notes: s.notes,
        }]),
      );
      await Deno.writeTextFile(
        options.json,
        JSON.stringify({ options, corpus: { bytes: corpus.totalBytes }, targets: raw }, null, 2),
      );
    }
    const wrong = [...states.values()].some((s) => s.notes.length > 0);
    if (wrong) throw new Error("some results were wrong (see WARNING lines above)");
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
    await stopAll();
  }
}

if (import.meta.main) {
  try {
    await runImapBench(Deno.args);
  } catch (err) {
    console.error(`bench: ${(err as Error).message}`);
    Deno.exit(1);
  }
}
