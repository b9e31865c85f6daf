/**
 * Resource exhaustion against a home box in its own process (so its memory
 * can be read from /proc): 1,000 IMAP and 1,000 SMTP connections from one
 * address, slowloris, a client that never reads, a literal announced as
 * 2 GB, 10,000 pipelined commands and deep nesting. Legitimate clients from
 * another address (127.0.0.2) keep being served throughout, and the box's
 * resident memory stays under the bound stated in docs/reliability.md.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { limits } from "../../src/limits.ts";
import { LineClient } from "./line_client.ts";
import { spawnBox, type SpawnedBox } from "./box_process.ts";

/** docs/reliability.md: the box's RSS grows by at most this much under every attack here. */
export const rssGrowthBound = 200 * 1024 * 1024;
/** Shortened in the box process so the test sees the cuts within seconds. */
const testLimits = {
  slowInputWindowMs: 1500,
  imapPreAuthIdleMs: 3000,
  imapIdleMs: 3000,
};
const mb = (n: number) => `${(n / 1024 / 1024).toFixed(0)} MB`;

/** A legitimate client from another address: logs in, selects INBOX, fetches, appends. */
async function legitimateImap(box: SpawnedBox) {
  const c = await LineClient.connect(box.ports.port, "127.0.0.2");
  try {
    assert((await c.line())!.startsWith("* OK"));
    await c.write(`L1 LOGIN ${box.ports.address} "${box.ports.password}"\r\n`);
    assert((await c.until(/^L1 /))!.startsWith("L1 OK"), "login served");
    await c.write("L2 SELECT INBOX\r\nL3 FETCH 1:* (UID FLAGS)\r\n");
    assert((await c.until(/^L2 /))!.startsWith("L2 OK"));
    assert((await c.until(/^L3 /))!.startsWith("L3 OK"));
    await c.write("L4 LOGOUT\r\n");
  } finally {
    c.close();
  }
}

async function legitimateSmtp(box: SpawnedBox, n: number) {
  const c = await LineClient.connect(box.ports.mxPort, "127.0.0.2");
  try {
    assert((await c.line())!.startsWith("220"));
    await c.write("EHLO legit.example\r\n");
    assertEquals((await c.until(/^\d{3} /))!.slice(0, 3), "250");
    await c.write(`MAIL FROM:<a@legit.example>\r\n`);
    assertEquals((await c.line())!.slice(0, 3), "250");
    await c.write(`RCPT TO:<${box.ports.address}>\r\n`);
    assertEquals((await c.line())!.slice(0, 3), "250");
    await c.write("DATA\r\n");
    assertEquals((await c.line())!.slice(0, 3), "354");
    await c.write(`Subject: legit ${n}\r\n\r\nserved while under attack\r\n.\r\n`);
    const r = (await c.line(20_000))!;
    assertEquals(r.slice(0, 3), "250", r);
  } finally {
    c.close();
  }
}

async function loggedIn(box: SpawnedBox, select = true): Promise<LineClient> {
  const c = await LineClient.connect(box.ports.port);
  assert((await c.line())!.startsWith("* OK"));
  await c.write(`A LOGIN ${box.ports.address} "${box.ports.password}"\r\n`);
  assert((await c.until(/^A /))!.startsWith("A OK"));
  if (select) {
    await c.write("S SELECT INBOX\r\n");
    assert((await c.until(/^S /))!.startsWith("S OK"));
  }
  return c;
}

Deno.test({
  name: "the home box stays up, bounded and serving under connection floods and hostile clients",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const box = await spawnBox({ limits: testLimits, messages: 40 });
    const rss: Record<string, number> = { start: await box.rssBytes() };
    let peak = rss.start;
    const sample = async (label: string) => {
      const v = await box.rssBytes();
      rss[label] = v;
      peak = Math.max(peak, v);
    };
    try {
      // Warm-up: the first login unlocks the account and fills its caches.
      await legitimateImap(box);
      await legitimateSmtp(box, 0);
      await sample("warm");

      await t.step("1,000 IMAP connections: the per-IP limit answers BYE", async () => {
        const settled = await Promise.allSettled(
          Array.from({ length: 1000 }, () => LineClient.connect(box.ports.port)),
        );
        const conns = settled.flatMap((s) => s.status === "fulfilled" ? [s.value] : []);
        try {
          const first = await Promise.all(conns.map((c) => c.line(15_000).catch(() => null)));
          const ok = first.filter((l) => l?.startsWith("* OK")).length;
          const bye = first.filter((l) => l?.startsWith("* BYE Too many connections")).length;
          assertEquals(ok, limits.imapConnectionsPerIp, `${ok} greeted, ${bye} refused`);
          assertEquals(ok + bye, 1000);
          await sample("imap-flood");
          await legitimateImap(box);
        } finally {
          for (const c of conns) c.close();
        }
      });

      await t.step("1,000 SMTP connections: the per-IP limit answers 421", async () => {
        const settled = await Promise.allSettled(
          Array.from({ length: 1000 }, () => LineClient.connect(box.ports.mxPort)),
        );
        const conns = settled.flatMap((s) => s.status === "fulfilled" ? [s.value] : []);
        try {
          const first = await Promise.all(conns.map((c) => c.line(15_000).catch(() => null)));
          const ok = first.filter((l) => l?.startsWith("220")).length;
          const refused = first.filter((l) => l?.startsWith("421")).length;
          assertEquals(ok, limits.smtpConnectionsPerIp, `${ok} greeted, ${refused} refused`);
          assertEquals(ok + refused, 1000);
          await sample("smtp-flood");
          // The refused connections are closed; the held ones still count: another address
          // gets through.
          await legitimateSmtp(box, 1);
        } finally {
          for (const c of conns) c.close();
        }
      });

      await t.step(
        "slowloris: a line trickled a byte at a time is cut (IMAP and SMTP)",
        async () => {
          const imap = await LineClient.connect(box.ports.port);
          const smtp = await LineClient.connect(box.ports.mxPort);
          assert((await imap.line())!.startsWith("* OK"));
          assert((await smtp.line())!.startsWith("220"));
          const started = Date.now();
          const drip = async (c: LineClient, text: string) => {
            for (const ch of text) {
              if (c.ended) return;
              await c.write(ch);
              await new Promise((r) => setTimeout(r, 400));
            }
          };
          const imapText = "A1 LOGIN someone@example.org with-a-password-that-never-ends";
          const smtpText = "EHLO a-hostname-that-is-sent-one-byte-at-a-time.example";
          drip(imap, imapText);
          drip(smtp, smtpText);
          assertEquals(
            await imap.until(/^\* BYE/, 10_000),
            "* BYE Input too slow; closing the connection",
          );
          const reply = await smtp.until(/^421/, 10_000);
          assert(reply?.startsWith("421 4.4.2 Input too slow"), String(reply));
          assert(await imap.closedWithin(5000) && await smtp.closedWithin(5000));
          const took = Date.now() - started;
          // Two windows at most (one to arm, one to judge), well before the drip would end.
          assert(took < 3 * testLimits.slowInputWindowMs + 2000, `cut after ${took} ms`);
          imap.close();
          smtp.close();
          await legitimateImap(box);
        },
      );

      await t.step(
        "a client that never reads is paused, then cut; memory stays bounded",
        async () => {
          const c = await loggedIn(box);
          // 40 × ~20 KB messages per FETCH, 200 times: 160 MB of answers nobody reads.
          c.socket.pause();
          let cmds = "";
          for (let i = 0; i < 200; i++) cmds += `F${i} FETCH 1:* BODY.PEEK[]\r\n`;
          await c.write(cmds);
          await new Promise((r) => setTimeout(r, 1500));
          await sample("never-read");
          await legitimateImap(box);
          // Nothing moves for imapIdleMs: the server drops the connection and its queue.
          await new Promise((r) => setTimeout(r, 2 * testLimits.imapIdleMs));
          c.socket.resume();
          assert(await c.closedWithin(30_000), "the server closed the connection");
          const fullAnswers = 200 * 40 * 20_000;
          assert(c.received < fullAnswers / 4, `the client got ${mb(c.received)} before the cut`);
          c.close();
        },
      );

      await t.step("a literal announced as 2 GB is refused at once", async () => {
        const c = await loggedIn(box, false);
        await c.write("B1 APPEND INBOX {2147483648}\r\n");
        const r = (await c.until(/^(\+|B1 )/, 5000))!;
        assert(r.startsWith("B1 NO") || r.startsWith("B1 BAD"), r);
        assert(/TOOBIG|too large|limit/i.test(r), r);
        // Non-synchronising: no "+" to wait for, so the server must stop reading the bytes.
        await c.write("B2 APPEND INBOX {2147483648+}\r\nxxxxxxxx");
        const r2 = await c.until(/^(B2 |\* BYE)/, 5000);
        assert(r2 === null || /^(B2 (NO|BAD)|\* BYE)/.test(r2), String(r2));
        c.close();
        await legitimateImap(box);
      });

      await t.step("10,000 pipelined commands are all answered, in order", async () => {
        const c = await loggedIn(box);
        let cmds = "";
        for (let i = 0; i < 10_000; i++) {
          cmds += i % 2 ? `P${i} NOOP\r\n` : `P${i} FETCH 1 (FLAGS)\r\n`;
        }
        const writing = c.write(cmds);
        let answered = 0;
        for (;;) {
          const l = await c.line(20_000);
          if (l === null) break;
          const m = l.match(/^P(\d+) OK/);
          if (m) {
            assertEquals(Number(m[1]), answered);
            if (++answered === 10_000) break;
          }
        }
        await writing;
        assertEquals(answered, 10_000);
        await sample("pipelined");
        c.close();
      });

      await t.step("deep nesting is BAD, and the connection keeps working", async () => {
        const c = await loggedIn(box);
        await c.write(`N1 FETCH 1 ${"(".repeat(5000)}FLAGS${")".repeat(5000)}\r\n`);
        assert((await c.until(/^N1 /))!.startsWith("N1 BAD"));
        await c.write(`N2 SEARCH ${"NOT ".repeat(5000)}ALL\r\n`);
        assert((await c.until(/^N2 /))!.startsWith("N2 BAD"));
        await c.write(`N3 SEARCH ${"(".repeat(2000)}ALL${")".repeat(2000)}\r\n`);
        assert((await c.until(/^N3 /))!.startsWith("N3 BAD"));
        await c.write("N4 NOOP\r\n");
        assert((await c.until(/^N4 /))!.startsWith("N4 OK"));
        c.close();
      });

      await new Promise((r) => setTimeout(r, 1000));
      await sample("end");
      console.log(
        "home box RSS: " + Object.entries(rss).map(([k, v]) => `${k} ${mb(v)}`).join(", ") +
          `; peak ${mb(peak)}`,
      );
      assert(
        peak - rss.start < rssGrowthBound,
        `RSS grew by ${mb(peak - rss.start)} (bound ${mb(rssGrowthBound)})`,
      );
      await legitimateImap(box);
      await legitimateSmtp(box, 2);
    } catch (e) {
      console.error(box.stderr());
      throw e;
    } finally {
      await box.stop();
    }
  },
});
