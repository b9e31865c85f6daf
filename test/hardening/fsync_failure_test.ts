/**
 * An fsync failure never yields `250` or `OK` (DESIGN.md, durability promise).
 * A home box runs in this process with its durable steps behind
 * home/store/fsync_faults.ts: a blob file's fdatasync, a blob directory's
 * fsync, or a KV commit (the fsync of SQLite's write-ahead log) fails on
 * demand. Each case turns one on, drives a real delivery (MX) or IMAP
 * `APPEND`, and expects a temporary failure (`451`, RFC 5321 §4.2.5 and
 * RFC 3463 §3.3 `4.3.0`; tagged `NO`, RFC 9051 §7.1); then the fault clears,
 * the client retries and succeeds, and at the end every message is in INBOX
 * exactly once and whole.
 *
 * A small message over the MX is durable in the delivery journal
 * (home/store/journal.ts) before its `250`: its durable step is the journal's
 * fdatasync, and a KV commit failing after it only delays its indexing (the
 * `250` stands, and the message is in INBOX once KV works again). A small
 * APPEND is staged in KV with its record (home/store/staging.ts), so its
 * durable step is the KV commit; messages over `limits.stagedBlobBytes`
 * (256 KiB) are written as files first. All are covered, for a locked
 * account (arrival records) and an unlocked one (straight into INBOX), and
 * a spill of staged blobs to files whose fsync fails.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { FsyncFaults } from "../../home/store/fsync_faults.ts";
import { limits } from "../../src/limits.ts";
import { startEdge } from "../../edge/main.ts";
import { inbox, startTestBox, type TestBox, waitFor } from "../e2e/harness.ts";
import { RawImap } from "../e2e/raw_imap.ts";
import { RawSmtp } from "../e2e/raw_smtp.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

type Step = "fileData" | "directory" | "kvCommit";
type Size = "small" | "large";

function message(subject: string, size: Size): Uint8Array {
  const line = `${subject}: a line of the body, long enough to weigh something\r\n`;
  // Large: sealed, it is over the staging limit and goes to a file of its own.
  const lines = size === "small" ? 40 : Math.ceil((limits.stagedBlobBytes + 64_000) / line.length);
  return encoder.encode(
    `From: sender@fsync.invalid\r\nTo: me@hearth.localhost\r\nSubject: ${subject}\r\n` +
      `Message-ID: <${subject}@fsync.invalid>\r\n\r\n${line.repeat(lines)}end of ${subject}\r\n`,
  );
}

/** Rejects after `ms`: a hung server fails the test instead of holding it. */
async function bounded<T>(what: string, ms: number, p: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** One MX transaction; the reply to the end of DATA. */
async function deliverByMx(box: TestBox, subject: string, size: Size): Promise<string> {
  const c = await RawSmtp.connect(box.mxPort!, 20_000);
  try {
    assertEquals((await c.command("EHLO fsync.invalid")).code, 250);
    assertEquals((await c.command("MAIL FROM:<sender@fsync.invalid>")).code, 250);
    assertEquals((await c.command(`RCPT TO:<${box.address}>`)).code, 250);
    const r = await c.data(new Uint8Array([...message(subject, size), ...encoder.encode(".\r\n")]));
    return `${r.code} ${r.text}`;
  } finally {
    c.close();
  }
}

Deno.test({
  name: "an injected fsync failure gives 451 or NO, never 250 or OK, and the retry is stored once",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const faults = new FsyncFaults();
    const box = await startTestBox({
      messages: [],
      storage: { fileSystem: faults.fileSystem(), kv: (kv) => faults.wrapKv(kv) },
    });
    let imap: RawImap | undefined;
    const stored: string[] = [];
    const results: string[] = [];
    try {
      /** Fails `step` for one attempt, which must be refused; the retry must succeed. */
      const check = async (
        via: "MX" | "APPEND",
        size: Size,
        step: Step,
        attempt: (subject: string) => Promise<{ ok: boolean; reply: string }>,
      ) => {
        const subject = `${stored.length}-${via}-${size}-${step}-${imap ? "unlocked" : "locked"}`;
        const before = faults.injected[step];
        faults[step] = true;
        let refused;
        try {
          refused = await bounded(`${subject} with the fault`, 30_000, attempt(subject));
        } finally {
          faults.clear();
        }
        assert(faults.injected[step] > before, `${subject}: the fault was never hit`);
        assert(!refused.ok, `${subject}: acknowledged although its ${step} failed`);
        const retry = await bounded(`${subject} retried`, 30_000, attempt(subject));
        assert(retry.ok, `${subject}: the retry failed: ${retry.reply}`);
        stored.push(subject);
        results.push(`${subject}: ${refused.reply.slice(0, 40)}`);
      };
      const mx = (size: Size, step: Step) =>
        check("MX", size, step, async (subject) => {
          const reply = await deliverByMx(box, subject, size);
          // RFC 5321 §4.2.5: after DATA only 250 accepts responsibility; this must be 4xx.
          if (!reply.startsWith("250")) assert(/^4\d\d 4\.\d+\.\d+ /.test(reply), reply);
          return { ok: reply.startsWith("250"), reply };
        });
      const append = (size: Size, step: Step) =>
        check("APPEND", size, step, async (subject) => {
          const r = await imap!.append("INBOX", message(subject, size));
          // RFC 5530 §3: a subsystem (the disk) failed for now; the client may retry.
          if (r.status !== "OK") {
            assert(/^\[UNAVAILABLE\] /.test(r.text) && r.status === "NO", r.text);
          }
          return { ok: r.status === "OK", reply: `${r.status} ${r.text}` };
        });

      /** KV fails after the journal's sync: the 250 stands, the message is indexed later. */
      const mxIndexedLater = async () => {
        const subject = `${stored.length}-MX-small-kvCommit-${imap ? "unlocked" : "locked"}-later`;
        const before = faults.injected.kvCommit;
        faults.kvCommit = true;
        let reply;
        try {
          reply = await bounded(subject, 30_000, deliverByMx(box, subject, "small"));
          const until = Date.now() + 10_000;
          while (faults.injected.kvCommit === before && Date.now() < until) {
            await new Promise((r) => setTimeout(r, 20));
          }
        } finally {
          faults.clear();
        }
        assert(reply.startsWith("250"), `${subject}: ${reply}`);
        assert(faults.injected.kvCommit > before, `${subject}: indexing never met the fault`);
        stored.push(subject);
      };

      // The account is locked: deliveries become arrival records.
      await mx("small", "fileData");
      await mxIndexedLater();
      await mx("large", "fileData");
      await mx("large", "directory");
      await mx("large", "kvCommit");

      // A login unlocks it: deliveries and APPENDs go straight into INBOX.
      imap = await RawImap.connect(box.port);
      await imap.ok(`LOGIN ${box.address} "${box.password}"`);
      await imap.ok("SELECT INBOX");
      await mx("small", "fileData");
      await mxIndexedLater();
      await mx("large", "fileData");
      await mx("large", "directory");
      await append("small", "kvCommit");
      await append("large", "fileData");
      await append("large", "directory");
      await append("large", "kvCommit");
      console.log(`  refused: ${results.join("; ")}`);

      // The spiller moves staged blobs to files after a quiet second: when its fsync fails,
      // the staged copy stays in KV and the message stays readable.
      await mx("small", "fileData");
      const spillFaults = faults.injected.fileData;
      faults.fileData = true;
      try {
        const until = Date.now() + 10_000;
        while (faults.injected.fileData === spillFaults && Date.now() < until) {
          await new Promise((r) => setTimeout(r, 100));
        }
      } finally {
        faults.clear();
      }
      assert(faults.injected.fileData > spillFaults, "the spiller never tried to write a file");

      // Every acknowledged message once, whole; nothing of the refused attempts left over.
      const check2 = await RawImap.connect(box.port);
      try {
        await check2.ok(`LOGIN ${box.address} "${box.password}"`);
        await check2.ok("SELECT INBOX");
        const bodies = [...(await check2.fetchAllBodies()).values()].map((b) => decoder.decode(b));
        const subjects = bodies.map((b) => b.match(/^Subject: (.*)\r$/m)?.[1] ?? "?");
        assertEquals([...subjects].sort(), [...stored].sort(), "INBOX holds each retry once");
        for (const [i, body] of bodies.entries()) {
          const size = subjects[i].includes("-large-") ? "large" : "small";
          assert(body.endsWith(decoder.decode(message(subjects[i], size))), `${subjects[i]} whole`);
        }
      } finally {
        check2.close();
      }
    } finally {
      imap?.close();
      await box.stop();
    }
  },
});

Deno.test({
  name: "a home box whose fsync fails acks nothing to the edge, and stores the item once after",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const edgeDir = await Deno.makeTempDir({ prefix: "hearth-fsync-edge-" });
    const edge = await startEdge({
      dataDir: edgeDir,
      hostname: "edge.localhost",
      listen: "127.0.0.1",
      httpPort: 0,
      smtpPort: 0,
    });
    const faults = new FsyncFaults();
    let box: TestBox | undefined;
    try {
      const token = await edge.store.createPairing("hearth.localhost");
      box = await startTestBox({
        messages: [],
        edge: { url: edge.url, token },
        storage: { fileSystem: faults.fileSystem(), kv: (kv) => faults.wrapKv(kv) },
      });
      const home = (await edge.store.homeIds())[0];
      const waiting = async () => (await edge.store.list(home, 100)).items.length;
      for (const [i, size] of (["small", "large"] as const).entries()) {
        const step = size === "small" ? "kvCommit" : "fileData";
        const before = faults.injected[step];
        faults[step] = true;
        try {
          const subject = `edge-${i}-${size}`;
          const c = await RawSmtp.connect(edge.smtpPort!, 20_000);
          try {
            await c.command("EHLO fsync.invalid");
            await c.command("MAIL FROM:<sender@fsync.invalid>");
            assertEquals((await c.command(`RCPT TO:<${box.address}>`)).code, 250);
            const r = await c.data(
              new Uint8Array([...message(subject, size), ...encoder.encode(".\r\n")]),
            );
            assertEquals(r.code, 250, r.text);
          } finally {
            c.close();
          }
          await waitFor(
            `the home box to try storing ${subject}`,
            20_000,
            () => faults.injected[step] > before,
          );
          // Tried and failed: the edge must still hold the item.
          await new Promise((r) => setTimeout(r, 500));
          assertEquals(await waiting(), 1, `${subject} was acknowledged without being durable`);
        } finally {
          faults.clear();
        }
        const attempts = faults.injected[step] - before;
        console.log(`  ${size}: ${attempts} failed attempts to store while the fault was on`);
        // The pull loop backs off after a failure to store instead of pulling again at once.
        assert(attempts <= 3, `${attempts} attempts in about half a second: no backoff`);
        await waitFor("the edge to be empty", 30_000, async () => (await waiting()) === 0);
      }
      const bodies = (await inbox(box)).map((b) => decoder.decode(b));
      const subjects = bodies.map((b) => b.match(/^Subject: (.*)\r$/m)?.[1]);
      assertEquals(subjects.sort(), ["edge-0-small", "edge-1-large"]);
    } finally {
      await box?.stop();
      await edge.close();
      await Deno.remove(edgeDir, { recursive: true }).catch(() => {});
    }
  },
});
