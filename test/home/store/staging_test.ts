// Staged blobs (home/store/staging.ts): small sealed blobs committed to KV with their record,
// read from there until the spiller moves them to files, and collected when nothing names them.
import {
  deepStrictEqual as assertEquals,
  ok as assert,
  rejects as assertRejects,
} from "node:assert/strict";
import { AccountRegistry } from "../../../home/store/accounts.ts";
import { type BlobFileSystem, BlobStore, denoFileSystem } from "../../../home/store/blobs.ts";
import { deliverLocally } from "../../../home/store/deliver.ts";
import { StagedBlobs, stagedEntries } from "../../../home/store/staging.ts";
import { AccountStore } from "../../../home/store/account_store.ts";
import type { ArrivalRecord } from "../../../home/store/incoming.ts";
import { openSealed, sealToRecipient } from "../../../src/crypto/age.ts";
import { limits } from "../../../src/limits.ts";
import { address, faultyKv, makeFixture, message, password } from "./fixture.ts";

/** A registry whose spiller waits for an explicit spill() (or the end of the test). */
function quietRegistry(kv: Deno.Kv, blobs: BlobStore, quietMs = 60_000) {
  return new AccountRegistry(kv, blobs, { spill: { quietMs } });
}

async function stagedIds(kv: Deno.Kv): Promise<string[]> {
  const ids = new Set<string>();
  for await (const e of kv.list({ prefix: ["staged"] })) ids.add(e.key[1] as string);
  return [...ids].sort();
}

async function fileExists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

async function arrivals(kv: Deno.Kv): Promise<ArrivalRecord[]> {
  return (await Array.fromAsync(kv.list<ArrivalRecord>({ prefix: ["arrival"] }))).map((e) =>
    e.value
  );
}

Deno.test("a delivery to a locked account stages its blob in the arrival commit; spill() makes the file", async () => {
  const f = await makeFixture();
  const registry = quietRegistry(f.kv, f.blobs);
  try {
    const raw = message("staged while locked");
    await deliverLocally(f.kv, f.blobs, address, raw, registry);
    const [arrival] = await arrivals(f.kv);
    assertEquals(await stagedIds(f.kv), [arrival.blob], "staged with its arrival record");
    assert(!(await fileExists(f.blobs.pathOf(arrival.blob))), "no file before the spill");
    const staging = StagedBlobs.for(f.kv, f.blobs);
    const sealed = await staging.get(arrival.blob);
    assertEquals(await BlobStore.idOf(sealed), arrival.blob);
    assertEquals(await openSealed(sealed, f.keys.identity), raw);

    assertEquals(await staging.spill(), 1);
    assertEquals(await stagedIds(f.kv), []);
    assertEquals(await Deno.readFile(f.blobs.pathOf(arrival.blob)), sealed);
    assertEquals(await staging.get(arrival.blob), sealed);
    // The account ingests it from the file as from any blob.
    const login = await registry.login(address, password, "test");
    assert("store" in login);
    assertEquals(await login.store.ingestArrivals(), 1);
    const inbox = login.store.state.byName("INBOX")!;
    assertEquals(inbox.uids.length, 1);
    assertEquals(await login.store.message(arrival.blob), raw);
    registry.release(login.store);
  } finally {
    await registry.close();
    await f.cleanup();
  }
});

Deno.test("an unlocked account stages the blob in its index commit; message() reads it before and after the spill", async () => {
  const f = await makeFixture();
  const registry = quietRegistry(f.kv, f.blobs);
  try {
    const login = await registry.login(address, password, "test");
    assert("store" in login);
    const raws = [message("one"), message("two"), message("three")];
    await Promise.all(raws.map((raw) => deliverLocally(f.kv, f.blobs, address, raw, registry)));
    assertEquals(await arrivals(f.kv), [], "no arrival records: straight into INBOX");
    const inbox = login.store.state.byName("INBOX")!;
    const blobs = inbox.uids.map((uid) => inbox.byUid.get(uid)!.blob);
    assertEquals(blobs.length, 3);
    assertEquals(await stagedIds(f.kv), [...blobs].sort());
    for (const blob of blobs) assert(!(await fileExists(f.blobs.pathOf(blob))));
    const read = await Promise.all(blobs.map((b) => login.store.message(b)));
    assertEquals(new Set(read.map((r) => new TextDecoder().decode(r))).size, 3);
    for (const r of read) assert(raws.some((raw) => raw.length === r.length));

    assertEquals(await StagedBlobs.for(f.kv, f.blobs).spill(), 3);
    assertEquals(await stagedIds(f.kv), []);
    // A fresh store (no plaintext cache) reads the spilled files.
    const fresh = await f.open();
    for (const [i, blob] of blobs.entries()) {
      assertEquals(await fresh.message(blob), read[i]);
      assert(await fileExists(f.blobs.pathOf(blob)));
    }
    await fresh.close();
    registry.release(login.store);
  } finally {
    await registry.close();
    await f.cleanup();
  }
});

Deno.test("a blob larger than limits.stagedBlobBytes is written as a file, not staged", async () => {
  const f = await makeFixture();
  const registry = quietRegistry(f.kv, f.blobs);
  try {
    const lines = Math.ceil(limits.stagedBlobBytes / 80) + 100;
    const raw = message("large", "a".repeat(78).concat("\r\n").repeat(lines));
    await deliverLocally(f.kv, f.blobs, address, raw, registry);
    const [arrival] = await arrivals(f.kv);
    assertEquals(await stagedIds(f.kv), []);
    assert(await fileExists(f.blobs.pathOf(arrival.blob)));
  } finally {
    await registry.close();
    await f.cleanup();
  }
});

Deno.test("a blob of several KV chunks is staged, read and spilled whole", async () => {
  const f = await makeFixture();
  const registry = quietRegistry(f.kv, f.blobs);
  try {
    // About 200 KB: four chunks of a KV value each, still under the staging limit.
    const raw = message("several chunks", "z".repeat(78).concat("\r\n").repeat(2500));
    await deliverLocally(f.kv, f.blobs, address, raw, registry);
    const [arrival] = await arrivals(f.kv);
    const keys = await Array.fromAsync(f.kv.list({ prefix: ["staged", arrival.blob] }));
    assert(keys.length > 1, `${keys.length} chunk(s)`);
    const staging = StagedBlobs.for(f.kv, f.blobs);
    assertEquals(await openSealed(await staging.get(arrival.blob), f.keys.identity), raw);
    assertEquals(await staging.spill(), 1);
    assertEquals(await stagedIds(f.kv), []);
    assertEquals(
      await openSealed(await Deno.readFile(f.blobs.pathOf(arrival.blob)), f.keys.identity),
      raw,
    );
  } finally {
    await registry.close();
    await f.cleanup();
  }
});

Deno.test("the spiller runs by itself after a quiet moment", async () => {
  const f = await makeFixture();
  const registry = quietRegistry(f.kv, f.blobs, 50);
  try {
    await deliverLocally(f.kv, f.blobs, address, message("quiet"), registry);
    const [arrival] = await arrivals(f.kv);
    const until = Date.now() + 5_000;
    while ((await stagedIds(f.kv)).length && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assertEquals(await stagedIds(f.kv), []);
    assert(await fileExists(f.blobs.pathOf(arrival.blob)));
  } finally {
    await registry.close();
    await f.cleanup();
  }
});

Deno.test("closing the registry spills what is staged; without a spiller, blobs go to files", async () => {
  const f = await makeFixture();
  try {
    const registry = quietRegistry(f.kv, f.blobs);
    await deliverLocally(f.kv, f.blobs, address, message("before close"), registry);
    assertEquals((await stagedIds(f.kv)).length, 1);
    await registry.close();
    assertEquals(await stagedIds(f.kv), []);
    // A one-shot process (`hearth deliver`) has no spiller: it writes the file itself.
    await deliverLocally(f.kv, f.blobs, address, message("no registry"));
    assertEquals(await stagedIds(f.kv), []);
    for (const a of await arrivals(f.kv)) assert(await fileExists(f.blobs.pathOf(a.blob)));
  } finally {
    await f.cleanup();
  }
});

Deno.test("spill after a crash between file and delete: the file is kept, the keys go", async () => {
  const f = await makeFixture();
  try {
    const sealed = await sealToRecipient(message("crashed spill"), f.keys.recipient);
    const id = await BlobStore.idOf(sealed);
    // What a crash leaves: the staged keys and their arrival, and the file already renamed.
    const tx = f.kv.atomic().set(["arrival", f.id, 1, 0, "x"], { blob: id, size: 1, date: 1 });
    for (const [k, v] of stagedEntries(id, sealed)) tx.set(k, v);
    assert((await tx.commit()).ok);
    await f.blobs.put(sealed);
    // A staging cut short (chunks that do not hash to their id) is not spilled.
    await f.kv.set(["staged", "0".repeat(32), 0], sealed.subarray(1));
    await f.restart();
    const registry = quietRegistry(f.kv, f.blobs);
    const staging = StagedBlobs.for(f.kv, f.blobs);
    await staging.spill(); // joins the start-up spill
    assertEquals(await stagedIds(f.kv), ["0".repeat(32)]);
    assertEquals(await Deno.readFile(f.blobs.pathOf(id)), sealed);
    await assertRejects(() => staging.get("0".repeat(32)), Deno.errors.NotFound);
    await registry.close();
  } finally {
    await f.cleanup();
  }
});

Deno.test("BlobStore.collectUnreferenced() deletes staged blobs nothing names and keeps the others", async () => {
  const f = await makeFixture();
  const registry = quietRegistry(f.kv, f.blobs);
  try {
    await deliverLocally(f.kv, f.blobs, address, message("kept"), registry);
    const [arrival] = await arrivals(f.kv);
    const orphan = await sealToRecipient(message("orphan"), f.keys.recipient);
    const orphanId = await BlobStore.idOf(orphan);
    const tx = f.kv.atomic();
    for (const [k, v] of stagedEntries(orphanId, orphan)) tx.set(k, v);
    assert((await tx.commit()).ok);
    assertEquals((await stagedIds(f.kv)).length, 2);
    assertEquals(await f.blobs.collectUnreferenced(f.kv), 1);
    assertEquals(await stagedIds(f.kv), [arrival.blob]);
  } finally {
    await registry.close();
    await f.cleanup();
  }
});

Deno.test("collectOrphanedMetadata() and expunge remove staged blobs", async () => {
  const f = await makeFixture();
  const registry = quietRegistry(f.kv, f.blobs);
  try {
    const login = await registry.login(address, password, "test");
    assert("store" in login);
    const store = login.store;
    await deliverLocally(f.kv, f.blobs, address, message("to expunge"), registry);
    const inbox = store.state.byName("INBOX")!;
    const uid = inbox.uids[0];
    const blob = inbox.byUid.get(uid)!.blob;
    assertEquals(await stagedIds(f.kv), [blob]);
    await store.mutate((tx) => {
      tx.push({ op: "expunge", mb: inbox.id, uids: [uid], modseq: tx.nextModSeq() });
    });
    await store.collectUnreferenced([blob]);
    assertEquals(await stagedIds(f.kv), []);
    assertEquals(await Array.fromAsync(f.kv.list({ prefix: ["meta", f.id, blob] })), []);

    // A delivery cut short after its metadata and staged blob, before its index entry.
    const sealed = await sealToRecipient(message("never indexed"), f.keys.recipient);
    const id = await BlobStore.idOf(sealed);
    const tx = f.kv.atomic().set(["meta", f.id, id, 0], new Uint8Array(8));
    for (const [k, v] of stagedEntries(id, sealed)) tx.set(k, v);
    assert((await tx.commit()).ok);
    assertEquals(await store.collectOrphanedMetadata(), 1);
    assertEquals(await stagedIds(f.kv), []);
    registry.release(store);
  } finally {
    await registry.close();
    await f.cleanup();
  }
});

Deno.test("a delivery whose commit fails is refused and stages nothing", async () => {
  const f = await makeFixture();
  const { kv, faults } = faultyKv(f.kv);
  const registry = quietRegistry(kv, f.blobs);
  try {
    faults.commit = true;
    await assertRejects(() => deliverLocally(kv, f.blobs, address, message("lost"), registry));
    faults.commit = false;
    assertEquals(await stagedIds(f.kv), []);
    assertEquals(await arrivals(f.kv), []);
  } finally {
    await registry.close();
    await f.cleanup();
  }
});

Deno.test("BlobStore.putMany() fsyncs each directory once for the whole batch", async () => {
  const root = await Deno.makeTempDir();
  try {
    let dirSyncs = 0;
    const fs: BlobFileSystem = {
      ...denoFileSystem,
      async syncDirectory(path) {
        dirSyncs++;
        await denoFileSystem.syncDirectory(path);
      },
    };
    const blobs = new BlobStore(root, fs);
    const items = await Promise.all(Array.from({ length: 40 }, async (_, i) => {
      const sealed = new TextEncoder().encode(`sealed ${i}`);
      return { id: await BlobStore.idOf(sealed), sealed };
    }));
    await blobs.putMany(items);
    const dirs = new Set(items.map((i) => i.id.slice(0, 2)));
    assertEquals(dirSyncs, dirs.size);
    for (const { id, sealed } of items) assertEquals(await blobs.get(id), sealed);
    await blobs.putMany(items); // already there: nothing rewritten, still durable
    assertEquals(dirSyncs, 2 * dirs.size);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("APPEND's prepareMessage() leaves blob and metadata for the commit that adds the message", async () => {
  const f = await makeFixture();
  const registry = quietRegistry(f.kv, f.blobs);
  try {
    const login = await registry.login(address, password, "test");
    assert("store" in login);
    const store = login.store;
    const raw = message("appended");
    const prepared = await store.prepareMessage(raw);
    assert(prepared.pending?.length, "something left for the index commit");
    assertEquals(await stagedIds(f.kv), [], "nothing written before the commit");
    assertEquals(await Array.fromAsync(f.kv.list({ prefix: ["meta", f.id, prepared.blob] })), []);
    const inbox = store.state.byName("INBOX")!;
    await store.mutate((tx) => {
      store.commitPrepared(tx, prepared);
      tx.push({
        op: "add",
        mb: inbox.id,
        msg: AccountStore.newRecord(inbox.rec.uidNext, prepared, [], Date.now(), tx.nextModSeq()),
      });
    });
    assertEquals(await stagedIds(f.kv), [prepared.blob]);
    const fresh = await f.open();
    assertEquals(await fresh.message(prepared.blob), raw);
    assertEquals((await fresh.info(prepared.blob)).headers.subject, "appended");
    await fresh.close();
    registry.release(store);
  } finally {
    await registry.close();
    await f.cleanup();
  }
});
