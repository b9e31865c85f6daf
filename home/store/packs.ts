/**
 * Packs: journal segments whose entries are all indexed (journal.ts), kept
 * as the home of the blobs they hold, in `DATA/blobs/packs/`. A blob in a
 * pack has a KV record `["blob-pack", id]` = `[pack, offset, length]`, set in
 * the commit that indexed it, and is read from there (`StagedBlobs.get`). A
 * message delivered over SMTP thus costs one append to the journal and one
 * KV commit, both shared by concurrent deliveries, and no file of its own:
 * a file per message (create, fdatasync, rename, directory fsync) cost more
 * CPU than the rest of a delivery's storage together (docs/store.md).
 *
 * Removing a blob deletes its record; its bytes stay in the pack until
 * {@linkcode compactPacks} runs (at start and every hour): a pack no record
 * names is deleted, and one whose named blobs fill less than half of it has
 * them written to their own files first. Files before records before the
 * pack: at every step each live blob is in its pack, its file, or both.
 *
 * @example
 * ```ts
 * const { removed, rewritten } = await compactPacks(kv, blobs);
 * ```
 */
import { log } from "../../src/log.ts";
import {
  type BlobFileSystem,
  blobIdSync,
  type BlobStore,
  denoFileSystem,
  packKey,
  type PackLocation,
} from "./blobs.ts";

/** Tuning of {@linkcode compactPacks}. */
export interface CompactOptions {
  /** A pack whose live blobs fill less than this share of it is rewritten (default 0.5). */
  minLiveShare?: number;
  /** Packs younger than this are not rewritten yet: expunges come in bursts (default 1 h). */
  minAgeMs?: number;
  fileSystem?: BlobFileSystem;
}

interface Live {
  id: string;
  at: PackLocation;
  versionstamp: string;
}

/**
 * Removes packs that hold no live blob, and moves the live blobs of sparse packs to their own
 * files so that the pack can go. Safe alongside deliveries and readers (see the module's
 * documentation); run one at a time.
 */
export async function compactPacks(
  kv: Deno.Kv,
  blobs: BlobStore,
  opts: CompactOptions = {},
): Promise<{ removed: number; rewritten: number }> {
  const fs = opts.fileSystem ?? denoFileSystem;
  const minLiveShare = opts.minLiveShare ?? 0.5;
  const minAgeMs = opts.minAgeMs ?? 3_600_000;
  let names: string[];
  try {
    names = (await Array.fromAsync(Deno.readDir(blobs.packDir)))
      .filter((e) => e.isFile).map((e) => e.name);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { removed: 0, rewritten: 0 };
    throw e;
  }
  // Listed after the packs: a pack is moved here only once every record naming it is committed.
  const live = new Map<string, Live[]>();
  for await (const e of kv.list<PackLocation>({ prefix: ["blob-pack"] })) {
    const at = e.value;
    let list = live.get(at[0]);
    if (!list) live.set(at[0], list = []);
    list.push({ id: e.key[1] as string, at, versionstamp: e.versionstamp });
  }
  let removed = 0, rewritten = 0;
  for (const name of names) {
    const path = `${blobs.packDir}/${name}`;
    const items = live.get(name) ?? [];
    if (items.length) {
      const info = await Deno.stat(path);
      const liveBytes = items.reduce((n, i) => n + i.at[2], 0);
      const age = Date.now() - (info.mtime?.getTime() ?? Date.now());
      if (liveBytes >= info.size * minLiveShare || age < minAgeMs) continue;
      if (!(await moveOut(kv, blobs, path, items))) continue;
      rewritten += items.length;
    }
    await fs.remove(path);
    removed++;
  }
  if (removed) await fs.syncDirectory(blobs.packDir);
  if (removed || rewritten) log.info("blobs.packs-compacted", { removed, rewritten });
  return { removed, rewritten };
}

/**
 * Writes a pack's live blobs to their own files, then deletes their records where unchanged.
 * True when no record names the pack any more.
 */
async function moveOut(kv: Deno.Kv, blobs: BlobStore, path: string, items: Live[]) {
  const bytes = await Deno.readFile(path);
  const out: { id: string; sealed: Uint8Array }[] = [];
  for (const { id, at: [, offset, length] } of items) {
    const sealed = bytes.slice(offset, offset + length);
    if (blobIdSync(sealed) !== id) {
      // A damaged pack keeps its records: the blob is reported when read, never dropped here.
      log.error("blobs.pack-damaged", { pack: path, blob: id });
      return false;
    }
    out.push({ id, sealed });
  }
  await blobs.putMany(out);
  let all = true;
  for (const item of items) {
    // A record changed meanwhile (the blob was removed) is not this compaction's to delete.
    const res = await kv.atomic()
      .check({ key: packKey(item.id), versionstamp: item.versionstamp })
      .delete(packKey(item.id))
      .commit();
    if (!res.ok && (await kv.get(packKey(item.id))).versionstamp) all = false;
  }
  return all;
}
