/**
 * The upload pipeline on its own (home/backup_upload.ts), against a host that
 * records what it is sent: every object the host lacks arrives once and whole,
 * batches keep their limits, blobs read for a full batch go in the next one,
 * objects built in memory travel beside blobs, and a blob on no disk is
 * reported by its size (null), not sent.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { ObjectUploader } from "../../home/backup_upload.ts";
import { BlobStore } from "../../home/store/blobs.ts";
import { StagedBlobs } from "../../home/store/staging.ts";
import type { ObjectBatch } from "../../sync/backup/batch.ts";
import {
  batchBytes,
  batchObjects,
  decodeObjectBatch,
  objectIdOf,
} from "../../sync/backup/format.ts";

/** A host holding `held`, taking batches after a short delay (so several are in flight). */
function recordingHost(held: Set<string>) {
  const batches: { id: string; bytes: Uint8Array }[][] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  return {
    batches,
    get maxInFlight() {
      return maxInFlight;
    },
    missing: (ids: string[]) => Promise.resolve(ids.filter((id) => !held.has(id))),
    async putBatch(batch: ObjectBatch) {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      // Copied now: the buffer is the uploader's, reused once this resolves.
      const items = decodeObjectBatch(batch.body().slice());
      await new Promise((r) => setTimeout(r, 5));
      inFlight--;
      batches.push(items);
      for (const i of items) held.add(i.id);
      return { stored: items.length, already: 0 };
    },
  };
}

function bytesOf(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i += 4096) out[i] = (seed * 31 + i) & 0xff;
  out[0] = seed & 0xff;
  out[size - 1] = (seed >> 8) & 0xff;
  return out;
}

Deno.test("uploader: every lacking object arrives once, whole, within the batch limits", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hearth-upload-test-" });
  const kv = await Deno.openKv(":memory:");
  try {
    const blobs = new BlobStore(`${dir}/blobs`);
    const contents = new Map<string, Uint8Array>();
    // Blobs of 300 KB fill a batch after ~28: the blobs read past that are carried to the next.
    const blobIds: string[] = [];
    for (let i = 0; i < 90; i++) {
      const bytes = bytesOf(i === 7 ? batchBytes + 1000 : 300_000 + i, i);
      const id = await blobs.put(bytes);
      blobIds.push(id);
      contents.set(id, bytes);
    }
    // One the host already has; one that is gone from the disk.
    const [heldBlob, goneBlob] = [blobIds[3], blobIds[4]];
    await blobs.remove(goneBlob);
    const small: string[] = [];
    for (let i = 0; i < 3000; i++) {
      const bytes = new TextEncoder().encode(`index object ${i}`);
      small.push(objectIdOf(bytes));
      contents.set(objectIdOf(bytes), bytes);
    }
    const host = recordingHost(new Set([heldBlob]));
    const up = new ObjectUploader({ client: host, blobs, staging: StagedBlobs.for(kv, blobs) });
    for (const id of blobIds.slice(0, 45)) up.offerBlob(id);
    small.forEach((id) => up.offerBytes(id, contents.get(id)!));
    for (const id of blobIds.slice(45)) up.offerBlob(id);
    await up.blobsSized();
    assertEquals(up.sizes.get(goneBlob), null);
    assertEquals(up.sizes.get(heldBlob), contents.get(heldBlob)!.length);
    assertEquals(up.sizes.get(blobIds[7]), batchBytes + 1000);
    await up.finish();

    const sent = host.batches.flat();
    const expected = [...contents.keys()].filter((id) => id !== heldBlob && id !== goneBlob);
    assertEquals(sent.length, expected.length, "each object once");
    assertEquals(new Set(sent.map((i) => i.id)).size, sent.length);
    for (const { id, bytes } of sent) assertEquals(bytes, contents.get(id), `bytes of ${id}`);
    for (const b of host.batches) {
      assert(b.length <= batchObjects);
      // The framing (36 bytes an object) comes on top of the bytes: one buffer per batch in flight.
      const framed = b.reduce((n, i) => n + 36 + i.bytes.length, 0);
      assert(
        b.length === 1 || framed <= batchBytes + 36 * batchObjects,
        `a batch of ${framed} bytes`,
      );
    }
    // The objects built in memory went along with blobs, not all in batches of their own.
    const isSmall = new Set(small);
    for (const b of host.batches) {
      assert(b.filter((i) => isSmall.has(i.id)).length <= batchObjects / 2);
    }
    assert(
      host.batches.some((b) =>
        b.some((i) => isSmall.has(i.id)) && b.some((i) => !isSmall.has(i.id))
      ),
    );
    assert(host.maxInFlight > 1, "batches overlap");
    assertEquals(up.progress.objects, expected.length);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});
