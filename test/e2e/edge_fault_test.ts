/**
 * Fault tests of the edge relay (issue 4, docs/edge.md "Delivery home"): the
 * edge SIGKILLed under an inbound SMTP load; the home box SIGKILLed between
 * storing a batch and acknowledging it; the home link cut in the middle of a
 * long-poll (closed, refused, and silently dropped); two edge processes on one
 * KV with the home pulling from both. In every case each message that got
 * `250` is in INBOX exactly once (one that did not get `250` may be there, but
 * never twice), and the edge ends empty.
 *
 * Everything is on loopback with ports from the OS. Each message carries a
 * unique Message-ID; no sender domain resolves (`.invalid`, RFC 6761 §6.4), so
 * a subprocess edge's SPF/DMARC checks never wait on the network.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { type Edge, startEdge } from "../../edge/main.ts";
import { EdgeStore } from "../../edge/store.ts";
import { type HomeBox, initDataDir, openStore, startHome } from "../../home/box.ts";
import {
  type EdgeLinkConfig,
  type EdgeLinkOptions,
  linkToEdge,
  type RunningEdgeLink,
  startEdgeLink,
} from "../../home/edge_link.ts";
import { type AccountRecord, createAccount, loginKey } from "../../home/store/accounts.ts";
import { deliverSealed } from "../../home/store/deliver.ts";
import { loadConfig } from "../../src/config.ts";
import { sealToRecipient } from "../../src/crypto/age.ts";
import { TestResolver } from "../../src/dns.ts";
import { log } from "../../src/log.ts";
import { addHome, startEdgeProcess } from "./edge_process.ts";
import { startHomeProcess, testAddress, testPassword, testScryptLogN, waitFor } from "./harness.ts";
import { RawImap } from "./raw_imap.ts";
import { RawSmtp } from "./raw_smtp.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const domain = "hearth.localhost";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A small message whose Message-ID is `<tag-i@load.invalid>`. */
function message(tag: string, i: number): Uint8Array {
  const filler = `line of ${tag} message ${i}, filling the body up a little\r\n`.repeat(8 + i % 20);
  return encoder.encode(
    `From: sender${i}@load.invalid\r\nTo: ${testAddress}\r\nSubject: ${tag} ${i}\r\n` +
      `Message-ID: <${tag}-${i}@load.invalid>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\n` +
      `${filler}end of ${tag} message ${i}\r\n`,
  );
}

/** One SMTP transaction; true on `250` to DATA. Throws on a broken connection. */
async function sendOne(c: RawSmtp, tag: string, i: number): Promise<boolean> {
  const from = await c.command(`MAIL FROM:<sender${i}@load.invalid>`);
  assertEquals(from.code, 250, `MAIL ${i}: ${from.text}`);
  const rcpt = await c.command(`RCPT TO:<${testAddress}>`);
  assertEquals(rcpt.code, 250, `RCPT ${i}: ${rcpt.text}`);
  const r = await c.data(new Uint8Array([...message(tag, i), ...encoder.encode(".\r\n")]));
  return r.code === 250;
}

interface LoadOptions {
  port: number;
  tag: string;
  total: number;
  clients: number;
  /** Called after each `250` with the count so far. */
  onAcked?: (count: number) => void;
  /** Give up reconnecting after this long (the edge is down for a restart meanwhile). */
  deadlineMs?: number;
}

/**
 * Sends messages 0..total-1 from several connections; returns those that got
 * `250`. A message whose transaction broke (the edge died) is not sent again
 * (a resend under the same id could rightly be stored twice); the worker
 * reconnects until the deadline and goes on with its next message.
 */
async function smtpLoad(opts: LoadOptions): Promise<Set<number>> {
  const acked = new Set<number>();
  const deadline = Date.now() + (opts.deadlineMs ?? 60_000);
  const worker = async (w: number) => {
    let c: RawSmtp | undefined;
    for (let i = w; i < opts.total; i += opts.clients) {
      while (!c) {
        try {
          c = await RawSmtp.connect(opts.port, 5_000);
          assertEquals((await c.command("EHLO load.invalid")).code, 250);
        } catch (e) {
          c?.close();
          c = undefined;
          if (Date.now() > deadline) throw new Error(`cannot reconnect to SMTP: ${e}`);
          await sleep(100);
        }
      }
      try {
        if (await sendOne(c, opts.tag, i)) {
          acked.add(i);
          opts.onAcked?.(acked.size);
        }
      } catch {
        // The connection broke mid-transaction: the message may or may not be stored.
        c.close();
        c = undefined;
      }
    }
    c?.close();
  };
  await Promise.all(Array.from({ length: opts.clients }, (_, w) => worker(w)));
  return acked;
}

/** The Message-ID of every message in INBOX (duplicates kept), read over IMAP. */
async function inboxIds(port: number): Promise<string[]> {
  const c = await RawImap.connect(port);
  try {
    await c.ok(`LOGIN ${testAddress} "${testPassword}"`);
    await c.ok("SELECT INBOX");
    const bodies = await c.fetchAllBodies();
    return [...bodies.values()].map((b) => {
      const id = decoder.decode(b).match(/^Message-ID: <([^>]+)>\r$/m)?.[1];
      assert(id, `a stored message without a Message-ID: ${decoder.decode(b).slice(0, 200)}`);
      return id;
    });
  } finally {
    c.close();
  }
}

/**
 * Asserts INBOX holds each of `acked` (as `tag-i`) and no message twice; the
 * only other messages allowed are this test's that did not get `250`.
 */
function assertExactlyOnce(ids: string[], tag: string, acked: Set<number>, total: number) {
  const seen = new Set<string>();
  for (const id of ids) {
    assert(!seen.has(id), `${id} is in INBOX twice`);
    seen.add(id);
    const i = Number(id.match(new RegExp(`^${tag}-(\\d+)@load\\.invalid$`))?.[1] ?? NaN);
    assert(i >= 0 && i < total, `a message that was never sent: ${id}`);
  }
  const missing = [...acked].filter((i) => !seen.has(`${tag}-${i}@load.invalid`));
  assertEquals(missing.sort((a, b) => a - b), [], "acknowledged with 250 but not in INBOX");
}

/** Items waiting at the edge (read straight from its KV). */
async function waitingAt(kv: Deno.Kv): Promise<string[]> {
  const ids: string[] = [];
  for await (const e of kv.list({ prefix: ["edge", "item"] })) ids.push(e.key[3] as string);
  return ids;
}

/** A home box in this process, whose edge links the test starts itself (to pick URL and timing). */
interface TestHome {
  box: HomeBox;
  dataDir: string;
  link: EdgeLinkConfig;
  imapPort: number;
  /** Starts a pull loop (stopped by stop()); `url` overrides the linked edge's. */
  pull(opts?: Partial<EdgeLinkOptions> & { url?: string }): RunningEdgeLink;
  stop(): Promise<void>;
}

async function startTestHome(edge?: { url: string; token: string }): Promise<TestHome> {
  const dataDir = await Deno.makeTempDir({ prefix: "hearth-fault-home-" });
  const links: RunningEdgeLink[] = [];
  let box: HomeBox | undefined;
  try {
    const config = await loadConfig(dataDir, {
      imapPort: 0,
      imapsPort: 0,
      mxPort: null,
      submissionPort: null,
      submissionsPort: null,
      scryptLogN: testScryptLogN,
    });
    await initDataDir(config);
    const { kv, blobs } = await openStore(config);
    let link: EdgeLinkConfig;
    try {
      await createAccount(kv, blobs, testAddress, testPassword, testScryptLogN);
      link = edge
        ? await linkToEdge(dataDir, kv, edge.url, edge.token)
        : { url: "http://127.0.0.1:9", homeId: "none", domain };
    } finally {
      kv.close();
    }
    box = await startHome(config, {
      allowPlaintextAuth: true,
      queue: null,
      resolver: new TestResolver(),
      edgeLink: null,
    });
    const home: HomeBox = box;
    return {
      box: home,
      dataDir,
      link,
      imapPort: home.imap.port!,
      pull(opts = {}) {
        const { url, ...rest } = opts;
        const running = startEdgeLink({
          dataDir,
          kv: home.kv,
          blobs: home.blobs,
          registry: home.registry,
          link: { ...link, url: url ?? link.url },
          backoffMs: [200, 1_000],
          ...rest,
        });
        links.push(running);
        return running;
      },
      async stop() {
        for (const l of links) await l.stop();
        await home.close();
        await Deno.remove(dataDir, { recursive: true }).catch(() => {});
      },
    };
  } catch (e) {
    await box?.close();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    throw e;
  }
}

async function inProcessEdge(): Promise<{ edge: Edge; dir: string; stop(): Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "hearth-fault-edge-" });
  const edge = await startEdge({
    dataDir: dir,
    hostname: "edge.localhost",
    listen: "127.0.0.1",
    httpPort: 0,
    smtpPort: 0,
  });
  return {
    edge,
    dir,
    async stop() {
      await edge.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

function quiet() {
  if (!Deno.env.get("HEARTH_LOG")) log.setLevel("error");
}

const processTest = { sanitizeResources: false, sanitizeOps: false };

Deno.test({
  ...processTest,
  name: "every 250 survives SIGKILL of the edge in the middle of 500 messages on 8 connections",
  async fn() {
    quiet();
    const started = Date.now();
    const total = 500, clients = 8, killAfter = 200;
    const edge = await startEdgeProcess();
    let home: TestHome | undefined;
    const kv = await Deno.openKv(`${edge.dataDir}/edge.kv`);
    try {
      const token = await addHome(edge.dataDir, domain);
      home = await startTestHome({ url: edge.url, token });
      // The home box pulls throughout, so the kill lands among commits, pulls and acks.
      home.pull();
      let restarted: Promise<void> | undefined;
      const acked = await smtpLoad({
        port: edge.smtpPort,
        tag: "edge-kill",
        total,
        clients,
        onAcked(n) {
          if (n < killAfter || restarted) return;
          restarted = (async () => {
            const status = await edge.kill("SIGKILL");
            assertEquals(status.signal, "SIGKILL");
            await edge.restart();
          })();
        },
      });
      assert(restarted, `the edge was never killed (${acked.size} acknowledged)`);
      await restarted;
      // Connections broken by the kill lose at most one message each.
      assert(acked.size >= total - clients, `only ${acked.size} of ${total} got 250`);

      let ids: string[] = [];
      await waitFor("every 250 in INBOX and the edge empty", 45_000, async () => {
        ids = await inboxIds(home!.imapPort);
        return ids.length >= acked.size && (await waitingAt(kv)).length === 0;
      });
      assertExactlyOnce(await inboxIds(home.imapPort), "edge-kill", acked, total);
      const took = Date.now() - started;
      console.log(`  ${acked.size}/${total} got 250, ${ids.length} in INBOX, ${took} ms`);
      assert(took < 90_000, `took ${took} ms`);
    } catch (e) {
      throw new Error(`${(e as Error).message}\nedge log:\n${edge.stderr().slice(-3000)}`, {
        cause: e,
      });
    } finally {
      kv.close();
      await home?.stop();
      await edge.stop();
    }
  },
});

/**
 * An HTTP proxy between a home box and the edge that can hold pulls and
 * intercept acks: the home's acks are sent only after its items are durable,
 * so an ack arriving here marks the exact window between storing and acking.
 */
function startAckInterceptor(target: string) {
  const upstream = new AbortController();
  let releasePulls: (() => void) | null = null;
  let held: Promise<void> | null = null;
  const state = {
    /** Called with the ids of an ack instead of forwarding it, when set. */
    onAck: null as ((ids: string[]) => Promise<void>) | null,
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    const body = req.method === "GET" ? null : new Uint8Array(await req.arrayBuffer());
    if (url.pathname === "/v1/home/mail" && held) await held;
    if (url.pathname === "/v1/home/ack" && state.onAck) {
      await state.onAck(JSON.parse(decoder.decode(body!)).ids);
      return new Response("the home box died before this ack", { status: 502 });
    }
    const headers = new Headers(req.headers);
    for (const h of ["host", "content-length", "connection"]) headers.delete(h);
    try {
      const res = await fetch(new URL(url.pathname + url.search, target), {
        method: req.method,
        headers,
        body,
        signal: upstream.signal,
      });
      return new Response(res.body, { status: res.status, headers: res.headers });
    } catch {
      return new Response("the edge is unreachable", { status: 502 });
    }
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    state,
    holdPulls() {
      held = new Promise((r) => releasePulls = r);
    },
    releasePulls() {
      held = null;
      releasePulls?.();
    },
    async close() {
      this.releasePulls();
      upstream.abort();
      await server.shutdown();
    },
  };
}

/** Whether each item id has its `edge-item` marker in a (stopped) home box's KV. */
async function markersIn(dataDir: string, ids: string[]): Promise<boolean[]> {
  const kv = await Deno.openKv(`${dataDir}/home.kv`);
  try {
    return await Promise.all(
      ids.map(async (id) => !!(await kv.get(["edge-item", id])).versionstamp),
    );
  } finally {
    kv.close();
  }
}

Deno.test({
  ...processTest,
  name: "a home box SIGKILLed between storing and acking stores each item once after restarts",
  async fn() {
    quiet();
    const started = Date.now();
    const { edge, stop } = await inProcessEdge();
    const proxy = startAckInterceptor(edge.url);
    const token = await edge.store.createPairing(domain);
    const proc = await startHomeProcess({ messages: [], edge: { url: proxy.url, token } });
    let smtp: RawSmtp | undefined;
    try {
      const acked = new Set<number>();
      smtp = await RawSmtp.connect(edge.smtpPort!);
      assertEquals((await smtp.command("EHLO load.invalid")).code, 250);
      const send = async (from: number, to: number) => {
        for (let i = from; i < to; i++) if (await sendOne(smtp!, "home-kill", i)) acked.add(i);
      };
      // The ack of the next batch kills the box: it has stored every item of it by then.
      const killOnAck = () => {
        let killed!: (ids: string[]) => void;
        const batch = new Promise<string[]>((r) => killed = r);
        proxy.state.onAck = async (ids) => {
          proxy.state.onAck = null;
          const status = await proc.kill("SIGKILL");
          assertEquals(status.signal, "SIGKILL");
          killed(ids);
        };
        return batch;
      };
      const checkWindow = async (batch: string[], sent: number) => {
        assertEquals(batch.length, sent, "one batch held every item");
        assertEquals(await markersIn(proc.dataDir, batch), batch.map(() => true), "stored");
        const waiting = new Set(await waitingAt(edge.store.kv));
        assert(batch.every((id) => waiting.has(id)), "the edge still holds every unacked item");
      };

      // 1. Hold the pull until 30 messages wait, so they come home as one batch.
      proxy.holdPulls();
      let batch = killOnAck();
      await send(0, 30);
      proxy.releasePulls();
      await checkWindow(await batch, 30);

      // 2. Ten more arrive while it is down; after the restart it pulls all 40 (30 again,
      //    already stored) and dies at the ack once more.
      await send(30, 40);
      batch = killOnAck();
      await proc.restart();
      await checkWindow(await batch, 40);

      // 3. Restarted without interference: everything once, the edge empty.
      await proc.restart();
      await waitFor("the edge to be empty", 20_000, async () => {
        return (await waitingAt(edge.store.kv)).length === 0;
      });
      assertEquals(acked.size, 40);
      const ids = await inboxIds(proc.port);
      assertEquals(ids.length, 40, `INBOX: ${ids.join(" ")}`);
      assertExactlyOnce(ids, "home-kill", acked, 40);
      console.log(`  killed twice at the ack of 30 and 40 items; ${Date.now() - started} ms`);
    } catch (e) {
      throw new Error(`${(e as Error).message}\nhearth home log:\n${proc.stderr().slice(-3000)}`, {
        cause: e,
      });
    } finally {
      smtp?.close();
      await proc.kill("SIGKILL");
      await Deno.remove(proc.dataDir, { recursive: true }).catch(() => {});
      await proxy.close();
      await stop();
    }
  },
});

Deno.test({
  ...processTest,
  name: "deliverSealed stores an item once when it is delivered twice, even concurrently",
  async fn() {
    quiet();
    const home = await startTestHome();
    try {
      const { kv, blobs, registry } = home.box;
      const account = (await kv.get<string>(["login", await loginKey(testAddress)])).value!;
      const { recipient } = (await kv.get<AccountRecord>(["account", account])).value!;
      const raw = message("twice", 1);
      const item = {
        account,
        sealed: await sealToRecipient(raw, recipient),
        size: raw.length,
        date: Date.now(),
        itemId: "0000000000twice1",
      };
      // Two pulls racing (two edges, or a resend while the first store runs), then a resend.
      const first = await Promise.all([
        deliverSealed(kv, blobs, item, registry),
        deliverSealed(kv, blobs, item, registry),
      ]);
      assertEquals(first.sort(), [false, true]);
      assertEquals(await deliverSealed(kv, blobs, item, registry), false);
      assertEquals(await inboxIds(home.imapPort), ["twice-1@load.invalid"]);
    } finally {
      await home.stop();
    }
  },
});

/**
 * A TCP proxy whose connections the test can cut (closed both ways), refuse
 * (listener down) or freeze (kept open, bytes dropped: a silent network cut).
 * It notes when a long-poll (`GET /v1/home/mail?wait=N`, N > 0) is open.
 */
class LinkCutter {
  #listener: Deno.TcpListener;
  readonly port: number;
  readonly #target: number;
  readonly #conns = new Set<
    { client: Deno.Conn; server: Deno.Conn; polling: boolean; frozen: boolean }
  >();

  constructor(target: number) {
    this.#target = target;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = this.#listener.addr.port;
    this.#accept(this.#listener);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async #accept(listener: Deno.TcpListener) {
    try {
      for await (const client of listener) {
        Deno.connect({ hostname: "127.0.0.1", port: this.#target }).then((server) => {
          const pair = { client, server, polling: false, frozen: false };
          this.#conns.add(pair);
          const pipe = async (from: Deno.Conn, to: Deno.Conn, up: boolean) => {
            const buf = new Uint8Array(64 * 1024);
            try {
              for (;;) {
                const n = await from.read(buf);
                if (n === null) break;
                if (pair.frozen) continue;
                const chunk = buf.subarray(0, n);
                if (up) {
                  const wait = decoder.decode(chunk.subarray(0, 40)).match(
                    /^GET \/v1\/home\/mail\?wait=(\d+)/,
                  );
                  if (wait) pair.polling = Number(wait[1]) > 0;
                } else pair.polling = false;
                let off = 0;
                while (off < n) off += await to.write(chunk.subarray(off));
              }
            } catch { /* cut */ }
            if (!pair.frozen) this.#close(pair);
          };
          pipe(client, server, true);
          pipe(server, client, false);
        }, () => client.close());
      }
    } catch { /* listener closed */ }
  }

  #close(pair: { client: Deno.Conn; server: Deno.Conn }) {
    this.#conns.delete(pair as never);
    for (const c of [pair.client, pair.server]) {
      try {
        c.close();
      } catch { /* already closed */ }
    }
  }

  /** True while a long-poll request has been sent and not yet answered. */
  get pollOpen(): boolean {
    return [...this.#conns].some((c) => c.polling && !c.frozen);
  }

  /** Closes every connection (the home sees a reset), still accepting new ones. */
  cut() {
    for (const pair of [...this.#conns]) this.#close(pair);
  }

  /** Cuts and stops listening: reconnects are refused until {@linkcode up}. */
  down() {
    this.#listener.close();
    this.cut();
  }

  up() {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: this.port });
    this.#accept(this.#listener);
  }

  /** Keeps open connections open but drops their bytes both ways; new ones work. */
  freeze() {
    for (const pair of this.#conns) pair.frozen = true;
  }

  close() {
    try {
      this.#listener.close();
    } catch { /* already closed */ }
    this.cut();
  }
}

Deno.test({
  ...processTest,
  name:
    "a home link cut mid-long-poll (closed, refused, silently dropped) loses and doubles nothing",
  async fn() {
    quiet();
    const { edge, stop } = await inProcessEdge();
    const cutter = new LinkCutter(edge.httpPort);
    const token = await edge.store.createPairing(domain);
    let home: TestHome | undefined;
    let smtp: RawSmtp | undefined;
    try {
      home = await startTestHome({ url: cutter.url, token });
      // Short waits keep the silent-drop case quick: the link gives up after 5 + 2 s.
      home.pull({ waitSeconds: 5, replyTimeoutMs: 2_000 });
      const acked = new Set<number>();
      smtp = await RawSmtp.connect(edge.smtpPort!);
      assertEquals((await smtp.command("EHLO load.invalid")).code, 250);
      const send = async (from: number, to: number) => {
        for (let i = from; i < to; i++) if (await sendOne(smtp!, "link-cut", i)) acked.add(i);
      };
      const arrived = (n: number) =>
        waitFor(`${n} messages at home`, 20_000, async () => {
          return (await inboxIds(home!.imapPort)).length >= n;
        });
      const pollOpen = () => waitFor("a long-poll", 10_000, () => Promise.resolve(cutter.pollOpen));

      await send(0, 5);
      await arrived(5);

      // Closed under a waiting poll; mail arrives right after.
      await pollOpen();
      cutter.cut();
      await send(5, 10);
      await arrived(10);

      // Refused: nothing comes home while the link is down, all of it once it is back.
      await pollOpen();
      cutter.down();
      await send(10, 15);
      await sleep(1_500);
      assertEquals((await inboxIds(home.imapPort)).length, 10);
      assertEquals((await waitingAt(edge.store.kv)).length, 5);
      cutter.up();
      await arrived(15);

      // Silently dropped (no FIN, no RST): the link must notice on its own and reconnect.
      await pollOpen();
      cutter.freeze();
      await send(15, 20);
      await arrived(20);

      await waitFor("the edge to be empty", 10_000, async () => {
        return (await waitingAt(edge.store.kv)).length === 0;
      });
      const ids = await inboxIds(home.imapPort);
      assertEquals(ids.length, 20);
      assertExactlyOnce(ids, "link-cut", acked, 20);
    } finally {
      smtp?.close();
      await home?.stop();
      cutter.close();
      await stop();
    }
  },
});

Deno.test({
  ...processTest,
  name: "two edge processes on one KV: mail through either arrives once at a home pulling both",
  async fn() {
    quiet();
    const started = Date.now();
    const a = await startEdgeProcess();
    const dirB = await Deno.makeTempDir({ prefix: "hearth-edge-b-" });
    let b: Awaited<ReturnType<typeof startEdgeProcess>> | undefined;
    let home: TestHome | undefined;
    const kv = await Deno.openKv(`${a.dataDir}/edge.kv`);
    try {
      // docs/edge.md: edges on one KV share the queue key and the VAPID keys.
      for (const f of ["edge-queue.key", "edge-vapid.json"]) {
        await Deno.copyFile(`${a.dataDir}/${f}`, `${dirB}/${f}`);
      }
      b = await startEdgeProcess({ dataDir: dirB, kv: `${a.dataDir}/edge.kv` });
      const token = await addHome(a.dataDir, domain);
      home = await startTestHome({ url: a.url, token });

      // Pulling from B only, mail committed by A must still come home (B re-reads KV).
      const viaB = home.pull({ url: b.url });
      const first = await smtpLoad({ port: a.smtpPort, tag: "two-a", total: 40, clients: 4 });
      assertEquals(first.size, 40);
      await waitFor("A's mail through B", 15_000, () => Promise.resolve(viaB.stored >= 40));

      // Then both links, and mail into both fronts at once.
      const viaA = home.pull();
      const [toA, toB] = await Promise.all([
        smtpLoad({ port: a.smtpPort, tag: "both-a", total: 100, clients: 4 }),
        smtpLoad({ port: b.smtpPort, tag: "both-b", total: 100, clients: 4 }),
      ]);
      assertEquals([toA.size, toB.size], [100, 100]);
      await waitFor("240 messages at home and the edge empty", 30_000, async () => {
        return (await inboxIds(home!.imapPort)).length >= 240 &&
          (await waitingAt(kv)).length === 0;
      });
      const ids = await inboxIds(home.imapPort);
      assertEquals(ids.length, 240);
      assertExactlyOnce(ids.filter((id) => id.startsWith("two-a-")), "two-a", first, 40);
      assertExactlyOnce(ids.filter((id) => id.startsWith("both-a-")), "both-a", toA, 100);
      assertExactlyOnce(ids.filter((id) => id.startsWith("both-b-")), "both-b", toB, 100);
      // Each signed request claims a nonce (a commit with a check): none may fail with
      // "database is locked" and come back as a 500 (commitRetrying in edge/store.ts).
      assertEquals([...a.errors(), ...b.errors()], []);
      console.log(
        `  stored via A ${viaA.stored}, via B ${viaB.stored}; ${Date.now() - started} ms`,
      );
    } catch (e) {
      throw new Error(
        `${(e as Error).message}\nedge A log:\n${a.stderr().slice(-2000)}\nedge B log:\n${
          b?.stderr().slice(-2000)
        }`,
        { cause: e },
      );
    } finally {
      kv.close();
      await home?.stop();
      await b?.stop();
      await a.stop();
      await Deno.remove(dirB, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  ...processTest,
  name: "two edge stores on one KV file claim nonces and pairings without a lock error",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "hearth-fault-kv-" });
    const stores = [
      new EdgeStore(await Deno.openKv(`${dir}/edge.kv`)),
      new EdgeStore(await Deno.openKv(`${dir}/edge.kv`)),
    ];
    try {
      // Two handles contend like two processes: before commitRetrying, most of these threw
      // "database is locked" (a 500 to a home's signed request).
      const claims = await Promise.all([0, 1, 0, 1].map(async (s, w) => {
        const got: boolean[] = [];
        for (let i = 0; i < 100; i++) {
          got.push(await stores[s].claimNonce("home-x", `n-${w}-${i}`, 60_000));
        }
        return got;
      }));
      assert(claims.flat().every((ok) => ok), "every fresh nonce is accepted");
      assertEquals(await stores[1].claimNonce("home-x", "n-0-0", 60_000), false, "a replay");
      // A pairing token is spent exactly once, even when both stores race for it.
      const token = await stores[0].createPairing(domain);
      const pk = "AAAA";
      const raced = await Promise.allSettled(stores.map((s) => s.registerHome(token, pk)));
      assertEquals(raced.filter((r) => r.status === "fulfilled").length, 1);
    } finally {
      for (const s of stores) s.kv.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
