/**
 * Staged blobs: a sealed blob up to `limits.stagedBlobBytes` is first written
 * into Deno KV, as `["staged", id, n]` chunks, in the same atomic commit as the
 * record that names it (an arrival record, or the index entry of an unlocked
 * account). A delivery then costs one durable commit, shared by concurrent
 * deliveries, instead of a file fsync, a directory fsync and a commit in a
 * row (docs/store.md). The staged bytes are the age file itself, so nothing
 * in KV is readable without the account key.
 *
 * Readers also find blobs that stay in a pack (a former journal segment,
 * packs.ts) here: {@linkcode StagedBlobs.get} reads every place a blob can be.
 *
 * A spiller moves staged blobs to their files (`BlobStore.putMany`: fsync,
 * rename, one directory fsync per directory for the batch), then deletes the
 * staged keys. It runs after a quiet moment, when this process has staged
 * more than `limits.stagedSpillBytes`, at start and at shutdown. A crash
 * between the file and the delete leaves both, with the same bytes (content
 * addressed): the next spill finds the file and only deletes the keys.
 *
 * @example
 * ```ts
 * const staging = StagedBlobs.for(kv, blobs);
 * const sealed = await staging.get(blobId); // from its pack or file, or from KV if not spilled yet
 * ```
 */
import { limits } from "../../src/limits.ts";
import { log } from "../../src/log.ts";
import { blobIdSync, type BlobStore, packKey, type PackLocation } from "./blobs.ts";
import { chunkBytes, deletePrefix, joinChunks, splitChunks } from "./chunks.ts";

/** True when a sealed blob is small enough to be staged in KV with its record. */
export function stageable(sealed: Uint8Array): boolean {
  return sealed.length <= limits.stagedBlobBytes;
}

/** The KV entries that stage a sealed blob (each under Deno KV's 64 KiB value limit). */
export function stagedEntries(id: string, sealed: Uint8Array): [Deno.KvKey, Uint8Array][] {
  return splitChunks(sealed).map((chunk, i) => [["staged", id, i], chunk]);
}

/** Tuning of the spiller; tests shorten the quiet period. */
export interface SpillOptions {
  /** The spiller runs once nothing was staged for this long. */
  quietMs?: number;
  /** ... or at once when this process has staged more than this many bytes since. */
  thresholdBytes?: number;
  /** Staged bytes written to files before their keys are deleted, per round. */
  batchBytes?: number;
}

const shared = new WeakMap<Deno.Kv, WeakMap<BlobStore, StagedBlobs>>();

/** Reads, spills and removes staged blobs of one KV handle and blob store. */
export class StagedBlobs {
  readonly #kv: Deno.Kv;
  readonly #blobs: BlobStore;
  #quietMs = 1_000;
  #thresholdBytes: number = limits.stagedSpillBytes;
  #batchBytes = 8 * 1024 * 1024;
  /** Bytes staged by this process since the last spill started. */
  #stagedBytes = 0;
  #lastStaged = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running = false;
  #spilling: Promise<number> | null = null;
  #spillAgain = false;
  /** Blobs moved to files so far (tests, logs). */
  spilled = 0;

  constructor(kv: Deno.Kv, blobs: BlobStore) {
    this.#kv = kv;
    this.#blobs = blobs;
  }

  /** The staging of a KV handle and blob store, shared by every writer and reader of them. */
  static for(kv: Deno.Kv, blobs: BlobStore): StagedBlobs {
    let byBlobs = shared.get(kv);
    if (!byBlobs) shared.set(kv, byBlobs = new WeakMap());
    let staging = byBlobs.get(blobs);
    if (!staging) byBlobs.set(blobs, staging = new StagedBlobs(kv, blobs));
    return staging;
  }

  /**
   * Reads a sealed blob: from its pack, its file, or its staged copy when it has not been
   * spilled yet. The spiller (and a pack's compaction) writes the file before deleting the
   * staged keys (the pack location), so a blob missed in both places on the first look is
   * read from its file on the second.
   */
  async get(id: string): Promise<Uint8Array> {
    const at = await this.#kv.get<PackLocation>(packKey(id));
    if (at.value) {
      const packed = await this.#blobs.readPacked(id, at.value);
      if (packed) return packed;
    }
    try {
      return await this.#blobs.get(id);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return await this.readStaged(id) ?? await this.#blobs.get(id);
  }

  /** A staged blob's bytes, or null when it is not staged (whole) in KV. */
  async readStaged(id: string): Promise<Uint8Array | null> {
    const first = await this.#kv.get<Uint8Array>(["staged", id, 0]);
    if (first.value === null) return null;
    let sealed = first.value;
    if (sealed.length >= chunkBytes) {
      const parts: Uint8Array[] = [];
      for await (const e of this.#kv.list<Uint8Array>({ prefix: ["staged", id] })) {
        parts.push(e.value);
      }
      sealed = joinChunks(parts);
    }
    // Content addressed: bytes that do not hash to their id are not the blob (a staging cut short).
    return blobIdSync(sealed) === id ? sealed : null;
  }

  /**
   * True when a sealed blob should be staged: it is small, and a spiller runs in this process
   * to move it to its file. A one-shot process (`hearth deliver`) writes files directly.
   */
  shouldStage(sealed: Uint8Array): boolean {
    return this.#running && stageable(sealed);
  }

  /**
   * Deletes a blob everywhere it may be: staged in KV, packed (its bytes in the pack go at the
   * pack's next compaction) and as a file.
   */
  async remove(id: string): Promise<void> {
    await this.#kv.delete(packKey(id));
    await deletePrefix(this.#kv, ["staged", id]);
    await this.#blobs.remove(id);
  }

  /** Notes bytes just staged durably: the spiller runs after a quiet moment or past the threshold. */
  noteStaged(bytes: number) {
    this.#stagedBytes += bytes;
    this.#lastStaged = Date.now();
    if (!this.#running) return;
    if (this.#stagedBytes > this.#thresholdBytes) {
      this.#spillInBackground();
      return;
    }
    this.#timer ??= this.#armQuietTimer(this.#quietMs);
  }

  #armQuietTimer(ms: number): ReturnType<typeof setTimeout> {
    const timer = setTimeout(() => {
      this.#timer = undefined;
      if (!this.#running) return;
      const quietFor = Date.now() - this.#lastStaged;
      if (quietFor < this.#quietMs) this.#timer = this.#armQuietTimer(this.#quietMs - quietFor);
      else this.#spillInBackground();
    }, ms);
    Deno.unrefTimer(timer as unknown as number);
    return timer;
  }

  #spillInBackground() {
    this.spill().catch((e) => log.warn("blobs.spill-failed", { error: e }));
  }

  /**
   * Starts the spiller (a long-running process: the home box, `hearth import`),
   * and spills what earlier runs left staged.
   */
  start(opts: SpillOptions = {}) {
    this.#quietMs = opts.quietMs ?? this.#quietMs;
    this.#thresholdBytes = opts.thresholdBytes ?? this.#thresholdBytes;
    this.#batchBytes = opts.batchBytes ?? this.#batchBytes;
    if (this.#running) return;
    this.#running = true;
    this.#spillInBackground();
  }

  /** Stops the spiller after one last spill, so a clean shutdown leaves KV without staged blobs. */
  async stop() {
    if (!this.#running) return;
    this.#running = false;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.spill().catch((e) => log.warn("blobs.spill-failed", { error: e }));
  }

  /** Moves every staged blob to its file; resolves with how many were moved. Single flight. */
  spill(): Promise<number> {
    if (this.#spilling) {
      this.#spillAgain = true;
      return this.#spilling;
    }
    const run = (async () => {
      let n = 0;
      do {
        this.#spillAgain = false;
        this.#stagedBytes = 0;
        n += await this.#spillOnce();
      } while (this.#spillAgain);
      return n;
    })();
    this.#spilling = run;
    run.finally(() => {
      if (this.#spilling === run) this.#spilling = null;
    }).catch(() => {});
    return run;
  }

  async #spillOnce(): Promise<number> {
    const started = performance.now();
    let moved = 0;
    let batch: { id: string; sealed: Uint8Array }[] = [];
    let batchBytes = 0;
    const flush = async () => {
      const items = batch;
      batch = [];
      batchBytes = 0;
      if (!items.length) return;
      await this.#blobs.putMany(items);
      // Files first, then the keys: a blob is never in neither place.
      let tx = this.#kv.atomic();
      let mutations = 0;
      for (const { id, sealed } of items) {
        const chunks = Math.max(1, Math.ceil(sealed.length / chunkBytes));
        if (mutations + chunks > 500) {
          if (!(await tx.commit()).ok) throw new Error("staged blob delete was refused");
          tx = this.#kv.atomic();
          mutations = 0;
        }
        for (let n = 0; n < chunks; n++) tx.delete(["staged", id, n]);
        mutations += chunks;
      }
      if (!(await tx.commit()).ok) throw new Error("staged blob delete was refused");
      moved += items.length;
    };
    let current = "";
    let parts: Uint8Array[] = [];
    const take = async () => {
      if (!parts.length) return;
      const sealed = joinChunks(parts);
      parts = [];
      // A blob whose chunks do not hash to its id is a staging cut short by a crash (or one in
      // flight in several commits): garbage collection decides about it, not the spiller.
      if (blobIdSync(sealed) !== current) return;
      batch.push({ id: current, sealed });
      batchBytes += sealed.length;
      if (batchBytes >= this.#batchBytes) await flush();
    };
    for await (const e of this.#kv.list<Uint8Array>({ prefix: ["staged"] }, { batchSize: 200 })) {
      const id = e.key[1] as string;
      if (id !== current) {
        await take();
        current = id;
      }
      parts.push(e.value);
    }
    await take();
    await flush();
    if (moved) {
      this.spilled += moved;
      log.info("blobs.spilled", { count: moved, ms: Math.round(performance.now() - started) });
    }
    return moved;
  }
}
