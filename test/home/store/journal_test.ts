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
import {
  type BlobFileSystem,
  BlobStore,
  denoFileSystem,
  packKey,
} from "../../../home/store/blobs.ts";
import { StagedBlobs } from "../../../home/store/staging.ts";
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
  // Offsets name the sealed bytes in place: a pack's location records use them.
  for (const e of read) {
    assertEquals([...whole.subarray(e.offset, e.offset + e.sealed.length)], [...e.sealed]);
  }
  assertEquals(read[1].end, a.length + b.length);
  // An append cut short, and one whose bytes changed, end the segment there.
  assertEquals(decodeSegment(whole.subarray(0, a.length + b.length - 1)).length, 1);
  const altered = whole.slice();
  altered[a.length + b.length - 5] ^= 1;
  assertEquals(decodeSegment(altered).length, 1);
  assertEquals(decodeSegment(new Uint8Array(64)).length, 0);
});

Deno.test("DeliveryJournal groups concurrent appends into one fdatasync and moves a segment to the packs once indexed", () =>
  withFixture(async (f) => {
    const dir = f.blobs.journalDir;
    const journal = await DeliveryJournal.open(f.kv, f.blobs, { idleMs: 50 });
    const items = await Promise.all(Array.from({ length: 10 }, (_, i) => sealedFor(f, i)));
    const entries = await Promise.all(items.map(([h, s]) => journal.append(h, s)));
    // The first append goes alone; the other nine wait for its sync and share the next.
    assertEquals(journal.syncs, 2);
    assertEquals(entries.map((e) => e.marker[2]), [...Array(10).keys()]);
    const [file] = await segmentFiles(dir);
    assertEquals((await Deno.stat(`${dir}/${file}`)).size, segmentBytes);
    assertEquals(decodeSegment(await Deno.readFile(`${dir}/${file}`)).length, 10);
    // Each entry's location names its sealed bytes in the segment, read there before the move.
    for (const e of entries) {
      assertEquals(e.location[0], file);
      assertEquals([...(await f.blobs.readPacked(e.blob, e.location))!], [...e.sealed]);
    }
    for (const e of entries.slice(0, 9)) {
      await f.kv.set(e.marker, true);
      journal.done(e);
    }
    // One entry is not indexed yet: the segment stays in the journal.
    await new Promise((r) => setTimeout(r, 150));
    assertEquals(await segmentFiles(dir), [file]);
    await f.kv.set(entries[9].marker, true);
    journal.done(entries[9]);
    // All indexed and idle: the segment goes to the packs, cut to its used length.
    const until = Date.now() + 5_000;
    while ((await segmentFiles(dir)).includes(file) && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assertEquals((await segmentFiles(dir)).filter((n) => n === file), []);
    await journal.close();
    assertEquals(await segmentFiles(f.blobs.packDir), [file]);
    const used = entries.reduce((n, e) => n + e.sealed.length, 0);
    const size = (await Deno.stat(`${f.blobs.packDir}/${file}`)).size;
    assert(size > used && size < used + 10 * 200, `pack of ${size} bytes for ${used}`);
    assertEquals(await Array.fromAsync(f.kv.list({ prefix: ["journal-done"] })), []);
    for (const e of entries) {
      assertEquals([...(await f.blobs.readPacked(e.blob, e.location))!], [...e.sealed]);
    }
  }));

Deno.test("journal syncs run on this thread while they are fast, on the pool for a while after a slow one", () =>
  withFixture(async (f) => {
    const calls: string[] = [];
    let slowMs = 0;
    // The syncs themselves are skipped: what is checked is where they run, not the disk.
    const fileSystem: BlobFileSystem = {
      ...denoFileSystem,
      syncFile: (_file) => {
        calls.push("pool");
        return Promise.resolve();
      },
      syncFileNow: (_file) => {
        calls.push("inline");
        const until = performance.now() + slowMs;
        while (performance.now() < until) { /* a disk that takes slowMs */ }
      },
    };
    const journal = await DeliveryJournal.open(f.kv, f.blobs, { fileSystem, inlineSyncMs: 50 });
    const append = async (n: number) => {
      const [h, s] = await sealedFor(f, n);
      return await journal.append(h, s);
    };
    await append(0); // the segment's creation syncs on the pool, its first append inline
    await append(1);
    assert(journal.inlineSync);
    // One sync of 300 ms among fast ones moves the average (a fifth of each) past 50 ms.
    slowMs = 300;
    await append(2);
    assert(!journal.inlineSync);
    slowMs = 0;
    await append(3);
    await append(4);
    assertEquals(calls, ["pool", "inline", "inline", "inline", "pool", "pool"]);
    await journal.close(0);

    // inlineSyncMs 0: every sync on the pool.
    calls.length = 0;
    const pooled = await DeliveryJournal.open(f.kv, f.blobs, { fileSystem, inlineSyncMs: 0 });
    const [h, s] = await sealedFor(f, 5);
    await pooled.append(h, s);
    assertEquals(calls, ["pool", "pool"]);
    await pooled.close(0);
  }));

Deno.test("recoverJournal indexes the entries without a marker, then moves segments to the packs", () =>
  withFixture(async (f) => {
    const journal = await DeliveryJournal.open(f.kv, f.blobs);
    const entries: JournalEntry[] = [];
    for (let i = 0; i < 4; i++) {
      const [h, s] = await sealedFor(f, i);
      entries.push(await journal.append(h, s));
    }
    // Entries 0 and 2 were indexed before the crash, by a version that kept their blobs in
    // memory (no location record, no file); 1 and 3 were not indexed.
    await f.kv.set(entries[0].marker, true);
    await f.kv.set(entries[2].marker, true);
    // Markers of a segment moved before a crash that kept them.
    await f.kv.set(["journal-done", "gone-00000000.jnl", 0], true);
    await journal.close(0); // leaves the segment: two entries are not indexed
    // The journal directory of earlier versions is recovered too.
    const legacy = `${f.dir}/journal`;
    await Deno.mkdir(legacy);
    const [name] = await segmentFiles(f.blobs.journalDir);
    await Deno.rename(`${f.blobs.journalDir}/${name}`, `${legacy}/${name}`);

    const indexed: JournalEntry[] = [];
    const recover = (index: (e: JournalEntry) => Promise<void>) =>
      recoverJournal([f.blobs.journalDir, legacy], f.kv, f.blobs, index);
    const n = await recover(async (e) => {
      indexed.push(e);
      await f.kv.atomic().set(e.marker, true).set(packKey(e.blob), e.location).commit();
    });
    assertEquals(n, 2);
    assertEquals(indexed.map((e) => e.blob), [entries[1].blob, entries[3].blob]);
    assertEquals(
      indexed.map((e) => [...e.sealed]),
      [entries[1], entries[3]].map((e) => [...e.sealed]),
    );
    assertEquals(await segmentFiles(legacy), []);
    assertEquals(await segmentFiles(f.blobs.packDir), [name]);
    assertEquals(await Array.fromAsync(f.kv.list({ prefix: ["journal-done"] })), []);
    // Every blob is read from the pack, the earlier indexed ones through the records recovery set.
    const staging = StagedBlobs.for(f.kv, f.blobs);
    for (const e of entries) assertEquals([...await staging.get(e.blob)], [...e.sealed]);
    // Nothing left: a second recovery indexes nothing.
    assertEquals(await recover(() => Promise.reject(new Error("again"))), 0);
  }));

Deno.test("a failed journal sync refuses the append and the entry never comes back", () =>
  withFixture(async (f) => {
    const faults = new FsyncFaults();
    const journal = await DeliveryJournal.open(f.kv, f.blobs, { fileSystem: faults.fileSystem() });
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
    await recoverJournal([f.blobs.journalDir], f.kv, f.blobs, (e) => {
      indexed.push(e.blob);
      return f.kv.set(e.marker, true).then(() => {});
    });
    assertEquals(indexed.sort(), [h0.blob, h2.blob].sort());
  }));

Deno.test("deliverLocally with a journal answers before indexing, and readers see the message after indexed()", () =>
  withFixture(async (f) => {
    const registry = new AccountRegistry(f.kv, f.blobs);
    registry.journal = await DeliveryJournal.open(f.kv, f.blobs);
    try {
      const login = await registry.login(address, password, "127.0.0.1");
      assert("store" in login);
      const store = login.store;
      await deliverLocally(f.kv, f.blobs, address, message("journaled"), registry);
      await registry.journal.indexed(f.id);
      assertEquals(store.state.byName("INBOX")!.uids.length, 1);
      // The marker and the blob's location rode in the indexing commit; no copy of the blob
      // went through KV or to a file of its own.
      assertEquals((await Array.fromAsync(f.kv.list({ prefix: ["journal-done"] }))).length, 1);
      assertEquals(await Array.fromAsync(f.kv.list({ prefix: ["staged"] })), []);
      const blob = store.state.byName("INBOX")!.byUid.values().next().value!.blob;
      assert((await f.kv.get(packKey(blob))).versionstamp);
      assert(!(await f.blobs.has(blob)));
      assert(new TextDecoder().decode(await store.message(blob)).includes("journaled"));
      // Closed, the segment is a pack; the message reads the same from there.
      await registry.journal.close();
      assertEquals((await segmentFiles(f.blobs.packDir)).length, 1);
      const sealed = await StagedBlobs.for(f.kv, f.blobs).get(blob);
      assertEquals(await BlobStore.idOf(sealed), blob);
      registry.release(store);
    } finally {
      await registry.journal.close();
      await registry.close();
    }
  }));

Deno.test("entries recovered at start become arrival records that the next unlock moves into INBOX", () =>
  withFixture(async (f) => {
    const journal = await DeliveryJournal.open(f.kv, f.blobs);
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
          [f.blobs.journalDir],
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
