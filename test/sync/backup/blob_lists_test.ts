import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import {
  type BlobEntry,
  decodeBlobDelta,
  decodeBlobList,
  decodeCatalog,
  encodeCatalog,
  resolveBlobList,
} from "../../../sync/backup/format.ts";
import {
  loadBlobLists,
  maxDeltas,
  planBlobLists,
  saveBlobLists,
} from "../../../home/backup_lists.ts";

const hex = (n: number) =>
  n.toString(16).padStart(32, "0").replace(/^../, (n % 256).toString(16).padStart(2, "0"));
const entry = (n: number, index = true): BlobEntry => ({
  id: hex(n),
  size: 1000 + n,
  ...(index ? { index: { id: hex(n + 1_000_000), size: 100 + n } } : {}),
});
const byId = (list: BlobEntry[]) => list.slice().sort((a, b) => a.id < b.id ? -1 : 1);

/** What a restore sees: the plan's buckets and deltas, decoded and resolved. */
function resolved(objects: Map<string, Uint8Array>, plan: ReturnType<typeof planBlobLists>) {
  return byId(resolveBlobList(
    plan.buckets.map((b) => decodeBlobList(objects.get(b.id)!)),
    plan.deltas.map((d) => decodeBlobDelta(objects.get(d.id)!)),
  ));
}

Deno.test("blob lists: a run appends one delta, removals included, and a restore resolves them", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const objects = new Map<string, Uint8Array>();
    const run = async (current: BlobEntry[]) => {
      const plan = planBlobLists(await loadBlobLists(kv, "p-1", "a"), current);
      for (const o of plan.objects) objects.set(o.ref.id, o.bytes);
      await saveBlobLists(kv, "p-1", "a", plan);
      assertEquals(resolved(objects, plan), byId(current));
      return plan;
    };
    let current = Array.from({ length: 2000 }, (_, i) => entry(i, i % 3 !== 0));
    const first = await run(current);
    assertEquals(first.deltas.length, 0);
    ok(first.buckets.length === 256);
    // 50 new messages, 3 expunged, one arrival indexed: one delta object, no bucket rewritten.
    current = [
      ...current.filter((e) => ![5, 6, 7].includes(Number.parseInt(e.id.slice(2), 16))),
      ...Array.from({ length: 50 }, (_, i) => entry(5000 + i)),
    ].map((e) => e.id === hex(3) ? { ...e, index: { id: hex(77), size: 7 } } : e);
    const second = await run(current);
    assertEquals(second.objects.length, 1);
    assertEquals(second.deltas.length, 1);
    assertEquals(second.buckets, first.buckets);
    const delta = decodeBlobDelta(second.objects[0].bytes);
    assertEquals(delta.removed.length, 3);
    assertEquals(delta.added.length, 51);
    // Nothing changed: no object at all.
    assertEquals((await run(current)).objects.length, 0);
    // A message expunged and the same bytes appended again: the later delta wins.
    const again = current.find((e) => e.id === hex(10))!;
    await run(current.filter((e) => e !== again));
    const back = await run(current);
    assertEquals(back.deltas.length, 3);
    // The catalog keeps the deltas' order.
    const catalog = decodeCatalog(
      encodeCatalog({ buckets: back.buckets, units: [], deltas: back.deltas }),
    );
    assertEquals(catalog.deltas, back.deltas);
  } finally {
    kv.close();
  }
});

Deno.test("blob lists: deltas are folded into the buckets once there are too many", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const objects = new Map<string, Uint8Array>();
    let current = Array.from({ length: 3000 }, (_, i) => entry(i));
    let plan = planBlobLists(null, current);
    await saveBlobLists(kv, "p-1", "a", plan);
    let folded = false;
    for (let run = 0; run < maxDeltas + 1; run++) {
      current = [...current, entry(10_000 + run)];
      plan = planBlobLists(await loadBlobLists(kv, "p-1", "a"), current);
      for (const o of plan.objects) objects.set(o.ref.id, o.bytes);
      await saveBlobLists(kv, "p-1", "a", plan);
      if (!plan.deltas.length) folded = true;
      ok(plan.deltas.length <= maxDeltas);
    }
    ok(folded);
    for (const o of planBlobLists(null, []).objects) objects.set(o.ref.id, o.bytes);
    // Every bucket the plan names is either from the first run or written at the fold.
    for (const o of planBlobLists(null, current).objects) objects.set(o.ref.id, o.bytes);
    assertEquals(resolved(objects, plan), byId(current));
  } finally {
    kv.close();
  }
});

Deno.test("blob lists: a bucket not matching its checksum makes the next run write all", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const current = Array.from({ length: 300 }, (_, i) => entry(i));
    await saveBlobLists(kv, "p-1", "a", planBlobLists(null, current));
    ok(await loadBlobLists(kv, "p-1", "a"));
    // A crash between the buckets and the head: a bucket's entries are not what the head says.
    await kv.set(["backup", "bucket", "p-1", "a", hex(0).slice(0, 2), 0], new Uint8Array(40));
    assertEquals(await loadBlobLists(kv, "p-1", "a"), null);
  } finally {
    kv.close();
  }
});
