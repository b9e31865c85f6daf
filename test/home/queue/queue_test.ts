/**
 * The outbound queue against a fake recipient MX on loopback: delivery with
 * DKIM, dot-stuffing and CRLF; retries; bounces into the sender's INBOX;
 * restarts; and nothing readable on disk.
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { Buffer } from "node:buffer";
import { dkimVerify } from "mailauth/lib/dkim/verify.js";
import { mailauthResolver, TestResolver } from "../../../src/dns.ts";
import { limits } from "../../../src/limits.ts";
import {
  dkimRecordName,
  dkimTxtRecord,
  ensureDkimKey,
  signingPreparer,
} from "../../../home/queue/dkim.ts";
import { OutboundQueue } from "../../../src/queue/queue.ts";
import { normaliseLineEndings } from "../../../src/mail/line_endings.ts";
import { retryDelayMs, startQueueRunner } from "../../../src/queue/runner.ts";
import { DirectTransport } from "../../../src/queue/transport.ts";
import { homeDelivery } from "../../../home/queue/local.ts";
import { address as localAddress, type Fixture, makeFixture } from "../store/fixture.ts";
import { type FakeMx, startFakeMx } from "../../src/queue/fake_mx.ts";

const domain = "store.test";
const enc = new TextEncoder();
const dec = new TextDecoder();

function assertStringIncludes(text: string, part: string) {
  assert(text.includes(part), `expected ${JSON.stringify(part)} in:\n${text}`);
}

/** A test that fails instead of hanging. */
function bounded(name: string, fn: () => Promise<void>, ms = 30_000) {
  Deno.test({
    name,
    sanitizeOps: false,
    sanitizeResources: false,
    async fn() {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
      });
      try {
        await Promise.race([fn(), timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
  });
}

interface Setup {
  fx: Fixture;
  mx: FakeMx;
  dns: TestResolver;
  queue: OutboundQueue;
  runOnce(): Promise<void>;
  advance(ms: number): void;
  /** Closes the KV and reopens queue and runner on it, as a restart would. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

async function setup(): Promise<Setup> {
  const fx = await makeFixture();
  const mx = await startFakeMx();
  const key = await ensureDkimKey(fx.dir);
  const dns = new TestResolver()
    .mx("remote.test", "mx.remote.test")
    .a("mx.remote.test", "127.0.0.1")
    .txt(dkimRecordName(key, domain), dkimTxtRecord(key));
  let t = Date.parse("2026-03-01T12:00:00Z");
  const transport = new DirectTransport({
    resolver: dns,
    hostname: "box.store.test",
    portFor: () => mx.port,
    connectTimeoutMs: 5_000,
    socketTimeoutMs: 10_000,
  });
  const build = async () => {
    const queue = await OutboundQueue.open(fx.kv, fx.dir, {
      prepare: signingPreparer(domain, key),
      now: () => t,
    });
    const runner = startQueueRunner({
      queue,
      local: homeDelivery(fx.kv, fx.blobs),
      transport,
      domain,
      hostname: "box.store.test",
      loop: false,
    });
    return { queue, runner };
  };
  let { queue, runner } = await build();
  const s: Setup = {
    fx,
    mx,
    dns,
    get queue() {
      return queue;
    },
    runOnce: () => runner.runOnce(),
    advance: (ms) => t += ms,
    async restart() {
      await runner.stop();
      await fx.restart();
      ({ queue, runner } = await build());
    },
    async close() {
      await runner.stop();
      await mx.close();
      await fx.cleanup();
    },
  };
  return s;
}

function message(subject: string, body: string, to = "bob@remote.test"): Uint8Array {
  return enc.encode(
    `From: Owner <${localAddress}>\r\nTo: ${to}\r\nSubject: ${subject}\r\n` +
      `Date: Sun, 01 Mar 2026 12:00:00 +0000\r\nMessage-ID: <${crypto.randomUUID()}@${domain}>\r\n` +
      `\r\n${body}`,
  );
}

/** The messages in the local account's INBOX, read back through the store. */
async function inbox(fx: Fixture): Promise<string[]> {
  const store = await fx.open();
  try {
    await store.ingestArrivals();
    const mb = [...store.state.mailboxes.values()].find((m) => m.name === "INBOX")!;
    const out: string[] = [];
    for (const uid of mb.uids) out.push(dec.decode(await store.message(mb.byUid.get(uid)!.blob)));
    return out;
  } finally {
    await store.close();
  }
}

function hasBareCrOrLf(raw: Uint8Array): boolean {
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 13 && raw[i + 1] !== 10) return true;
    if (raw[i] === 10 && raw[i - 1] !== 13) return true;
  }
  return false;
}

bounded("a remote message arrives DKIM-signed, dot-stuffed, with CRLF only", async () => {
  const s = await setup();
  try {
    // A lone "." line would end DATA early if not stuffed; bare LF and bare CR must become CRLF.
    const body = "first\r\n.\r\n..two dots\r\n.leading\nbare lf\rbare cr\r\nlast line\r\n";
    await s.queue.enqueue(localAddress, ["bob@remote.test"], message("Stuffing", body));
    await s.runOnce();
    assertEquals(s.mx.received.length, 1);
    const got = s.mx.received[0];
    assertEquals(got.from, localAddress);
    assertEquals(got.to, ["bob@remote.test"]);
    assertEquals(got.clientHostname, "box.store.test");
    assert(got.secure, "opportunistic STARTTLS was used");
    const text = dec.decode(got.raw);
    assert(!hasBareCrOrLf(got.raw), "only CRLF line endings");
    assertStringIncludes(
      text,
      "\r\n\r\nfirst\r\n.\r\n..two dots\r\n.leading\r\nbare lf\r\nbare cr\r\nlast line\r\n",
    );
    assertMatch(text, /^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=store\.test;/);
    const verdict = await dkimVerify(Buffer.from(got.raw), {
      resolver: mailauthResolver(s.dns),
    });
    assertEquals(verdict.results.map((r: { status: { result: string } }) => r.status.result), [
      "pass",
    ]);
    assertEquals(await s.queue.list(), []);
  } finally {
    await s.close();
  }
});

bounded("a 4xx is retried after the backoff, then delivered", async () => {
  const s = await setup();
  try {
    s.mx.rcptReply = (_to, n) =>
      n === 1 ? { code: 451, text: "4.7.1 greylisted, try later" } : null;
    await s.queue.enqueue(localAddress, ["bob@remote.test"], message("Grey", "hi\r\n"));
    await s.runOnce();
    let [item] = await s.queue.list();
    assertEquals(item.attempts, 1);
    assertEquals(item.envelope.recipients[0].state, "pending");
    assertStringIncludes(item.envelope.recipients[0].reason!, "greylisted");
    assertEquals(item.nextAttempt - item.created, limits.queueRetryBaseMs);
    await s.runOnce(); // not due yet
    assertEquals(s.mx.rcptAttempts.length, 1);
    s.advance(limits.queueRetryBaseMs);
    await s.runOnce();
    assertEquals(s.mx.received.length, 1);
    assertEquals(await s.queue.list(), []);
    assertEquals((await inbox(s.fx)).length, 0, "no bounce for a delivered message");
    [item] = await s.queue.list();
    assertEquals(item, undefined);
  } finally {
    await s.close();
  }
});

bounded("a 5xx bounces a DSN into the sender's INBOX", async () => {
  const s = await setup();
  try {
    s.mx.rcptReply = (to) =>
      to === "gone@remote.test" ? { code: 550, text: "5.1.1 no such user" } : null;
    await s.queue.enqueue(
      localAddress,
      ["gone@remote.test", "bob@remote.test"],
      message("Partly", "hi\r\n"),
    );
    await s.runOnce();
    assertEquals(s.mx.received.length, 1);
    assertEquals(s.mx.received[0].to, ["bob@remote.test"]);
    assertEquals(await s.queue.list(), []);
    const [dsn] = await inbox(s.fx);
    assertMatch(dsn, /Content-Type: multipart\/report; report-type=delivery-status;/);
    assertStringIncludes(dsn, "Content-Type: message/delivery-status\r\n");
    assertStringIncludes(dsn, "Final-Recipient: rfc822; gone@remote.test\r\nAction: failed\r\n");
    assertStringIncludes(dsn, "Status: 5.1.1\r\n");
    assertStringIncludes(dsn, "Subject: Partly\r\n");
    assert(!dsn.includes("Final-Recipient: rfc822; bob@remote.test"));
  } finally {
    await s.close();
  }
});

bounded("a recipient still deferred after 5 days expires with a 4.4.7 DSN", async () => {
  const s = await setup();
  try {
    s.mx.rcptReply = () => ({ code: 451, text: "4.3.0 try later" });
    await s.queue.enqueue(localAddress, ["bob@remote.test"], message("Stuck", "hi\r\n"));
    const created = (await s.queue.list())[0].created;
    let last = created;
    for (let i = 0; i < 100; i++) {
      const [item] = await s.queue.list();
      if (!item) break;
      assert((await inbox(s.fx)).length === 0, "no bounce before expiry");
      s.advance(item.nextAttempt - last);
      last = item.nextAttempt;
      await s.runOnce();
    }
    assertEquals(await s.queue.list(), []);
    assert(last - created >= limits.queueMaxAgeMs, "gave up only after the maximum age");
    // Exponential backoff up to the cap: 5 days take about 35 attempts, not one per 5 minutes.
    const n = s.mx.rcptAttempts.length;
    assert(n >= 30 && n <= 40, `${n} attempts`);
    const [dsn] = await inbox(s.fx);
    assertStringIncludes(dsn, "Status: 4.4.7\r\n");
  } finally {
    await s.close();
  }
}, 60_000);

bounded("a local recipient is delivered into the INBOX without SMTP", async () => {
  const s = await setup();
  try {
    await s.queue.enqueue(localAddress, [localAddress], message("To myself", "hi\r\n"));
    await s.runOnce();
    assertEquals(s.mx.rcptAttempts, []);
    const [got] = await inbox(s.fx);
    assertStringIncludes(got, "Subject: To myself\r\n");
  } finally {
    await s.close();
  }
});

bounded("a domain without MX is delivered to its address; a null MX bounces", async () => {
  const s = await setup();
  try {
    s.dns.a("plain.test", "127.0.0.1").mx("nomail.test", ".", 0);
    await s.queue.enqueue(
      localAddress,
      ["carol@plain.test", "dave@nomail.test"],
      message("Fallback", "hi\r\n"),
    );
    await s.runOnce();
    assertEquals(s.mx.received.map((r) => r.to), [["carol@plain.test"]]);
    const [dsn] = await inbox(s.fx);
    assertStringIncludes(dsn, "Final-Recipient: rfc822; dave@nomail.test\r\n");
    assertStringIncludes(dsn, "Status: 5.1.10\r\n");
  } finally {
    await s.close();
  }
});

bounded("a queued item survives a restart and is delivered after it", async () => {
  const s = await setup();
  try {
    const big = "x".repeat(75) + "\r\n";
    const body = big.repeat(3000); // ~230 KB: several chunks
    await s.queue.enqueue(localAddress, ["bob@remote.test"], message("Restart", body));
    await s.restart();
    const [item] = await s.queue.list();
    assertEquals(item.envelope.recipients.map((r) => r.address), ["bob@remote.test"]);
    assertEquals(await s.queue.collectOrphans(), 0);
    await s.runOnce();
    assertEquals(s.mx.received.length, 1);
    assertStringIncludes(dec.decode(s.mx.received[0].raw), "\r\n\r\n" + body);
    assertEquals(await s.queue.list(), []);
  } finally {
    await s.close();
  }
});

bounded("nothing readable of a queued message is written to disk", async () => {
  const s = await setup();
  try {
    const rcpt = "secret-recipient-4711@remote.test";
    const subject = "Confidential subject 0815";
    await s.queue.enqueue(localAddress, [rcpt], message(subject, "Secret body text 42\r\n", rcpt));
    await s.restart(); // flush the KV to its files
    const needles = [rcpt, subject, "Secret body text 42"].map((n) => enc.encode(n));
    const stack = [s.fx.dir];
    let files = 0;
    while (stack.length) {
      const dir = stack.pop()!;
      for await (const e of Deno.readDir(dir)) {
        const path = `${dir}/${e.name}`;
        if (e.isDirectory) stack.push(path);
        else if (e.isFile) {
          files++;
          const data = await Deno.readFile(path);
          const text = Buffer.from(data);
          for (const n of needles) {
            assert(text.indexOf(n) < 0, `${path} contains "${dec.decode(n)}"`);
          }
        }
      }
    }
    assert(files > 0);
    assertEquals((await Deno.stat(`${s.fx.dir}/queue.key`)).mode! & 0o777, 0o600);
    assertEquals((await Deno.stat(`${s.fx.dir}/dkim/hearth.key`)).mode! & 0o777, 0o600);
    assertEquals((await s.queue.list()).length, 1, "still queued and readable with the key");
  } finally {
    await s.close();
  }
});

bounded("the runner loop delivers an enqueued message without being driven", async () => {
  const fx = await makeFixture();
  const mx = await startFakeMx({ starttls: false });
  const dns = new TestResolver().mx("remote.test", "127.0.0.1");
  const queue = await OutboundQueue.open(fx.kv, fx.dir);
  const runner = startQueueRunner({
    queue,
    local: homeDelivery(fx.kv, fx.blobs),
    transport: new DirectTransport({ resolver: dns, hostname: "box", portFor: () => mx.port }),
    domain,
    hostname: "box",
    pollMs: 60_000,
  });
  try {
    await queue.enqueue("", ["bob@remote.test"], message("Loop", "hi\r\n"));
    while (mx.received.length === 0) await new Promise((r) => setTimeout(r, 20));
    assertEquals(mx.received[0].from, "");
    assert(!mx.received[0].secure);
  } finally {
    await runner.stop();
    await mx.close();
    await fx.cleanup();
  }
});

Deno.test("normaliseLineEndings() (queue input) turns bare CR and bare LF into CRLF and keeps CRLF", () => {
  const out = dec.decode(normaliseLineEndings(enc.encode("a\nb\rc\r\nd\r\re\n\n")));
  assertEquals(out, "a\r\nb\r\nc\r\nd\r\n\r\ne\r\n\r\n");
  const clean = enc.encode("a\r\nb\r\n");
  assertEquals(normaliseLineEndings(clean), clean);
});

Deno.test("retryDelayMs() doubles from the base up to the cap", () => {
  assertEquals(retryDelayMs(1), limits.queueRetryBaseMs);
  assertEquals(retryDelayMs(2), 2 * limits.queueRetryBaseMs);
  assertEquals(retryDelayMs(3), 4 * limits.queueRetryBaseMs);
  assertEquals(retryDelayMs(50), limits.queueRetryMaxMs);
});

bounded("chunks left by a crash mid-enqueue are collected; items are not", async () => {
  const s = await setup();
  try {
    await s.queue.enqueue(localAddress, ["bob@remote.test"], message("Kept", "hi\r\n"));
    await s.fx.kv.set(["queue", "chunk", "crashed-id", 0], new Uint8Array(10));
    assertEquals(await s.queue.collectOrphans(), 1);
    assertEquals((await s.fx.kv.get(["queue", "chunk", "crashed-id", 0])).value, null);
    assertEquals((await s.queue.list()).length, 1);
    await s.runOnce();
    assertEquals(s.mx.received.length, 1);
  } finally {
    await s.close();
  }
});
