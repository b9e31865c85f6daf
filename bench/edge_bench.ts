/**
 * Edge inbound benchmark: 10 KB messages through `POST /v1/inbound` and through the SMTP front
 * of a `hearth edge` child process, each one sealed to its account and committed before the
 * answer; the edge's resident memory over the whole run; and what sealing costs.
 *
 *   deno run -A bench/edge_bench.ts [--edge-messages 3000] [--edge-concurrency 1,16,64]
 *     [--edge-smtp-messages 1000] [--edge-smtp-concurrency 1,4,16] [--edge-size 10240]
 *     [--edge-seconds 30] [--keep]
 *
 * The bench writes a home, its account (a fresh age recipient and address key) and an HTTP
 * front token straight into the edge's KV, then starts the edge on free loopback ports. The
 * home never pulls or acks, so after every level the bench counts the items that level
 * committed (a fast wrong answer fails) and deletes them from the same KV file: each level
 * starts from an empty queue, in the same edge process, whose RSS is sampled throughout.
 */

import { sealToRecipient } from "../src/crypto/age.ts";
import { generateAccountKey } from "../src/crypto/age.ts";
import { addressKey } from "../src/mail/address_key.ts";
import { inboundHeaders } from "../src/wire/edge_api.ts";
import { EdgeStore } from "../edge/store.ts";
import { sealAndCommit } from "../edge/inbound.ts";
import { freePort } from "./dovecot.ts";
import { cpuMsOf } from "./proc.ts";
import { exitWithUsage, log } from "./report.ts";
import { SMTP_SOURCE } from "./smtp_bench.ts";

const root = new URL("..", import.meta.url).pathname;
const DOMAIN = "edge-bench.test";
const RECIPIENT = `bench@${DOMAIN}`;
// `.invalid` (RFC 2606): the SPF/DMARC lookups the edge makes are answered at once.
const SENDER = "sender@bench-client.invalid";

export interface EdgeBenchOptions {
  messages: number;
  concurrency: number[];
  smtpMessages: number;
  smtpConcurrency: number[];
  size: number;
  seconds: number;
  keep: boolean;
}

/** One load level: how many messages in how long, and per-message latencies (ms). */
interface LevelResult {
  front: string;
  concurrency: number;
  sent: number;
  /** Messages sent before the measurement (committed, and in cpuMs). */
  warmup: number;
  ms: number;
  latencies: number[];
  /** CPU time (user + system, all threads) the edge process spent in the level, ms. */
  cpuMs?: number;
  /** The edge's VmRSS at the end of the level, KiB. */
  rssKiB?: number;
}

function usage(problem?: string): never {
  return exitWithUsage(
    "usage: edge_bench.ts [--edge-messages N] [--edge-concurrency 1,16,64] " +
      "[--edge-smtp-messages N] [--edge-smtp-concurrency 1,4,16] [--edge-size BYTES] " +
      "[--edge-seconds S] [--keep]",
    problem,
  );
}

export function parseEdgeArgs(args: string[]): EdgeBenchOptions {
  const o: EdgeBenchOptions = {
    messages: 3000,
    concurrency: [1, 16, 64],
    smtpMessages: 1000,
    smtpConcurrency: [1, 4, 16],
    size: 10240,
    seconds: 30,
    keep: false,
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const [flag, inline] = arg.includes("=") ? arg.split(/=(.*)/s, 2) : [arg, undefined];
    const value = () => inline ?? args[++i] ?? usage(`${flag} needs a value`);
    const int = (text: string) => {
      const n = Number(text);
      if (!Number.isInteger(n) || n < 1) usage(`${flag} needs positive integers`);
      return n;
    };
    switch (flag) {
      case "--edge-messages":
        o.messages = int(value());
        break;
      case "--edge-concurrency":
        o.concurrency = value().split(",").map(int);
        break;
      case "--edge-smtp-messages":
        o.smtpMessages = int(value());
        break;
      case "--edge-smtp-concurrency":
        o.smtpConcurrency = value().split(",").map(int);
        break;
      case "--edge-size":
        o.size = int(value());
        break;
      case "--edge-seconds":
        o.seconds = int(value());
        break;
      case "--keep":
        o.keep = true;
        break;
      case "-h":
      case "--help":
        usage();
        break;
      default:
        usage(`unknown argument ${arg}`);
    }
  }
  return o;
}

const words = ("the quarterly ledger review meeting moved to thursday please bring notes about " +
  "invoices shipping schedule warehouse budget forecast and the draft agreement we discussed " +
  "last week with our partners in the northern region").split(" ");

/** A plain RFC 5322 message of about `size` bytes (CRLF), body text wrapped at 72 columns. */
function makeMessage(size: number, n: number): Uint8Array {
  const head = [
    `From: Bench Sender <${SENDER}>`,
    `To: Bench <${RECIPIENT}>`,
    `Subject: Quarterly ledger review, part ${n}`,
    `Date: ${
      new Date(Date.UTC(2026, 10, 30, 12, 0, n % 60)).toUTCString().replace("GMT", "+0000")
    }`,
    `Message-ID: <bench-${n}-${crypto.randomUUID()}@bench-client.invalid>`,
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: 7bit",
    "",
    "",
  ].join("\r\n");
  let body = "";
  let line = "";
  let i = n;
  while (head.length + body.length < size - 80) {
    const w = words[(i++ * 7) % words.length];
    if (line.length + w.length + 1 > 72) {
      body += line + "\r\n";
      line = "";
    }
    line += line ? ` ${w}` : w;
  }
  return new TextEncoder().encode(head + body + line + "\r\n");
}

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length - 1) * p))];
}

/** The edge's KV prepared as a home would leave it, plus what the load needs to know. */
interface Setup {
  homeId: string;
  frontToken: string;
  recipient: string;
}

async function prepareKv(kvPath: string): Promise<Setup> {
  const store = new EdgeStore(await Deno.openKv(kvPath));
  try {
    const key = await generateAccountKey();
    const { homeId } = await store.registerHome(
      await store.createPairing(DOMAIN),
      // Never used to verify anything here: the bench's home sends no signed request.
      "bench-home-public-key",
    );
    await store.putAccounts(homeId, [{
      id: "acct-bench",
      recipient: key.recipient,
      addressKeys: [await addressKey(RECIPIENT)],
    }]);
    return { homeId, frontToken: await store.createFrontToken("bench"), recipient: key.recipient };
  } finally {
    store.kv.close();
  }
}

/** A running `hearth edge` child. */
interface EdgeProcess {
  pid: number;
  httpUrl: string;
  smtpPort: number;
  stop(): Promise<void>;
}

async function startEdgeProcess(dataDir: string, kvPath: string): Promise<EdgeProcess> {
  const httpPort = freePort();
  const smtpPort = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      // HEARTH_BENCH_EDGE_PROFILE=DIR writes a V8 CPU profile of the edge to DIR.
      ...(Deno.env.get("HEARTH_BENCH_EDGE_PROFILE")
        ? [`--cpu-prof`, `--cpu-prof-dir=${Deno.env.get("HEARTH_BENCH_EDGE_PROFILE")}`]
        : []),
      `${root}main.ts`,
      "edge",
      "--data",
      dataDir,
      "--kv",
      kvPath,
      "--http-port",
      String(httpPort),
      "--smtp-port",
      String(smtpPort),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
    env: { HEARTH_LOG: "warn" },
  }).spawn();
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    await child.status;
  };
  // Read stdout until the ready line, then keep draining it so the child never blocks.
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  const deadline = setTimeout(() => stop(), 30_000);
  try {
    while (!seen.includes("Hearth edge running")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the edge exited before it was ready: ${seen.trim()}`);
      seen += value;
    }
  } finally {
    clearTimeout(deadline);
  }
  (async () => {
    while (!(await reader.read()).done) { /* discard */ }
  })().catch(() => {});
  return { pid: child.pid, httpUrl: `http://127.0.0.1:${httpPort}`, smtpPort, stop };
}

/** Samples the resident memory of a process (VmRSS, KiB) until stopped. */
function sampleRss(pid: number, everyMs = 200) {
  const samples: number[] = [];
  const anon: number[] = [];
  const read = () => {
    try {
      const status = Deno.readTextFileSync(`/proc/${pid}/status`);
      const m = status.match(/^VmRSS:\s+(\d+)/m);
      if (m) samples.push(Number(m[1]));
      const a = status.match(/^RssAnon:\s+(\d+)/m);
      if (a) anon.push(Number(a[1]));
    } catch { /* gone */ }
  };
  read();
  const timer = setInterval(read, everyMs);
  return {
    samples,
    /** RssAnon: heap and other private memory, without mapped files (KV's SQLite). */
    anon,
    stop() {
      clearInterval(timer);
      read();
    },
  };
}

/** Runs `count` jobs on `concurrency` workers until done or `seconds` passed. */
async function drive(
  count: number,
  concurrency: number,
  seconds: number,
  job: (n: number) => Promise<void>,
): Promise<{ sent: number; ms: number; latencies: number[] }> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  const until = started + seconds * 1000;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count && performance.now() < until) {
      const n = next++;
      const t = performance.now();
      await job(n);
      latencies.push(performance.now() - t);
    }
  }));
  return { sent: latencies.length, ms: performance.now() - started, latencies };
}

async function httpLevel(
  edge: EdgeProcess,
  setup: Setup,
  o: EdgeBenchOptions,
  concurrency: number,
): Promise<LevelResult> {
  const template = makeMessage(o.size, concurrency);
  const post = async (n: number) => {
    // A distinct first line per message, so no two bodies are byte-identical.
    const id = new TextEncoder().encode(`X-Bench-Seq: ${concurrency}-${n}\r\n`);
    const body = new Uint8Array(id.length + template.length);
    body.set(id);
    body.set(template, id.length);
    const res = await fetch(`${edge.httpUrl}/v1/inbound`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${setup.frontToken}`,
        "content-type": "message/rfc822",
        [inboundHeaders.from]: SENDER,
        [inboundHeaders.to]: RECIPIENT,
        [inboundHeaders.clientIp]: "127.0.0.1",
        [inboundHeaders.helo]: "bench-client.invalid",
      },
      body,
    });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`POST /v1/inbound: ${res.status} ${text}`);
  };
  // Warm-up outside the measurement: connections and the edge's JIT.
  for (let i = 0; i < 20; i++) await post(-1 - i); // the level's `warmup`
  const r = await drive(o.messages, concurrency, o.seconds, post);
  return { front: "HTTP", concurrency, warmup: 20, ...r };
}

const endOfData = new TextEncoder().encode(".\r\n");

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}

/** One message over one SMTP connection, like smtp-source; resolves after the final 250. */
async function smtpSend(port: number, message: Uint8Array): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  const buf = new Uint8Array(4096);
  let pending = "";
  const dec = new TextDecoder();
  const reply = async (want: string) => {
    for (;;) {
      // A reply ends with a line "NNN text" (no hyphen after the code).
      const m = pending.match(/(?:^|\r\n)(\d{3}) [^\r\n]*\r\n/);
      if (m) {
        const code = m[1];
        pending = pending.slice(m.index! + m[0].length);
        if (code !== want) throw new Error(`SMTP: expected ${want}, got ${m[0].trim()}`);
        return;
      }
      const n = await conn.read(buf);
      if (n === null) throw new Error(`SMTP: connection closed waiting for ${want}`);
      pending += dec.decode(buf.subarray(0, n));
    }
  };
  const send = (text: string) => writeAll(conn, new TextEncoder().encode(text));
  try {
    await reply("220");
    await send("EHLO bench-client.invalid\r\n");
    await reply("250");
    await send(`MAIL FROM:<${SENDER}>\r\n`);
    await reply("250");
    await send(`RCPT TO:<${RECIPIENT}>\r\n`);
    await reply("250");
    await send("DATA\r\n");
    await reply("354");
    // The generated text has no line starting with "." to stuff.
    const data = new Uint8Array(message.length + 3);
    data.set(message);
    data.set(endOfData, message.length);
    await writeAll(conn, data);
    await reply("250");
    await send("QUIT\r\n");
  } finally {
    conn.close();
  }
}

async function smtpLevel(
  edge: EdgeProcess,
  o: EdgeBenchOptions,
  concurrency: number,
): Promise<LevelResult> {
  const message = makeMessage(o.size, concurrency);
  for (let i = 0; i < 10; i++) await smtpSend(edge.smtpPort, message); // `warmup`
  const r = await drive(
    o.smtpMessages,
    concurrency,
    o.seconds,
    () => smtpSend(edge.smtpPort, message),
  );
  return { front: "SMTP", concurrency, warmup: 10, ...r };
}

/** smtp-source, as in bench/smtp_bench.ts: messages per second only. */
async function smtpSourceLevel(
  edge: EdgeProcess,
  o: EdgeBenchOptions,
  concurrency: number,
): Promise<LevelResult> {
  const args = ["-s", String(concurrency), "-l", String(o.size), "-m", String(o.smtpMessages)];
  args.push("-f", SENDER, "-t", RECIPIENT, "-M", "bench-client.invalid");
  args.push(`127.0.0.1:${edge.smtpPort}`);
  const started = performance.now();
  const out = await new Deno.Command(SMTP_SOURCE, { args, stdout: "piped", stderr: "piped" })
    .output();
  const ms = performance.now() - started;
  if (!out.success) {
    throw new Error(`smtp-source ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return {
    front: "SMTP (smtp-source)",
    concurrency,
    sent: o.smtpMessages,
    warmup: 0,
    ms,
    latencies: [],
  };
}

/** Counts and deletes what a level committed (the bench's home never acks). */
async function drain(kvPath: string, homeId: string): Promise<number> {
  const kv = await Deno.openKv(kvPath);
  try {
    let n = 0;
    let op = kv.atomic();
    let inOp = 0;
    for await (const e of kv.list({ prefix: ["edge", "item", homeId] })) {
      op.delete(e.key);
      n++;
      if (++inOp === 500) {
        await op.commit();
        op = kv.atomic();
        inOp = 0;
      }
    }
    if (inOp) await op.commit();
    return n;
  } finally {
    kv.close();
  }
}

/**
 * What sealing costs, in this process: the median time of sealToRecipient for one message,
 * against the median of the whole sealAndCommit (normalise, Received:, seal, group commit
 * to a KV file on the same disk; no DNS: the edge's .invalid lookups are sub-millisecond).
 */
async function sealingCost(o: EdgeBenchOptions, dir: string, recipient: string) {
  const raw = makeMessage(o.size, 0);
  const runs = 300;
  const median = async (f: () => Promise<unknown>) => {
    for (let i = 0; i < 30; i++) await f();
    const t: number[] = [];
    for (let i = 0; i < runs; i++) {
      const s = performance.now();
      await f();
      t.push(performance.now() - s);
    }
    return percentile(t.sort((a, b) => a - b), 0.5);
  };
  const sealMs = await median(() => sealToRecipient(raw, recipient));
  const store = new EdgeStore(await Deno.openKv(`${dir}/seal-cost.kv`));
  try {
    const route = { kind: "account" as const, home: "h", account: "a", recipient };
    const totalMs = await median(() =>
      sealAndCommit({ store, hostname: "edge.bench" }, {
        raw,
        recipients: [{ address: RECIPIENT, route }],
        client: { ip: "127.0.0.1", helo: "bench-client.invalid", sender: SENDER },
        received: () => "Received: from bench by edge.bench; Mon, 30 Nov 2026 12:00:00 +0000",
      })
    );
    return { sealMs, totalMs };
  } finally {
    store.kv.close();
  }
}

function printTable(results: LevelResult[], o: EdgeBenchOptions): void {
  const rows = [[
    "front",
    "concurrency",
    "messages",
    "msg/s",
    "p50 ms",
    "p99 ms",
    "edge CPU ms/msg",
    "edge RSS MiB",
  ]];
  for (const r of results) {
    const sorted = [...r.latencies].sort((a, b) => a - b);
    const ms = (v: number) => (Number.isNaN(v) ? "—" : v.toFixed(v < 10 ? 2 : 1));
    rows.push([
      r.front,
      String(r.concurrency),
      String(r.sent),
      (r.sent / (r.ms / 1000)).toFixed(0),
      ms(percentile(sorted, 0.5)),
      ms(percentile(sorted, 0.99)),
      r.cpuMs === undefined ? "—" : (r.cpuMs / (r.sent + r.warmup)).toFixed(2),
      r.rssKiB === undefined ? "—" : (r.rssKiB / 1024).toFixed(0),
    ]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) =>
    r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join("  ");
  console.log(
    `\nEdge inbound benchmark: messages of ${o.size} bytes, each sealed and committed before ` +
      `its answer`,
  );
  console.log(line(rows[0]));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const r of rows.slice(1)) console.log(line(r));
}

/** Runs the edge benchmark; throws when a level lost or failed a message. */
export async function runEdgeBench(args: string[]): Promise<void> {
  const o = parseEdgeArgs(args);
  const dir = await Deno.makeTempDir({ prefix: "hearth-edge-bench-" });
  const kvPath = `${dir}/edge.kv`;
  let edge: EdgeProcess | undefined;
  try {
    const setup = await prepareKv(kvPath);
    log("starting the edge");
    edge = await startEdgeProcess(dir, kvPath);
    const rss = sampleRss(edge.pid);
    const results: LevelResult[] = [];
    const wrong: string[] = [];
    const level = async (name: string, run: () => Promise<LevelResult>) => {
      log(`${name} …`);
      const cpuBefore = cpuMsOf(edge!.pid);
      const r = await run();
      r.cpuMs = cpuMsOf(edge!.pid) - cpuBefore;
      r.rssKiB = rss.samples[rss.samples.length - 1];
      const stored = await drain(kvPath, setup.homeId);
      if (stored !== r.sent + r.warmup) {
        wrong.push(`${name}: ${stored} items for ${r.sent} messages`);
      }
      log(`${name}: ${(r.sent / (r.ms / 1000)).toFixed(0)} msg/s, ${stored} items drained`);
      results.push(r);
    };
    for (const c of o.concurrency) {
      await level(`HTTP, ${c} concurrent`, () => httpLevel(edge!, setup, o, c));
    }
    for (const c of o.smtpConcurrency) {
      await level(`SMTP, ${c} sessions`, () => smtpLevel(edge!, o, c));
    }
    let haveSmtpSource = true;
    try {
      await Deno.stat(SMTP_SOURCE);
    } catch {
      haveSmtpSource = false;
      log(`${SMTP_SOURCE} not found (Debian's postfix): smtp-source rows skipped`);
    }
    for (const c of haveSmtpSource ? o.smtpConcurrency : []) {
      await level(`smtp-source, ${c} sessions`, () => smtpSourceLevel(edge!, o, c));
    }
    rss.stop();
    const { sealMs, totalMs } = await sealingCost(o, dir, setup.recipient);

    printTable(results, o);
    const mib = (kib: number) => (kib / 1024).toFixed(0);
    const s = rss.samples;
    console.log(
      `\nEdge RSS (VmRSS every 200 ms over the run): start ${mib(s[0])} MiB, ` +
        `peak ${mib(Math.max(...s))} MiB, end ${mib(s[s.length - 1])} MiB; of which ` +
        `RssAnon (heap, without mapped files): start ${mib(rss.anon[0])} MiB, ` +
        `peak ${mib(Math.max(...rss.anon))} MiB, end ${mib(rss.anon[rss.anon.length - 1])} MiB`,
    );
    const c1 = results.find((r) => r.front === "HTTP" && r.concurrency === 1);
    const c1Ms = c1 ? percentile([...c1.latencies].sort((a, b) => a - b), 0.5) : NaN;
    console.log(
      `Sealing (age, X25519 + ChaCha20-Poly1305) of one ${o.size}-byte message: ` +
        `${sealMs.toFixed(2)} ms median in-process; ` +
        `${(100 * sealMs / totalMs).toFixed(0)}% of in-process sealAndCommit ` +
        `(${totalMs.toFixed(2)} ms: normalise, seal, group commit)` +
        (c1 ? `; ${(100 * sealMs / c1Ms).toFixed(0)}% of the HTTP p50 at concurrency 1` : ""),
    );
    console.log(
      "msg/s: measured messages over the level's wall clock (warm-up excluded); latency: " +
        "request sent to answer received (SMTP: connect to the 250 after DATA, one message per " +
        "connection). Items are counted and deleted from KV after each level.",
    );
    for (const note of wrong) console.log(`WARNING ${note}`);
    if (wrong.length) throw new Error("some messages were not committed (see WARNING lines)");
  } finally {
    await edge?.stop();
    if (!o.keep) await Deno.remove(dir, { recursive: true }).catch(() => {});
    else log(`kept ${dir}`);
  }
}

if (import.meta.main) {
  try {
    await runEdgeBench(Deno.args);
  } catch (err) {
    console.error(`bench: ${(err as Error).message}`);
    Deno.exit(1);
  }
}
