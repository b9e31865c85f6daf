import { deepStrictEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import {
  decodeSegment,
  DeliveryJournal,
  encodeEntry,
  type JournalEntry,
  type JournalHeader,
  recoverJournal,
  segmentBytes,
} from "../../../home/store/journal.ts";
import { AccountRegistry } from "../../../home/store/accounts.ts";
import { BlobStore, denoFileSystem } from "../../../home/store/blobs.ts";
import { deliverLocally, indexRecovered } from "../../../home/store/deliver.ts";
import { FsyncFaults } from "../../../home/store/fsync_faults.ts";
import { sealToRecipient } from "../../../src/crypto/age.ts";
import { address, type Fixture, message, password, withFixture } from "./fixture.ts";

async function sealedFor(f: Fixture, n: number): Promise<[JournalHeader, Uint8Array]> {
  const raw = message(`journal ${n}`);
  const sealed = await sealToRecipient(raw, f.keys.recipient);
  return [{ account: f.id, blob: await BlobStore.idOf(sealed), size: raw.length, date: n }, sealed];
}

async function segmentFiles(dir: string): Promise<string[]> {
  try {
    return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}

Deno.test("decodeSegment reads entries back and stops at zeros or a cut-short or altered entry", async () => {
  const sealed = [new Uint8Array([1, 2, 3]), new Uint8Array(500).fill(7)];
  const headers = await Promise.all(sealed.map(async (s, i) => ({
    account: "a",
    blob: await BlobStore.idOf(s),
    size: 10 + i,
    date: i,
  })));
  const a = encodeEntry(headers[0], sealed[0]);
  const b = encodeEntry(headers[1], sealed[1]);
  const whole = new Uint8Array(a.length + b.length + 100);
  whole.set(a);
  whole.set(b, a.length);
  const read = decodeSegment(whole);
  assertEquals(read.map((e) => e.header), headers);
  assertEquals(read.map((e) => [...e.sealed]), sealed.map((s) => [...s]));
  // An append cut short, and one whose bytes changed, end the segment there.
  assertEquals(decodeSegment(whole.subarray(0, a.length + b.length - 1)).length, 1);
  const altered = whole.slice();
  altered[a.length + b.length - 5] ^= 1;
  assertEquals(decodeSegment(altered).length, 1);
  assertEquals(decodeSegment(new Uint8Array(64)).length, 0);
});

Deno.test("DeliveryJournal groups concurrent appends into one fdatasync and removes a segment once indexed and written", () =>
  withFixture(async (f) => {
    const dir = `${f.dir}/journal`;
    const journal = await DeliveryJournal.open(dir, f.kv, { idleMs: 50 });
    const items = await Promise.all(Array.from({ length: 10 }, (_, i) => sealedFor(f, i)));
    const entries = await Promise.all(items.map(([h, s]) => journal.append(h, s)));
    // The first append goes alone; the other nine wait for its sync and share the next.
    assertEquals(journal.syncs, 2);
    assertEquals(entries.map((e) => e.marker[2]), [...Array(10).keys()]);
    const [file] = await segmentFiles(dir);
    assertEquals((await Deno.stat(`${dir}/${file}`)).size, segmentBytes);
    assertEquals(decodeSegment(await Deno.readFile(`${dir}/${file}`)).length, 10);
    for (const e of entries) {
      await f.kv.set(e.marker, true);
      journal.done(e);
    }
    // Indexed, but a blob file is not written yet: the segment stays.
    await new Promise((r) => setTimeout(r, 150));
    assertEquals(await segmentFiles(dir), [file]);
    for (const e of entries) journal.written(e);
    // All indexed, written and idle: the segment and its markers go.
    const until = Date.now() + 5_000;
    while ((await segmentFiles(dir)).includes(file) && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assertEquals((await segmentFiles(dir)).filter((n) => n === file), []);
    await journal.close();
    assertEquals(await Array.fromAsync(f.kv.list({ prefix: ["journal-done"] })), []);
  }));

Deno.test("recoverJournal indexes the entries without a marker, then removes segments and markers", () =>
  withFixture(async (f) => {
    const dir = `${f.dir}/journal`;
    const journal = await DeliveryJournal.open(dir, f.kv);
    const entries: JournalEntry[] = [];
    for (let i = 0; i < 4; i++) {
      const [h, s] = await sealedFor(f, i);
      entries.push(await journal.append(h, s));
    }
    // Entries 0 and 2 were indexed before the crash; 1 and 3 were not.
    await f.kv.set(entries[0].marker, true);
    await f.kv.set(entries[2].marker, true);
    // Markers of a segment removed before a crash that kept them.
    await f.kv.set(["journal-done", "gone-00000000.jnl", 0], true);
    await journal.close(0); // leaves the segment: two entries are not indexed
    assertEquals((await segmentFiles(dir)).length, 1);

    const indexed: JournalEntry[] = [];
    const n = await recoverJournal(dir, f.kv, f.blobs, async (e) => {
      indexed.push(e);
      await f.kv.set(e.marker, true);
    });
    assertEquals(n, 2);
    assertEquals(indexed.map((e) => e.blob), [entries[1].blob, entries[3].blob]);
    assertEquals(
      indexed.map((e) => [...e.sealed]),
      [entries[1], entries[3]].map((e) => [...e.sealed]),
    );
    assertEquals(await segmentFiles(dir), []);
    assertEquals(await Array.fromAsync(f.kv.list({ prefix: ["journal-done"] })), []);
    // The indexed entries' blobs were only in memory: recovery wrote their files.
    for (const e of [entries[0], entries[2]]) {
      assertEquals([...await f.blobs.get(e.blob)], [...e.sealed]);
    }
    // Nothing left: a second recovery indexes nothing.
    assertEquals(
      await recoverJournal(dir, f.kv, f.blobs, () => Promise.reject(new Error("again"))),
      0,
    );
  }));

Deno.test("a failed journal sync refuses the append and the entry never comes back", () =>
  withFixture(async (f) => {
    const dir = `${f.dir}/journal`;
    const faults = new FsyncFaults();
    const journal = await DeliveryJournal.open(dir, f.kv, { fileSystem: faults.fileSystem() });
    const [h0, s0] = await sealedFor(f, 0);
    const first = await journal.append(h0, s0);
    faults.fileData = true;
    const [h1, s1] = await sealedFor(f, 1);
    await rejects(journal.append(h1, s1), /injected failure of fdatasync/);
    faults.clear();
    const [h2, s2] = await sealedFor(f, 2);
    const third = await journal.append(h2, s2);
    // After the failure, appends go to a new segment.
    assert(third.marker[1] !== first.marker[1]);
    await journal.close(0);
    const indexed: string[] = [];
    await recoverJournal(dir, f.kv, f.blobs, (e) => {
      indexed.push(e.blob);
      return f.kv.set(e.marker, true).then(() => {});
    });
    assertEquals(indexed.sort(), [h0.blob, h2.blob].sort());
  }));

Deno.test("deliverLocally with a journal answers before indexing, and readers see the message after indexed()", () =>
  withFixture(async (f) => {
    const registry = new AccountRegistry(f.kv, f.blobs);
    registry.journal = await DeliveryJournal.open(`${f.dir}/journal`, f.kv);
    try {
      const login = await registry.login(address, password, "127.0.0.1");
      assert("store" in login);
      const store = login.store;
      await deliverLocally(f.kv, f.blobs, address, message("journaled"), registry);
      await registry.journal.indexed(f.id);
      assertEquals(store.state.byName("INBOX")!.uids.length, 1);
      // The marker rode in the indexing commit, and no copy of the blob went through KV.
      assertEquals((await Array.fromAsync(f.kv.list({ prefix: ["journal-done"] }))).length, 1);
      assertEquals(await Array.fromAsync(f.kv.list({ prefix: ["staged"] })), []);
      const blob = store.state.byName("INBOX")!.byUid.values().next().value!.blob;
      assert(new TextDecoder().decode(await store.message(blob)).includes("journaled"));
      registry.release(store);
    } finally {
      await registry.journal.close();
      await registry.close();
    }
  }));

Deno.test("entries recovered at start become arrival records that the next unlock moves into INBOX", () =>
  withFixture(async (f) => {
    const dir = `${f.dir}/journal`;
    const journal = await DeliveryJournal.open(dir, f.kv);
    const raw = message("left in the journal");
    const sealed = await sealToRecipient(raw, f.keys.recipient);
    await journal.append({
      account: f.id,
      blob: await BlobStore.idOf(sealed),
      size: raw.length,
      date: 1,
    }, sealed);
    await journal.close(0);
    await f.restart();
    const registry = new AccountRegistry(f.kv, f.blobs);
    try {
      assertEquals(
        await recoverJournal(
          dir,
          f.kv,
          f.blobs,
          (e) => indexRecovered(f.kv, f.blobs, e),
          denoFileSystem,
        ),
        1,
      );
      const login = await registry.login(address, password, "127.0.0.1");
      assert("store" in login);
      const store = login.store;
      await store.ingestArrivals();
      const inbox = store.state.byName("INBOX")!;
      assertEquals(inbox.uids.length, 1);
      const msg = inbox.byUid.get(inbox.uids[0])!;
      assertEquals(
        new TextDecoder().decode(await store.message(msg.blob)),
        new TextDecoder().decode(raw),
      );
      registry.release(store);
    } finally {
      await registry.close();
    }
  }));
