import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { DeliveryJournal, type JournalEntry } from "../../../home/store/journal.ts";
import { BlobStore, packKey } from "../../../home/store/blobs.ts";
import { compactPacks } from "../../../home/store/packs.ts";
import { StagedBlobs } from "../../../home/store/staging.ts";
import { sealToRecipient } from "../../../src/crypto/age.ts";
import { type Fixture, message, withFixture } from "./fixture.ts";

/** Journals `n` messages, indexes them (marker and location), and closes: one pack. */
async function makePack(f: Fixture, n: number, tag: string): Promise<JournalEntry[]> {
  const journal = await DeliveryJournal.open(f.kv, f.blobs);
  const entries: JournalEntry[] = [];
  for (let i = 0; i < n; i++) {
    const raw = message(`${tag} ${i}`);
    const sealed = await sealToRecipient(raw, f.keys.recipient);
    const blob = await BlobStore.idOf(sealed);
    entries.push(await journal.append({ account: f.id, blob, size: raw.length, date: i }, sealed));
  }
  for (const e of entries) {
    await f.kv.atomic().set(e.marker, true).set(packKey(e.blob), e.location).commit();
    journal.done(e);
  }
  await journal.close();
  return entries;
}

async function packFiles(f: Fixture): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(f.blobs.packDir))).map((e) => e.name).sort();
}

Deno.test("compactPacks removes packs nothing names, moves the live blobs of sparse ones to files, keeps full ones", () =>
  withFixture(async (f) => {
    const staging = StagedBlobs.for(f.kv, f.blobs);
    const dead = await makePack(f, 3, "dead");
    const sparse = await makePack(f, 4, "sparse");
    const full = await makePack(f, 2, "full");
    assertEquals((await packFiles(f)).length, 3);
    // Expunged: their records go with StagedBlobs.remove, their bytes stay until compaction.
    for (const e of [...dead, ...sparse.slice(1)]) await staging.remove(e.blob);
    assertEquals((await f.kv.get(packKey(dead[0].blob))).versionstamp, null);

    // Young packs are not rewritten, but a pack nothing names goes at once.
    assertEquals(await compactPacks(f.kv, f.blobs), { removed: 1, rewritten: 0 });
    assertEquals(await packFiles(f), [sparse[0].location[0], full[0].location[0]].sort());

    assertEquals(await compactPacks(f.kv, f.blobs, { minAgeMs: 0 }), { removed: 1, rewritten: 1 });
    assertEquals(await packFiles(f), [full[0].location[0]]);
    // The live blob of the sparse pack now has its own file and no location record.
    const moved = sparse[0];
    assertEquals((await f.kv.get(packKey(moved.blob))).versionstamp, null);
    assertEquals([...await f.blobs.get(moved.blob)], [...moved.sealed]);
    // Every live blob reads the same as before, wherever it is now.
    for (const e of [moved, ...full]) assertEquals([...await staging.get(e.blob)], [...e.sealed]);
    // Nothing more to do.
    assertEquals(await compactPacks(f.kv, f.blobs, { minAgeMs: 0 }), { removed: 0, rewritten: 0 });
  }));

Deno.test("a reader holding a location the compaction just moved finds the blob in its file", () =>
  withFixture(async (f) => {
    const [keep, ...gone] = await makePack(f, 4, "race");
    const staging = StagedBlobs.for(f.kv, f.blobs);
    for (const e of gone) await staging.remove(e.blob);
    // The location as a reader read it, before the compaction deleted it and the pack.
    const stale = keep.location;
    await compactPacks(f.kv, f.blobs, { minAgeMs: 0 });
    assertEquals(await f.blobs.readPacked(keep.blob, stale), null);
    assertEquals([...await staging.get(keep.blob)], [...keep.sealed]);
  }));

Deno.test("BlobStore.collectUnreferenced drops pack locations that no record names", () =>
  withFixture(async (f) => {
    const [named, unnamed] = await makePack(f, 2, "collect");
    await f.kv.set(["meta", f.id, named.blob, 0], new Uint8Array(1));
    assert(await f.blobs.collectUnreferenced(f.kv) >= 1);
    assert((await f.kv.get(packKey(named.blob))).versionstamp);
    assertEquals((await f.kv.get(packKey(unnamed.blob))).versionstamp, null);
    // The pack then holds one live blob of two: a compaction moves it out and removes the pack.
    assertEquals(await compactPacks(f.kv, f.blobs, { minAgeMs: 0 }), { removed: 1, rewritten: 1 });
    assertEquals([...await f.blobs.get(named.blob)], [...named.sealed]);
  }));
