import {
  deepStrictEqual as assertEquals,
  ok as assert,
  rejects as assertRejects,
} from "node:assert/strict";
import { type BlobFileSystem, BlobStore, denoFileSystem } from "../../../home/store/blobs.ts";

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...await listFiles(path));
    else out.push(path);
  }
  return out.sort();
}

/** The real file system, counting calls and failing on demand. */
function faultyFileSystem() {
  const calls = { writeDurably: 0, syncDirectory: 0 };
  const faults = { fsync: false };
  const fs: BlobFileSystem = {
    ...denoFileSystem,
    async writeDurably(path, data) {
      calls.writeDurably++;
      if (!faults.fsync) return await denoFileSystem.writeDurably(path, data);
      // Bytes reach the temporary file, then fsync fails (EIO).
      await Deno.writeFile(path, data.subarray(0, data.length >> 1));
      throw new Error("fsync: input/output error");
    },
    async syncDirectory(path) {
      calls.syncDirectory++;
      await denoFileSystem.syncDirectory(path);
    },
  };
  return { fs, calls, faults };
}

Deno.test("BlobStore.put() is idempotent and content addressed", async () => {
  const root = await Deno.makeTempDir();
  try {
    const blobs = new BlobStore(root);
    const data = new TextEncoder().encode("sealed bytes");
    const id = await blobs.put(data);
    assertEquals(id, await BlobStore.idOf(data));
    assert(/^[0-9a-f]{32}$/.test(id));
    assertEquals(await blobs.put(data), id);
    assertEquals(await blobs.get(id), data);
    assertEquals(await listFiles(root), [blobs.pathOf(id)]);
    await blobs.remove(id);
    await blobs.remove(id); // removing twice is harmless
    await assertRejects(() => blobs.get(id), Deno.errors.NotFound);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("BlobStore.pathOf() refuses ids that are not blob ids", () => {
  const blobs = new BlobStore("/nonexistent");
  for (const bad of ["../etc/passwd", "ABCDEF", "", "0".repeat(31), "0".repeat(32) + "/x"]) {
    let threw = false;
    try {
      blobs.pathOf(bad);
    } catch (e) {
      threw = e instanceof RangeError;
    }
    assert(threw, bad);
  }
});

Deno.test("BlobStore.put() rejects when fsync fails and leaves no visible blob", async () => {
  const root = await Deno.makeTempDir();
  try {
    const { fs, faults } = faultyFileSystem();
    const blobs = new BlobStore(root, fs);
    faults.fsync = true;
    const data = new TextEncoder().encode("never durable");
    await assertRejects(() => blobs.put(data), /fsync/);
    const id = await BlobStore.idOf(data);
    await assertRejects(() => blobs.get(id), Deno.errors.NotFound);
    // Not even the temporary is left.
    assertEquals(await listFiles(root), []);
    // The next put, with fsync working again, succeeds.
    faults.fsync = false;
    assertEquals(await blobs.put(data), id);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("BlobStore.collectTemporaries() removes what a crash left in tmp/", async () => {
  const root = await Deno.makeTempDir();
  try {
    const blobs = new BlobStore(root);
    const id = await blobs.put(new Uint8Array([1, 2, 3]));
    // A crash between write and rename leaves a temporary file behind.
    await Deno.writeFile(`${root}/tmp/${"a".repeat(32)}.crashed`, new Uint8Array(10));
    await Deno.writeFile(`${root}/tmp/${"b".repeat(32)}.crashed`, new Uint8Array(0));
    assertEquals(await blobs.collectTemporaries(), 2);
    assertEquals(await listFiles(root), [blobs.pathOf(id)]);
    assertEquals(await blobs.collectTemporaries(), 0);
    assertEquals(await new BlobStore(`${root}/missing`).collectTemporaries(), 0);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("BlobStore.put() shares directory fsyncs between concurrent writers", async () => {
  const root = await Deno.makeTempDir();
  try {
    const { fs, calls } = faultyFileSystem();
    const blobs = new BlobStore(root, fs);
    // 200 blobs over at most 256 shard directories: without sharing there would be 200 syncs.
    const data = Array.from({ length: 200 }, (_, i) => new TextEncoder().encode(`blob ${i % 100}`));
    const ids = await Promise.all(data.map((d) => blobs.put(d)));
    assertEquals(new Set(ids).size, 100);
    for (let i = 0; i < 100; i++) assertEquals(await blobs.get(ids[i]), data[i]);
    assertEquals(calls.writeDurably, 200);
    assert(calls.syncDirectory < 200, `${calls.syncDirectory} directory syncs`);
    assertEquals((await listFiles(root)).length, 100);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
