/**
 * Values larger than one Deno KV value (64 KiB) stored as numbered chunks
 * under a key prefix, and commits split to stay under Deno KV's limits on one
 * atomic operation.
 */
import { concatBytes } from "../../src/encoding.ts";

/** Bytes per chunk: under the 64 KiB value limit with room for overhead. */
export const chunkBytes = 60_000;
/** Chunks per atomic commit: keeps one commit well under the 800 KiB mutation limit. */
export const chunksPerCommit = 10;

/** Splits bytes into chunks of {@linkcode chunkBytes}. */
export function splitChunks(data: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let off = 0; off < data.length; off += chunkBytes) {
    out.push(data.subarray(off, Math.min(data.length, off + chunkBytes)));
  }
  if (out.length === 0) out.push(new Uint8Array(0));
  return out;
}

/** Joins chunks back into one array. */
export const joinChunks: (chunks: Uint8Array[]) => Uint8Array = concatBytes;

/** Writes `[prefix..., i]` for each chunk, in as many atomic commits as the limits need. */
export async function setChunked(kv: Deno.Kv, prefix: Deno.KvKey, data: Uint8Array) {
  const chunks = splitChunks(data);
  for (let i = 0; i < chunks.length; i += chunksPerCommit) {
    const tx = kv.atomic();
    for (let j = i; j < Math.min(chunks.length, i + chunksPerCommit); j++) {
      tx.set([...prefix, j], chunks[j]);
    }
    const res = await tx.commit();
    if (!res.ok) throw new Error("KV commit failed");
  }
}

/** Writes several chunked values, packing their chunks into as few atomic commits as the limits allow. */
export async function setChunkedMany(kv: Deno.Kv, values: [Deno.KvKey, Uint8Array][]) {
  const all: [Deno.KvKey, Uint8Array][] = [];
  for (const [prefix, data] of values) {
    splitChunks(data).forEach((chunk, i) => all.push([[...prefix, i], chunk]));
  }
  for (let i = 0; i < all.length; i += chunksPerCommit) {
    const tx = kv.atomic();
    for (const [key, chunk] of all.slice(i, i + chunksPerCommit)) tx.set(key, chunk);
    const res = await tx.commit();
    if (!res.ok) throw new Error("KV commit failed");
  }
}

/**
 * Reads a chunked value; null when absent. With `count`, reads exactly chunks
 * 0..count-1 and null when one is missing.
 */
export async function getChunked(
  kv: Deno.Kv,
  prefix: Deno.KvKey,
  count?: number,
): Promise<Uint8Array | null> {
  if (!count) {
    // Most values fit in one chunk: a point read is much cheaper than a scan, and a
    // first chunk shorter than chunkBytes is the whole value (splitChunks fills all but the last).
    const first = await kv.get<Uint8Array>([...prefix, 0]);
    if (first.value === null) return null;
    if (first.value.length < chunkBytes) return first.value;
  }
  const chunks: Uint8Array[] = [];
  const selector = count ? { start: [...prefix, 0], end: [...prefix, count] } : { prefix };
  for await (const e of kv.list<Uint8Array>(selector)) chunks.push(e.value);
  if (count && chunks.length !== count) return null;
  return chunks.length ? joinChunks(chunks) : null;
}

async function deleteListed(kv: Deno.Kv, selector: Deno.KvListSelector) {
  let batch: Deno.KvKey[] = [];
  const flush = async () => {
    const tx = kv.atomic();
    for (const k of batch) tx.delete(k);
    const res = await tx.commit();
    if (!res.ok) throw new Error("KV delete commit failed");
    batch = [];
  };
  for await (const e of kv.list(selector)) {
    batch.push(e.key);
    if (batch.length >= 500) await flush();
  }
  if (batch.length) await flush();
}

/** Deletes every key under a prefix, in bounded commits. */
export async function deletePrefix(kv: Deno.Kv, prefix: Deno.KvKey) {
  await deleteListed(kv, { prefix });
}

/** Deletes every key in [start, end), in bounded commits. */
export async function deleteRange(kv: Deno.Kv, start: Deno.KvKey, end: Deno.KvKey) {
  await deleteListed(kv, { start, end });
}

/** Gzip, for search text before it is encrypted (src/compress.ts). */
export { gunzip, gzip } from "../../src/compress.ts";
