/**
 * smtp_crash_test.ts with the account unlocked: an IMAP session stays logged
 * in during the load, so deliveries go straight into INBOX (the index commit
 * carrying their metadata) instead of through arrival records.
 *
 * The MX's durability promise under SIGKILL (RFC 5321 §4.1.1.4: a 250 to
 * DATA takes responsibility for the message): `hearth home` runs as a child
 * process while several raw SMTP connections deliver 1,000 messages; it is
 * killed after about 400 `250`s and restarted. Every message that got `250`
 * must then be in INBOX exactly once, byte for byte below the trace fields
 * the MX prepends; a message cut off by the kill may be there too, but whole.
 *
 * The subprocess checks SPF and DMARC through the system resolver, so every
 * domain here is under `.invalid` (RFC 6761 §6.4): answered without the
 * network, where an unreachable DNS server would stall each message.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { inbox, splitTrace, startHomeProcess } from "./harness.ts";
import { RawSmtp } from "./raw_smtp.ts";
import { RawImap } from "./raw_imap.ts";

const total = 1000;
const clients = 8;
const killAfter = 400;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function messageFor(i: number): Uint8Array {
  // 2 KB to about 10 KB, so stored messages differ in length.
  const filler = `line of message ${i}, long enough to fill a few kilobytes of body text\r\n`
    .repeat(28 + (i * 37) % 110);
  return encoder.encode(
    `From: sender${i}@load.invalid\r\nTo: me@hearth.localhost\r\nSubject: smtp crash ${i}\r\n` +
      `Message-ID: <smtp-crash-u-${i}@load.invalid>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\n` +
      `${filler}end of message ${i}\r\n`,
  );
}

Deno.test({
  name: "MX 250s to an unlocked account survive SIGKILL of hearth home in the middle of a load",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const started = Date.now();
    const proc = await startHomeProcess({ messages: [] });
    try {
      const mxPort = proc.mxPort!;
      // A logged-in session keeps the account unlocked for the whole load.
      const session = await RawImap.connect(proc.port);
      await session.ok(`LOGIN ${proc.address} "${proc.password}"`);
      await session.ok("SELECT INBOX");
      const acked = new Set<number>();
      let killed = false;
      let exited: Promise<Deno.CommandStatus> | undefined;

      const worker = async (w: number) => {
        let c: RawSmtp | undefined;
        try {
          const conn = await RawSmtp.connect(mxPort);
          c = conn;
          assertEquals((await conn.command("EHLO load.invalid")).code, 250);
          for (let i = w; i < total && !killed; i += clients) {
            const from = await conn.command(`MAIL FROM:<sender${i}@load.invalid>`);
            assertEquals(from.code, 250, `MAIL ${i}: ${from.text}`);
            const rcpt = await conn.command("RCPT TO:<me@hearth.localhost>");
            assertEquals(rcpt.code, 250, `RCPT ${i}: ${rcpt.text}`);
            const r = await conn.data(
              new Uint8Array([...messageFor(i), ...encoder.encode(".\r\n")]),
            );
            assertEquals(r.code, 250, `DATA ${i}: ${r.text}`);
            acked.add(i);
            if (acked.size >= killAfter && !killed) {
              killed = true;
              exited = proc.kill("SIGKILL");
            }
          }
        } catch (e) {
          // After the kill, broken connections are expected; before it they are failures.
          if (!killed) throw e;
        } finally {
          c?.close();
        }
      };
      await Promise.all(Array.from({ length: clients }, (_, w) => worker(w)));
      assert(killed, `the box was never killed (${acked.size} acknowledged)`);
      const status = await exited!;
      assertEquals(status.signal, "SIGKILL", "the box was killed, not stopped");
      assert(acked.size >= killAfter);
      session.close();

      await proc.restart();
      const stored = await inbox(proc);
      const seen = new Set<number>();
      for (const message of stored) {
        const rest = decoder.decode(splitTrace(message).rest);
        const id = rest.match(/^Message-ID: <smtp-crash-u-(\d+)@load\.invalid>\r$/m);
        assert(id, `a stored message that was never sent: ${rest.slice(0, 200)}`);
        const i = Number(id[1]);
        assert(!seen.has(i), `message ${i} is stored twice`);
        seen.add(i);
        assertEquals(rest, decoder.decode(messageFor(i)), `message ${i} is not intact`);
      }
      const missing = [...acked].filter((i) => !seen.has(i)).sort((a, b) => a - b);
      assertEquals(missing, [], `acknowledged with 250 but missing after the restart`);
      assert(Date.now() - started < 60_000, `took ${Date.now() - started} ms`);
    } catch (e) {
      throw new Error(`${(e as Error).message}\nhearth home log:\n${proc.stderr().slice(-3000)}`, {
        cause: e,
      });
    } finally {
      await proc.stop();
    }
  },
});
