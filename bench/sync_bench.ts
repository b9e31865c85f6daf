/**
 * Phone sync benchmark (issue 5): what a Hearth phone exchanges to catch up with a change set,
 * against an IMAP client resynchronising the same change set from a private Dovecot with and
 * without QRESYNC (RFC 7162), in the same run.
 *
 *   deno task bench --only-sync [--sync-messages 10000] [--sync-new 50] [--sync-flagged 200]
 *                   [--sync-rounds 3] [--sync-large 100000] [--sync-only hearth|dovecot] [--keep]
 *
 * Hearth: an edge, a home box and a phone in this process, on loopback. The account is filled
 * with the store's bulk path (AccountStore.prepareMany, as `hearth import`), a phone is paired
 * (home/phones.ts startPairing) and makes its initial sync; then 50 messages are APPENDed and
 * 200 marked \Seen over IMAP at home, and once the home has pushed its changes to the relay the
 * phone makes one sync, which must bring the new messages' summaries (sender, subject, date,
 * snippet) too. Bytes are counted on the phone's fetch: HTTP bodies as the application sees them
 * (uncompressed), and separately the request/status line and header lines.
 *
 * Dovecot: the same messages by APPEND, then the same change set from a second connection; the
 * resyncing client's bytes are every byte of its commands and of the server's responses after
 * LOGIN (greeting, LOGIN and CAPABILITY are reported apart). Round trips are commands awaited
 * one after the other, as imapflow and most clients issue them.
 *
 * HEARTH_BENCH_TRACE=1 logs every request of the phone with its body sizes (and the sizes of the
 * envelopes a relay GET returned).
 */

import { exitWithUsage, log } from "./report.ts";
import { generateCorpus, Prng } from "./corpus.ts";
import { ImapClient } from "./imap_client.ts";
import { type ImapResult, runImapResync, total, type Traffic, zero } from "./sync_imap.ts";
import { initDataDir, openStore, startHome } from "../home/box.ts";
import { AccountRegistry, createAccount } from "../home/store/accounts.ts";
import { AccountStore } from "../home/store/account_store.ts";
import { linkToEdge, readEdgeLink } from "../home/edge_link.ts";
import { startPairing } from "../home/phones.ts";
import { startEdge } from "../edge/main.ts";
import { loadConfig } from "../src/config.ts";
import { TestResolver } from "../src/dns.ts";
import { limits } from "../src/limits.ts";
import { log as hearthLog } from "../src/log.ts";
import { MemoryStorage, Phone } from "../sync/phone/client.ts";
import { encodeSummaries, type Summary } from "../sync/summary.ts";

interface Options {
  messages: number;
  newMessages: number;
  flagged: number;
  /** Size of the initial-sync-only run (0: none). */
  large: number;
  /** Change sets applied one after the other (the first ones after an initial sync differ). */
  rounds: number;
  only?: "hearth" | "dovecot";
  seed: number;
  keep: boolean;
}

const USAGE = "usage: deno task bench --only-sync [--sync-messages N] [--sync-new N] " +
  "[--sync-flagged N] [--sync-rounds N] [--sync-large N (0: skip)] [--sync-only hearth|dovecot] [--keep]";

const ADDRESS = "me@hearth.localhost";
const PASSWORD = "correct horse battery staple";

function parseArgs(args: string[]): Options {
  const options: Options = {
    messages: 10_000,
    newMessages: 50,
    flagged: 200,
    large: 100_000,
    rounds: 3,
    seed: 20240611,
    keep: false,
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const [flag, inline] = arg.includes("=") ? arg.split(/=(.*)/s, 2) : [arg, undefined];
    const value = () => {
      const v = inline ?? args[++i];
      if (v === undefined) exitWithUsage(USAGE, `${flag} needs a value`);
      return v;
    };
    const count = (min: number) => {
      const n = Number(value());
      if (!Number.isInteger(n) || n < min) {
        exitWithUsage(USAGE, `${flag} needs an integer of at least ${min}`);
      }
      return n;
    };
    switch (flag) {
      case "--sync-messages":
        options.messages = count(10);
        break;
      case "--sync-new":
        options.newMessages = count(1);
        break;
      case "--sync-flagged":
        options.flagged = count(1);
        break;
      case "--sync-rounds":
        options.rounds = count(1);
        break;
      case "--sync-large":
        options.large = count(0);
        break;
      case "--sync-seed":
        options.seed = count(0);
        break;
      case "--sync-only": {
        const only = value();
        if (only !== "hearth" && only !== "dovecot") {
          exitWithUsage(USAGE, "--sync-only takes hearth or dovecot");
        }
        options.only = only;
        break;
      }
      case "--keep":
        options.keep = true;
        break;
      case "-h":
      case "--help":
        exitWithUsage(USAGE);
        break;
      default:
        exitWithUsage(USAGE, `unknown argument ${arg}`);
    }
  }
  if (options.flagged > options.messages) exitWithUsage(USAGE, "--sync-flagged > --sync-messages");
  return options;
}

/**
 * Wraps the phone's fetch and counts what crosses it. Header bytes are the lines as HTTP/1.1
 * would write them: the ones the phone sets, Host, Content-Length and the four Deno's fetch
 * adds (accept, accept-language, user-agent, accept-encoding); the response's as received.
 */
class WireCounter {
  current: Traffic = zero();

  readonly fetch: typeof fetch = async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const method = init?.method ?? "GET";
    const body = init?.body as Uint8Array | null | undefined;
    const headers = new Headers(init?.headers);
    let head = `${method} ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${url.host}\r\n`;
    for (const [k, v] of headers) head += `${k}: ${v}\r\n`;
    if (body) head += `content-length: ${body.length}\r\n`;
    head += "accept: */*\r\naccept-language: *\r\nuser-agent: Deno/2.9.6\r\n" +
      "accept-encoding: gzip,br\r\n\r\n";
    const started = performance.now();
    const res = await fetch(input, init);
    const bytes = new Uint8Array(await res.arrayBuffer());
    this.current.ms += performance.now() - started;
    let resHead = `HTTP/1.1 ${res.status} ${res.statusText}\r\n`;
    for (const [k, v] of res.headers) resHead += `${k}: ${v}\r\n`;
    resHead += "\r\n";
    this.current.roundTrips++;
    this.current.bodyOut += body?.length ?? 0;
    this.current.headOut += head.length;
    this.current.bodyIn += bytes.length;
    this.current.headIn += resHead.length;
    if (trace) {
      let items = "";
      if (method === "GET" && res.ok && url.pathname.startsWith("/v1/relay/")) {
        const j = JSON.parse(new TextDecoder().decode(bytes)) as { items: { envelope: string }[] };
        items = ` items [${j.items.map((i) => i.envelope.length).join(", ")}]`;
      }
      log(
        `${method} ${url.pathname}${url.search} out ${
          body?.length ?? 0
        } in ${bytes.length}${items}`,
      );
    }
    const nullBody = res.status === 204 || res.status === 304;
    return new Response(nullBody ? null : bytes, {
      status: res.status,
      statusText: res.statusText,
      headers: res.headers,
    });
  };

  /** Counts what `run` exchanges (requests in flight from elsewhere would be counted too). */
  async measure(run: () => Promise<void>): Promise<Traffic> {
    this.current = zero();
    const started = performance.now();
    await run();
    const t = this.current;
    t.ms = performance.now() - started;
    this.current = zero();
    return t;
  }
}

const trace = Deno.env.get("HEARTH_BENCH_TRACE") === "1";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Small distinct messages for the large initial sync (the document carries no content). */
function smallMessage(i: number): Uint8Array {
  return new TextEncoder().encode(
    `From: Sender ${i % 97} <s${i % 97}@example.org>\r\nTo: <${ADDRESS}>\r\n` +
      `Subject: Message ${i}\r\nDate: ${new Date(1_700_000_000_000 + i * 60_000).toUTCString()}` +
      `\r\nMessage-ID: <large-${i}@example.org>\r\n\r\nBody of message ${i}.\r\n`,
  );
}

interface HearthRig {
  box: Awaited<ReturnType<typeof startHome>>;
  edge: Awaited<ReturnType<typeof startEdge>>;
  dataDir: string;
  edgeDir: string;
  stop(): Promise<void>;
}

/** An edge and a home box linked to it, the account filled with `count` messages. */
async function startRig(
  count: number,
  messageAt: (i: number) => Uint8Array,
  keep: boolean,
): Promise<HearthRig> {
  const edgeDir = await Deno.makeTempDir({ prefix: "hearth-bench-sync-edge-" });
  const dataDir = await Deno.makeTempDir({ prefix: "hearth-bench-sync-home-" });
  const edge = await startEdge({
    dataDir: edgeDir,
    hostname: "edge.localhost",
    listen: "127.0.0.1",
    httpPort: 0,
    smtpPort: null,
  });
  const config = await loadConfig(dataDir, {
    imapPort: 0,
    imapsPort: 0,
    mxPort: 0,
    submissionPort: 0,
    submissionsPort: 0,
    scryptLogN: 10,
  });
  await initDataDir(config);
  const { kv, blobs } = await openStore(config);
  try {
    await createAccount(kv, blobs, ADDRESS, PASSWORD, 10);
    await linkToEdge(dataDir, kv, edge.url, await edge.store.createPairing("hearth.localhost"));
    const registry = new AccountRegistry(kv, blobs);
    const login = await registry.login(ADDRESS, PASSWORD, "bench");
    if ("failure" in login) throw new Error(`login failed: ${login.failure}`);
    const store = login.store;
    const started = performance.now();
    // The bulk path of `hearth import`: batches sealed in parallel, a few KV commits each.
    for (let from = 0; from < count; from += 200) {
      const raws = Array.from(
        { length: Math.min(200, count - from) },
        (_, j) => messageAt(from + j),
      );
      const prepared = await store.prepareMany(raws);
      await store.mutate((tx) => {
        const inbox = tx.state.byName("INBOX")!;
        prepared.forEach((p, j) => {
          tx.push({
            op: "add",
            mb: inbox.id,
            msg: AccountStore.newRecord(
              inbox.rec.uidNext,
              p,
              [],
              1_700_000_000_000 + (from + j) * 60_000,
              tx.nextModSeq(),
            ),
          });
        });
      });
      if ((from + 200) % 10_000 === 0) log(`hearth: ${from + 200}/${count} stored`);
    }
    log(
      `hearth: ${count} messages stored in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
    registry.release(store);
    await registry.close();
  } finally {
    kv.close();
  }
  const box = await startHome(config, {
    allowPlaintextAuth: true,
    queue: null,
    resolver: new TestResolver(),
  });
  return {
    box,
    edge,
    dataDir,
    edgeDir,
    async stop() {
      await box.close().catch(() => {});
      await edge.close().catch(() => {});
      if (!keep) {
        await Deno.remove(dataDir, { recursive: true }).catch(() => {});
        await Deno.remove(edgeDir, { recursive: true }).catch(() => {});
      }
    },
  };
}

/** Pairs a phone whose fetch is counted (startPairing with the box's KV, as `hearth phone pair`). */
async function pairPhone(rig: HearthRig, counter: WireCounter): Promise<Phone> {
  const link = await readEdgeLink(rig.dataDir);
  if (!link) throw new Error("the home box is not linked to the edge");
  const pairing = await startPairing(
    { dataDir: rig.dataDir, kv: rig.box.kv, link, waitMs: 60_000 },
    ADDRESS,
    PASSWORD,
  );
  const phone = await Phone.join(pairing.code, new MemoryStorage(), {
    fetch: counter.fetch,
    waitMs: 60_000,
  });
  await pairing.done;
  return phone;
}

/** Syncs until the phone lists `count` messages in INBOX; every request counts. */
async function initialSync(
  phone: Phone,
  counter: WireCounter,
  count: number,
  timeoutMs: number,
): Promise<{ traffic: Traffic; syncs: number; withData: number }> {
  let syncs = 0;
  let withData = 0;
  const deadline = Date.now() + timeoutMs;
  // Listing needs the summaries too: the newest of the mailbox come with the initial sync.
  const wantSummaries = Math.min(count, limits.phoneSummariesPerMailbox);
  const summarized = () => phone.list("INBOX").filter((m) => m.summary).length;
  const traffic = await counter.measure(async () => {
    while (phone.list("INBOX").length < count || summarized() < wantSummaries) {
      if (Date.now() > deadline) {
        throw new Error(
          `initial sync: ${phone.list("INBOX").length}/${count} (${summarized()} summaries) ` +
            `after ${syncs}`,
        );
      }
      const r = await phone.sync();
      syncs++;
      if (r.received) withData++;
      // Nothing waited: the home is still building its answer (a push would wake a real phone).
      else await sleep(100);
    }
  });
  return { traffic, syncs, withData };
}

/** Lets both sides finish any exchange in flight, so the next sync starts from rest. */
async function settle(phone: Phone): Promise<void> {
  for (let i = 0; i < 20; i++) {
    await sleep(700);
    const r = await phone.sync();
    if (r.received === 0 && r.sent === 0) return;
  }
}

interface HearthResult {
  messages: number;
  fillMs: number;
  initial: Traffic & { syncs: number; withData: number };
  memory: { rssBefore: number; rssAfter: number; heapBefore: number; heapAfter: number };
  phoneStateBytes: number;
  changes?: (Traffic & {
    complete: boolean;
    extraSyncs: number;
    extra: Traffic;
    /** New messages listed with a summary after the one sync. */
    summarized: number;
    /** The compressed summary batch of the new messages (before sealing and base64). */
    summaryBytes: number;
  })[];
  idle?: Traffic;
  /** Messages with a summary after the initial sync. */
  initialSummaries?: number;
}

async function runHearth(
  options: Options,
  count: number,
  messageAt: (i: number) => Uint8Array,
  changes: Uint8Array[][],
): Promise<HearthResult> {
  const fillStarted = performance.now();
  const rig = await startRig(count, messageAt, options.keep);
  const fillMs = performance.now() - fillStarted;
  const imap = await ImapClient.connect({ host: "127.0.0.1", port: rig.box.imap.port! });
  try {
    // The owner's IMAP login unlocks the account, as in the end-to-end tests.
    await imap.login(ADDRESS, PASSWORD);
    const counter = new WireCounter();
    const phone = await pairPhone(rig, counter);
    log(`hearth: phone ${phone.device} paired; initial sync of ${count} messages`);
    const before = Deno.memoryUsage();
    const initial = await initialSync(phone, counter, count, 15 * 60_000);
    const after = Deno.memoryUsage();
    const result: HearthResult = {
      messages: count,
      fillMs,
      initial: { ...initial.traffic, syncs: initial.syncs, withData: initial.withData },
      memory: {
        rssBefore: before.rss,
        rssAfter: after.rss,
        heapBefore: before.heapUsed,
        heapAfter: after.heapUsed,
      },
      phoneStateBytes: phone.doc.save().length,
      initialSummaries: phone.list().filter((m) => m.summary).length,
    };
    log(`hearth: initial sync ${(initial.traffic.ms / 1000).toFixed(1)} s, ${initial.syncs} syncs`);
    if (!changes.length) return result;

    // The change sets at home, by an IMAP client: new mail, then \Seen on messages not yet seen.
    await imap.command("SELECT INBOX", { collect: false });
    const uids = (await imap.command("UID SEARCH ALL")).untagged
      .flatMap((u) => u.text.match(/^\* SEARCH (.*)$/)?.[1].trim().split(" ").map(Number) ?? []);
    const picks = new Prng(options.seed ^ 0xf1a9).sample(
      uids.length,
      options.flagged * changes.length,
    );
    result.changes = [];
    for (const [round, change] of changes.entries()) {
      await settle(phone);
      const known = new Set(phone.list("INBOX").map((m) => m.id));
      for (const raw of change) await imap.append("INBOX", raw);
      const pick = picks.slice(round * options.flagged, (round + 1) * options.flagged);
      await imap.command(`UID STORE ${pick.map((i) => uids[i]).join(",")} +FLAGS.SILENT (\\Seen)`);
      // The home gathers its changes for 1 s, then seals and posts them to the relay.
      await sleep(3_000);
      const want = count + change.length * (round + 1);
      const wantSeen = options.flagged * (round + 1);
      const seen = () => phone.list("INBOX").filter((m) => m.flags.includes("\\Seen")).length;
      const fresh = () => phone.list("INBOX").filter((m) => !known.has(m.id));
      const summarized = () => fresh().filter((m) => m.summary).length;
      const sync = await counter.measure(async () => {
        await phone.sync();
      });
      const complete = phone.list("INBOX").length === want && seen() === wantSeen &&
        summarized() === change.length;
      const summarizedInOne = summarized();
      let extraSyncs = 0;
      const extra = await counter.measure(async () => {
        const deadline = Date.now() + 60_000;
        while (
          phone.list("INBOX").length < want || seen() < wantSeen || summarized() < change.length
        ) {
          if (Date.now() > deadline) throw new Error("the change set never reached the phone");
          await phone.sync();
          extraSyncs++;
          await sleep(200);
        }
      });
      if (!complete) log(`hearth: WARNING change set ${round + 1} needed ${extraSyncs} more syncs`);
      const batch = fresh().flatMap((m) =>
        m.summary ? [[m.blob, m.summary] as [string, Summary]] : []
      );
      result.changes.push({
        ...sync,
        complete,
        extraSyncs,
        extra,
        summarized: summarizedInOne,
        summaryBytes: (await encodeSummaries(batch)).length,
      });
      log(`hearth: change set ${round + 1}: ${total(sync)} bytes, ${sync.roundTrips} requests`);
    }

    await settle(phone);
    result.idle = await counter.measure(async () => {
      await phone.sync();
    });
    return result;
  } finally {
    await imap.logout();
    await rig.stop();
  }
}

// --- Dovecot ---

// --- report ---

function kb(bytes: number): string {
  return bytes >= 10_240 ? `${(bytes / 1024).toFixed(0)} KiB` : `${(bytes / 1024).toFixed(1)} KiB`;
}

function table(rows: string[][]): void {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) =>
    r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join("  ");
  console.log(line(rows[0]));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const r of rows.slice(1)) console.log(line(r));
}

function printReport(
  options: Options,
  hearth: HearthResult | null,
  large: HearthResult | null,
  imap: ImapResult | null,
): void {
  const ref = imap?.qresync;
  const ratio = (t: Traffic) => ref ? (total(t) / total(ref)).toFixed(2) : "—";
  const rows: string[][] = [[
    `resync after ${options.newMessages} new + ${options.flagged} \\Seen (${options.messages} msgs)`,
    "out",
    "in",
    "total",
    "headers incl.",
    "round trips",
    "ms",
    "÷ QRESYNC",
  ]];
  const row = (name: string, t: Traffic) => {
    rows.push([
      name,
      kb(t.bodyOut),
      kb(t.bodyIn),
      kb(t.bodyOut + t.bodyIn),
      kb(total(t)),
      String(t.roundTrips),
      t.ms.toFixed(0),
      ratio(t),
    ]);
  };
  const rounds = hearth?.changes ?? [];
  rounds.forEach((c, i) => {
    const when = i === 0 ? "first after initial sync" : `change set ${i + 1}`;
    row(`Hearth phone, one sync after the push (${when})`, c);
  });
  const last = rounds.at(-1);
  if (imap) {
    row("IMAP QRESYNC + ENVELOPE/FLAGS/BODYSTRUCTURE", imap.qresync);
    row("IMAP without QRESYNC (FETCH 1:* FLAGS)", imap.full);
  }
  if (hearth?.idle) row("Hearth phone, idle resync", hearth.idle);
  if (imap) row("IMAP QRESYNC, idle resync", imap.qresyncIdle);
  console.log(
    `\nPhone sync benchmark (seed ${options.seed}); "total" is application bytes (HTTP bodies` +
      ` / IMAP after LOGIN), "headers incl." adds HTTP header lines`,
  );
  table(rows);
  if (imap) {
    console.log(
      `IMAP LOGIN (not counted above): ${imap.login.bodyOut + imap.login.bodyIn} bytes, ` +
        `1 round trip after the greeting; Dovecot ${imap.version ?? ""} loaded by APPEND in ` +
        `${(imap.loadMs / 1000).toFixed(1)} s`,
    );
    for (const c of imap.checks) console.log(`  WARNING dovecot: ${c}`);
  }
  rounds.forEach((c, i) => {
    console.log(
      `  change set ${i + 1}: ${c.summarized}/${options.newMessages} summaries in the one sync; ` +
        `their compressed batch ${c.summaryBytes} bytes (sealed in the relay answer)`,
    );
  });
  if (hearth?.initialSummaries !== undefined) {
    console.log(`  initial sync: ${hearth.initialSummaries} messages with a summary`);
  }
  rounds.forEach((c, i) => {
    if (c.complete) return;
    console.log(
      `  WARNING change set ${i + 1}: the first sync did not bring all of it; ${c.extraSyncs} ` +
        `more syncs, ${kb(total(c.extra))}`,
    );
  });

  const initRows: string[][] = [[
    "Hearth phone initial sync",
    "syncs (with data)",
    "requests",
    "out",
    "in",
    "headers incl.",
    "seconds",
    "process RSS Δ",
    "heap Δ",
    "phone doc",
  ]];
  for (const r of [hearth, large]) {
    if (!r) continue;
    const mib = (b: number) => `${(b / 1048576).toFixed(0)} MiB`;
    initRows.push([
      `${r.messages} messages`,
      `${r.initial.syncs} (${r.initial.withData})`,
      String(r.initial.roundTrips),
      kb(r.initial.bodyOut),
      kb(r.initial.bodyIn),
      kb(total(r.initial)),
      (r.initial.ms / 1000).toFixed(1),
      `${mib(r.memory.rssBefore)} → ${mib(r.memory.rssAfter)}`,
      `${mib(r.memory.heapBefore)} → ${mib(r.memory.heapAfter)}`,
      kb(r.phoneStateBytes),
    ]);
  }
  if (initRows.length > 1) {
    console.log("");
    table(initRows);
    console.log(
      "  memory: Deno.memoryUsage() of this one process (edge, home and phone together)",
    );
  }

  const targets: string[] = [];
  if (last && ref) {
    const first = total(rounds[0]) / total(ref);
    const r = total(last) / total(ref);
    targets.push(
      `bytes ≤ 0.5 × QRESYNC, summaries included: ${r.toFixed(2)} ${
        r <= 0.5 ? "met" : "NOT met"
      } (change set ` +
        `${rounds.length}; the first after the initial sync: ${first.toFixed(2)})`,
    );
  }
  if (last) {
    const n = last.roundTrips;
    targets.push(
      `one round trip after a push: ${n} HTTP requests ${n <= 1 ? "met" : "NOT met"}` +
        " (1 GET brings the changes; the phone's reply and the ack are the others)",
    );
  }
  if (hearth?.idle) {
    const b = total(hearth.idle);
    targets.push(
      `idle resync < 1 KB: ${b} bytes with headers ${b < 1024 ? "met" : "NOT met"}` +
        ` (${hearth.idle.bodyOut + hearth.idle.bodyIn} bytes of bodies)`,
    );
  }
  if (targets.length) console.log(`\nTargets: \n  ${targets.join("\n  ")}`);
}

/** Runs the phone sync benchmark with the given arguments (flags as in the usage). */
export async function runSyncBench(args: string[]): Promise<void> {
  const options = parseArgs(args);
  if (!Deno.env.get("HEARTH_LOG")) hearthLog.setLevel("warn");
  const started = performance.now();
  log(`sync: generating ${options.messages + options.newMessages * options.rounds} messages`);
  const corpus = generateCorpus({
    count: options.messages + options.newMessages * options.rounds,
    seed: options.seed,
  });
  const base = corpus.messages.slice(0, options.messages);
  const changes = Array.from(
    { length: options.rounds },
    (_, r) =>
      corpus.messages.slice(
        options.messages + r * options.newMessages,
        options.messages + (r + 1) * options.newMessages,
      ),
  );

  let hearth: HearthResult | null = null;
  let large: HearthResult | null = null;
  let imap: ImapResult | null = null;
  if (options.only !== "dovecot") {
    hearth = await runHearth(options, options.messages, (i) => base[i], changes);
  }
  if (options.only !== "hearth") {
    imap = await runImapResync({
      messages: base,
      change: changes[0],
      flagged: options.flagged,
      seed: options.seed,
      keep: options.keep,
    });
  }
  if (options.only !== "dovecot" && options.large > 0) {
    log(`hearth: initial sync of ${options.large} small messages`);
    large = await runHearth(options, options.large, smallMessage, []);
  }
  printReport(options, hearth, large, imap);
  console.log(`total time ${((performance.now() - started) / 1000).toFixed(0)} s`);
  if (imap?.checks.length) throw new Error("some Dovecot results were wrong (see WARNING lines)");
}

if (import.meta.main) {
  try {
    await runSyncBench(Deno.args);
  } catch (err) {
    console.error(`bench: ${(err as Error).message}`);
    Deno.exit(1);
  }
}
