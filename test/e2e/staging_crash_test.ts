/**
 * Blobs not yet in their final place under SIGKILL (docs/store.md, "Staged
 * blobs" and "The delivery journal"): `hearth home` takes mail by MX for a
 * locked and then an unlocked account (each message durable in the delivery
 * journal) and small APPENDs (each sealed blob staged in KV with its record),
 * and is killed before its segment becomes a pack and before its spiller
 * moves the staged blobs to files. At the next start every staged blob must
 * be written to its file, every journaled one must be in a pack with its
 * location recorded (each still a standard age file), with no staged key in
 * KV and no journal segment left, and every message that got `250` or `OK`
 * must be in INBOX, intact.
 *
 * Every domain is under `.invalid` (RFC 6761 §6.4): the subprocess's SPF and
 * DMARC lookups are answered without the network.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { inbox, splitTrace, startHomeProcess } from "./harness.ts";
import { RawSmtp } from "./raw_smtp.ts";
import { RawImap } from "./raw_imap.ts";
import { openSealed } from "../../src/crypto/age.ts";
import { decodeSegment } from "../../home/store/journal.ts";
import { packKey, type PackLocation } from "../../home/store/blobs.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function messageFor(i: number): Uint8Array {
  return encoder.encode(
    `From: sender${i}@stage.invalid\r\nTo: me@hearth.localhost\r\nSubject: staged ${i}\r\n` +
      `Message-ID: <staged-${i}@stage.invalid>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\n` +
      `body of staged message ${i}\r\n`.repeat(20 + i),
  );
}

async function stagedIds(dataDir: string): Promise<string[]> {
  const kv = await Deno.openKv(`${dataDir}/home.kv`);
  try {
    const ids = new Set<string>();
    for await (const e of kv.list({ prefix: ["staged"] })) ids.add(e.key[1] as string);
    return [...ids].sort();
  } finally {
    kv.close();
  }
}

async function journaledIds(dataDir: string): Promise<string[]> {
  const ids: string[] = [];
  for await (const e of Deno.readDir(`${dataDir}/blobs/journal`)) {
    if (!e.name.endsWith(".jnl")) continue;
    const entries = decodeSegment(await Deno.readFile(`${dataDir}/blobs/journal/${e.name}`));
    ids.push(...entries.map((x) => x.header.blob));
  }
  return ids.sort();
}

/** A packed blob's bytes, read where its location record says. */
async function packed(dataDir: string, id: string): Promise<Uint8Array> {
  const kv = await Deno.openKv(`${dataDir}/home.kv`);
  try {
    const at = (await kv.get<PackLocation>(packKey(id))).value;
    assert(at, `blob ${id} has no pack location`);
    const bytes = await Deno.readFile(`${dataDir}/blobs/packs/${at[0]}`);
    return bytes.subarray(at[1], at[1] + at[2]);
  } finally {
    kv.close();
  }
}

const blobPath = (dataDir: string, id: string) => `${dataDir}/blobs/${id.slice(0, 2)}/${id}.age`;

Deno.test({
  name:
    "blobs journaled or staged before a SIGKILL get their packs or files at the next start, leaving KV clean",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const proc = await startHomeProcess({ messages: [] });
    try {
      const smtp = await RawSmtp.connect(proc.mxPort!);
      assertEquals((await smtp.command("EHLO stage.invalid")).code, 250);
      const send = async (i: number) => {
        assertEquals((await smtp.command(`MAIL FROM:<sender${i}@stage.invalid>`)).code, 250);
        assertEquals((await smtp.command("RCPT TO:<me@hearth.localhost>")).code, 250);
        const r = await smtp.data(new Uint8Array([...messageFor(i), ...encoder.encode(".\r\n")]));
        assertEquals(r.code, 250, `DATA ${i}: ${r.text}`);
      };
      // Locked: arrival records. Then a logged-in session: straight into INBOX.
      for (let i = 0; i < 5; i++) await send(i);
      const session = await RawImap.connect(proc.port);
      await session.ok(`LOGIN ${proc.address} "${proc.password}"`);
      await session.ok("SELECT INBOX");
      for (let i = 5; i < 10; i++) await send(i);
      for (let i = 10; i < 15; i++) {
        const r = await session.append("INBOX", messageFor(i));
        assertEquals(r.status, "OK", `APPEND ${i}: ${r.text}`);
      }
      // At once after the last 250: the spiller waits for a quiet second.
      const status = await proc.kill("SIGKILL");
      assertEquals(status.signal, "SIGKILL");
      smtp.close();
      session.close();

      const staged = await stagedIds(proc.dataDir);
      const journaled = await journaledIds(proc.dataDir);
      assert(staged.length >= 5, `only ${staged.length} blobs were still staged at the kill`);
      assertEquals(journaled.length, 10, "every MX delivery was in the journal at the kill");
      const unwritten = async (ids: string[]) => {
        let n = 0;
        for (const id of ids) {
          if (!(await Deno.stat(blobPath(proc.dataDir, id)).catch(() => null))) n++;
        }
        return n;
      };
      assert(await unwritten(staged) > 0, "every staged blob already had its file: nothing tested");

      await proc.restart();
      const until = Date.now() + 15_000;
      while ((await stagedIds(proc.dataDir)).length && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assertEquals(await stagedIds(proc.dataDir), [], "staged keys left after the start-up spill");
      assertEquals(await journaledIds(proc.dataDir), [], "journal segments left after the start");
      for (const id of [...staged, ...journaled]) {
        const sealed = staged.includes(id)
          ? await Deno.readFile(blobPath(proc.dataDir, id))
          : await packed(proc.dataDir, id);
        const head = decoder.decode(sealed.subarray(0, 22));
        assertEquals(head, "age-encryption.org/v1\n");
        const plain = decoder.decode(await openSealed(sealed, proc.recoveryKey));
        assert(/^Message-ID: <staged-\d+@stage\.invalid>\r$/m.test(plain));
      }

      const stored = await inbox(proc);
      const seen = new Set<number>();
      for (const message of stored) {
        // APPENDed messages (10 and up) carry no trace fields.
        const appended = /^From: sender1\d@/.test(decoder.decode(message.subarray(0, 40)));
        const rest = decoder.decode(appended ? message : splitTrace(message).rest);
        const i = Number(rest.match(/^Message-ID: <staged-(\d+)@stage\.invalid>\r$/m)?.[1]);
        assertEquals(rest, decoder.decode(messageFor(i)), `message ${i} is not intact`);
        seen.add(i);
      }
      assertEquals([...seen].sort((a, b) => a - b), [...Array(15).keys()]);
      assertEquals(stored.length, 15);
    } catch (e) {
      throw new Error(`${(e as Error).message}\nhearth home log:\n${proc.stderr().slice(-3000)}`, {
        cause: e,
      });
    } finally {
      await proc.stop();
    }
  },
});
