/**
 * An account's blob list at a backup peer, as the home box last had it accepted
 * (docs/backup.md, "Blob lists and deltas"): 256 buckets by blob id prefix, then
 * deltas appended run by run. A run with new or expunged messages sends one small
 * delta object (its additions and removals) instead of rewriting every bucket
 * they fall in; once the deltas reach {@linkcode maxDeltas}, or a quarter of the
 * buckets' bytes, the buckets they touched are written anew and the deltas
 * dropped (as an LSM tree merges its levels).
 *
 * Home KV, per peer and account, written only once the host accepted a manifest:
 * `["backup", "lists", peer, acct]` → {@linkcode ListHead} (bucket and delta refs,
 * a checksum per bucket) and `["backup", "bucket", peer, acct, prefix, chunk]` →
 * the bucket's entries as the deltas left them, 40 bytes each. Buckets are
 * written before the head; a bucket that does not match its checksum (a crash
 * between the two) makes the next run write every bucket again.
 *
 * @example
 * ```ts
 * const prev = await loadBlobLists(kv, peer, acct);
 * const next = planBlobLists(prev, entries);
 * for (const o of next.objects) send(o);
 * // after the manifest is accepted:
 * await saveBlobLists(kv, peer, acct, next);
 * ```
 */
import { createHash } from "node:crypto";
import {
  type BlobEntry,
  encodeBlobDelta,
  encodeBlobList,
  objectIdOf,
  type ObjectRef,
} from "../sync/backup/format.ts";
import { toHex } from "../src/encoding.ts";

/** Deltas a catalog carries at most before they are folded into the buckets. */
export const maxDeltas = 32;
/** Entries per KV value of a bucket (40 bytes each, under the 64 KiB value limit). */
const entriesPerChunk = 1500;
const entryBytes = 40;
const noIndex = 0xffffffff;

export interface ListHead {
  /** Bucket prefix → its object, as last written whole. */
  buckets: Record<string, ObjectRef>;
  /** Appended since, in order. */
  deltas: ObjectRef[];
  /** Buckets a delta changed since they were written (folded in at the next compaction). */
  dirty: string[];
  /** Bucket prefix → checksum and chunk count of its entries in KV. */
  sums: Record<string, { sum: string; chunks: number }>;
}

/** What the previous accepted run left: its head and every entry, by blob id. */
export interface BlobLists {
  head: ListHead;
  entries: Map<string, BlobEntry>;
}

/** The lists for this run: objects to send, the catalog's refs, and the state to save. */
export interface BlobListPlan {
  buckets: ObjectRef[];
  deltas: ObjectRef[];
  /** New list objects (buckets written anew, the delta). */
  objects: { ref: ObjectRef; bytes: Uint8Array }[];
  head: ListHead;
  /** Buckets whose KV entries change (prefix → its entries), saved with the head. */
  changed: Map<string, BlobEntry[]>;
}

const prefixOf = (id: string) => id.slice(0, 2);

function encodeEntries(list: BlobEntry[]): Uint8Array {
  const out = new Uint8Array(list.length * entryBytes);
  const view = new DataView(out.buffer);
  const hex = (id: string, at: number) => {
    for (let j = 0; j < 16; j++) out[at + j] = parseInt(id.slice(j * 2, j * 2 + 2), 16);
  };
  list.forEach((e, i) => {
    const at = i * entryBytes;
    hex(e.id, at);
    view.setUint32(at + 16, e.size);
    if (e.index) hex(e.index.id, at + 20);
    view.setUint32(at + 36, e.index ? e.index.size : noIndex);
  });
  return out;
}

function decodeEntries(bytes: Uint8Array, into: BlobEntry[]) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = 0; at + entryBytes <= bytes.length; at += entryBytes) {
    const e: BlobEntry = { id: toHex(bytes.subarray(at, at + 16)), size: view.getUint32(at + 16) };
    const indexSize = view.getUint32(at + 36);
    if (indexSize !== noIndex) {
      e.index = { id: toHex(bytes.subarray(at + 20, at + 36)), size: indexSize };
    }
    into.push(e);
  }
}

const sorted = (list: BlobEntry[]) => list.slice().sort((a, b) => a.id < b.id ? -1 : 1);
const checksum = (bytes: Uint8Array) =>
  createHash("sha256").update(bytes).digest("hex").slice(0, 16);

/** The lists as the last accepted run left them; null when none (or not intact): write all. */
export async function loadBlobLists(
  kv: Deno.Kv,
  peer: string,
  acct: string,
): Promise<BlobLists | null> {
  const head = (await kv.get<ListHead>(["backup", "lists", peer, acct])).value;
  if (!head) return null;
  const chunks = new Map<string, Uint8Array[]>();
  for await (const e of kv.list<Uint8Array>({ prefix: ["backup", "bucket", peer, acct] })) {
    const prefix = e.key[4] as string;
    const list = chunks.get(prefix) ?? [];
    list[e.key[5] as number] = e.value;
    chunks.set(prefix, list);
  }
  const entries = new Map<string, BlobEntry>();
  for (const [prefix, { sum, chunks: n }] of Object.entries(head.sums)) {
    const parts = (chunks.get(prefix) ?? []).slice(0, n);
    if (parts.length !== n || parts.some((p) => !p)) return null;
    const bytes = new Uint8Array(parts.reduce((t, p) => t + p.length, 0));
    let off = 0;
    for (const p of parts) bytes.set(p, (off += p.length) - p.length);
    if (checksum(bytes) !== sum) return null;
    const list: BlobEntry[] = [];
    decodeEntries(bytes, list);
    for (const e of list) entries.set(e.id, e);
  }
  return { head, entries };
}

const sameEntry = (a: BlobEntry, b: BlobEntry) =>
  a.size === b.size && a.index?.id === b.index?.id && a.index?.size === b.index?.size;

function bucketObject(list: BlobEntry[]) {
  const bytes = encodeBlobList(list);
  return { ref: { id: objectIdOf(bytes), size: bytes.length }, bytes };
}

/**
 * This run's lists for an account whose blob entries are now `current`: every bucket when
 * there is no previous state, else the previous ones plus one delta (none when nothing
 * changed), folded into new buckets when the deltas have grown past their bounds.
 */
export function planBlobLists(prev: BlobLists | null, current: BlobEntry[]): BlobListPlan {
  const byPrefix = new Map<string, BlobEntry[]>();
  for (const e of current) {
    const list = byPrefix.get(prefixOf(e.id));
    if (list) list.push(e);
    else byPrefix.set(prefixOf(e.id), [e]);
  }
  const writeAll = (prefixes: Iterable<string>, head: ListHead, plan: BlobListPlan) => {
    for (const prefix of prefixes) {
      const list = sorted(byPrefix.get(prefix) ?? []);
      if (!list.length) {
        delete head.buckets[prefix];
        continue;
      }
      const o = bucketObject(list);
      head.buckets[prefix] = o.ref;
      plan.objects.push(o);
    }
    head.deltas = [];
    head.dirty = [];
  };
  const finish = (head: ListHead, plan: BlobListPlan): BlobListPlan => {
    for (const [prefix, list] of plan.changed) {
      if (!list.length) {
        delete head.sums[prefix];
        continue;
      }
      const bytes = encodeEntries(sorted(list));
      head.sums[prefix] = {
        sum: checksum(bytes),
        chunks: Math.ceil(list.length / entriesPerChunk),
      };
    }
    plan.buckets = Object.keys(head.buckets).sort().map((p) => head.buckets[p]);
    plan.deltas = head.deltas;
    plan.head = head;
    return plan;
  };
  const emptyPlan = (): BlobListPlan => ({
    buckets: [],
    deltas: [],
    objects: [],
    head: { buckets: {}, deltas: [], dirty: [], sums: {} },
    changed: new Map(),
  });
  if (!prev) {
    const plan = emptyPlan();
    const head: ListHead = { buckets: {}, deltas: [], dirty: [], sums: {} };
    writeAll(byPrefix.keys(), head, plan);
    for (const [prefix, list] of byPrefix) plan.changed.set(prefix, list);
    return finish(head, plan);
  }
  const head: ListHead = structuredClone(prev.head);
  const plan = emptyPlan();
  const added: BlobEntry[] = [];
  const removed: string[] = [];
  const touched = new Set<string>();
  const seen = new Set<string>();
  for (const e of current) {
    seen.add(e.id);
    const old = prev.entries.get(e.id);
    if (old && sameEntry(old, e)) continue;
    added.push(e);
    touched.add(prefixOf(e.id));
  }
  for (const id of prev.entries.keys()) {
    if (!seen.has(id)) {
      removed.push(id);
      touched.add(prefixOf(id));
    }
  }
  if (!touched.size) return finish(head, plan);
  for (const prefix of touched) plan.changed.set(prefix, byPrefix.get(prefix) ?? []);
  const delta = encodeBlobDelta({ added, removed });
  const deltaRef = { id: objectIdOf(delta), size: delta.length };
  const dirty = new Set([...head.dirty, ...touched]);
  const deltaBytes = head.deltas.reduce((n, d) => n + d.size, deltaRef.size);
  const bucketBytes = Object.values(head.buckets).reduce((n, b) => n + b.size, 0);
  if (head.deltas.length + 1 > maxDeltas || deltaBytes * 4 > bucketBytes) {
    writeAll(dirty, head, plan);
  } else {
    head.deltas = [...head.deltas, deltaRef];
    head.dirty = [...dirty];
    plan.objects.push({ ref: deltaRef, bytes: delta });
  }
  return finish(head, plan);
}

/** Records a plan once the host accepted the manifest naming it: buckets first, then the head. */
export async function saveBlobLists(
  kv: Deno.Kv,
  peer: string,
  acct: string,
  plan: BlobListPlan,
): Promise<void> {
  for (const [prefix, list] of plan.changed) {
    const bytes = encodeEntries(sorted(list));
    const n = Math.ceil(list.length / entriesPerChunk);
    const op = kv.atomic();
    for (let i = 0; i < n; i++) {
      op.set(
        ["backup", "bucket", peer, acct, prefix, i],
        bytes.slice(i * entriesPerChunk * entryBytes, (i + 1) * entriesPerChunk * entryBytes),
      );
    }
    await op.commit();
    // Chunks past the new count (a bucket that shrank) go too.
    for await (
      const e of kv.list({
        prefix: ["backup", "bucket", peer, acct, prefix],
        start: [
          "backup",
          "bucket",
          peer,
          acct,
          prefix,
          n,
        ],
      })
    ) await kv.delete(e.key);
  }
  await kv.set(["backup", "lists", peer, acct], plan.head);
}

/** Forgets every account's lists at a peer (the host lost what they named). */
export async function forgetBlobLists(kv: Deno.Kv, peer: string): Promise<void> {
  for (const p of ["lists", "bucket"]) {
    for await (const e of kv.list({ prefix: ["backup", p, peer] })) await kv.delete(e.key);
  }
}
