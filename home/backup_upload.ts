/**
 * The upload pipeline of a replication run (docs/backup.md, "Uploads"): object
 * ids are offered while the account is still being read; they are checked with
 * the host (`missing`) a thousand at a time, and what it lacks is copied into a
 * reused batch buffer (blobs read from their files, 16 at a time, or from KV
 * while staged) and sent, several batches in flight. Objects built in memory
 * (index objects, units) ride along with the blobs rather than after them.
 * Nothing waits for the whole account to be listed or every blob to be stat'ed
 * before the first byte moves, and a run keeps one buffer per batch in flight.
 *
 * @example
 * ```ts
 * const up = new ObjectUploader({ client, blobs, staging });
 * up.offerBlob(id);             // read from disk if the host lacks it
 * up.offerBytes(id2, bytes);    // an object built in memory
 * await up.blobsSized();        // every offered blob's size is known (up.sizes)
 * await up.finish();            // everything offered is at the host
 * ```
 */
import { ObjectBatch } from "../sync/backup/batch.ts";
import { type BackupClient, BackupHostError } from "../sync/backup/client.ts";
import { batchBytes, batchObjects, objectIdOf } from "../sync/backup/format.ts";
import type { BlobStore } from "./store/blobs.ts";
import type { StagedBlobs } from "./store/staging.ts";

/** Progress of one replication run. */
export interface BackupProgress {
  objects: number;
  totalObjects: number;
  bytes: number;
  totalBytes: number;
  elapsedMs: number;
}

export interface UploaderOptions {
  /** The host: asked what it lacks, sent batches. */
  client: Pick<BackupClient, "missing" | "putBatch">;
  blobs: BlobStore;
  staging: StagedBlobs;
  /** Batches in flight (each with its own buffer): the host writes some while the next arrives. */
  inFlight?: number;
  signal?: AbortSignal;
  onProgress?: (p: BackupProgress) => void;
}

/** Ids per `missing` request while streaming (the host answers up to 10,000). */
const checkEvery = 1000;
/** Blob files read at once while filling a batch (one read each: `Deno.readFile`). */
const readAhead = 16;
/** Batches in flight by default: enough that the host's fsyncs overlap the reads and the transfer. */
const defaultInFlight = 4;
/** In-memory objects per batch at most, so that they travel beside blobs, not in batches of their own. */
const smallPerBatch = batchObjects / 2;
const capacity = batchBytes + 36 * batchObjects;

type Source = { kind: "blob" } | { kind: "bytes"; bytes: Uint8Array };
type Read = { id: string; bytes: Uint8Array };

export class ObjectUploader {
  readonly #o: UploaderOptions;
  readonly #started = Date.now();
  readonly #offered = new Map<string, Source>();
  #unchecked: string[] = [];
  /** Blobs the host lacks, to read. */
  #queue: string[] = [];
  /** Objects built in memory that the host lacks. */
  #small: Read[] = [];
  /** Blobs read that did not fit the batch they were read for: the next one takes them first. */
  #carry: Read[] = [];
  /** Blobs the host already holds: their sizes come from a stat. */
  #present: string[] = [];
  /** Blobs the host lacks whose size is not known yet (learnt when they are read). */
  readonly #unsized = new Set<string>();
  #checks: Promise<void> = Promise.resolve();
  #pendingChecks = 0;
  #closed = false;
  #error: unknown = null;
  #wake: (() => void)[] = [];
  readonly #workers: Promise<void>[];
  /** Sizes of the blobs offered: read (or stat'ed) so far; null when the blob is not on disk. */
  readonly sizes = new Map<string, number | null>();
  readonly progress: BackupProgress = {
    objects: 0,
    totalObjects: 0,
    bytes: 0,
    totalBytes: 0,
    elapsedMs: 0,
  };

  constructor(opts: UploaderOptions) {
    this.#o = opts;
    this.#workers = Array.from({ length: opts.inFlight ?? defaultInFlight }, () => this.#worker());
  }

  /** A blob to send if the host lacks it (its size is learnt on the way). */
  offerBlob(id: string): void {
    if (this.#offered.has(id)) return;
    this.#offered.set(id, { kind: "blob" });
    this.#unchecked.push(id);
    if (this.#unchecked.length >= checkEvery) this.#check();
  }

  /** Looks for a blob again that was on no disk (an expunge's clean-up, or a spill, racing). */
  retryBlob(id: string): void {
    this.#offered.delete(id);
    this.sizes.delete(id);
    this.#unsized.delete(id);
    this.#present = this.#present.filter((x) => x !== id);
    this.offerBlob(id);
  }

  /** An object built in memory, to send if the host lacks it. */
  offerBytes(id: string, bytes: Uint8Array): void {
    if (this.#offered.has(id)) return;
    this.#offered.set(id, { kind: "bytes", bytes });
    this.#unchecked.push(id);
    if (this.#unchecked.length >= checkEvery) this.#check();
  }

  #check() {
    const ids = this.#unchecked;
    this.#unchecked = [];
    if (!ids.length) return;
    this.#pendingChecks++;
    this.#checks = this.#checks.then(async () => {
      try {
        if (this.#error) return;
        const missing = await this.#o.client.missing(ids);
        const lacking = new Set(missing);
        for (const id of ids) {
          const src = this.#offered.get(id);
          if (src?.kind === "bytes") {
            if (lacking.has(id)) this.#small.push({ id, bytes: src.bytes });
          } else if (lacking.has(id)) {
            this.#queue.push(id);
            if (!this.sizes.has(id)) this.#unsized.add(id);
          } else {
            this.#present.push(id);
          }
        }
        this.progress.totalObjects += missing.length;
      } catch (e) {
        this.#fail(e);
      } finally {
        this.#pendingChecks--;
        this.#notify();
      }
    });
  }

  #fail(e: unknown) {
    this.#error ??= e;
    this.#notify();
  }

  #notify() {
    const wake = this.#wake;
    this.#wake = [];
    for (const w of wake) w();
  }

  #wait(): Promise<void> {
    return new Promise((r) => this.#wake.push(r));
  }

  /** More may come to the queues: offers not closed, or a check not answered. */
  #moreComing() {
    return !this.#closed || this.#pendingChecks > 0 || this.#unchecked.length > 0;
  }

  /** Something is waiting to go into a batch. */
  #waiting() {
    return this.#queue.length > 0 || this.#small.length > 0 || this.#carry.length > 0;
  }

  /** Records a blob's size (null: on no disk), so {@linkcode blobsSized} can count it. */
  #sized(id: string, size: number | null) {
    this.sizes.set(id, size);
    this.#unsized.delete(id);
  }

  async #worker() {
    const batch = new ObjectBatch(capacity);
    const views: Uint8Array[] = [];
    const held = { small: 0 };
    while (!this.#error) {
      if (this.#o.signal?.aborted) return;
      if (!this.#waiting()) {
        if (!this.#moreComing()) return;
        await this.#wait();
        continue;
      }
      try {
        batch.reset(capacity);
        views.length = 0;
        held.small = 0;
        // Fill until full; a batch under half full waits for more while the account is read.
        while (!this.#error) {
          if (!this.#waiting()) {
            if (batch.halfFull || !this.#moreComing()) break;
            await this.#wait();
            continue;
          }
          const more = await this.#fill(batch, views, held);
          // Sizes are known now: wake whoever waits for them (blobsSized).
          this.#notify();
          if (!more) break;
        }
        if (!batch.count || this.#error) continue;
        await this.#send(batch, views);
      } catch (e) {
        this.#fail(e);
      } finally {
        this.#notify();
      }
    }
  }

  /**
   * Moves waiting objects into the batch: in-memory ones (up to {@linkcode smallPerBatch}), blobs
   * read for an earlier batch, then up to `readAhead` blobs read now. False when the batch is full.
   */
  async #fill(
    batch: ObjectBatch,
    views: Uint8Array[],
    held: { small: number },
  ): Promise<boolean> {
    const put = (id: string, bytes: Uint8Array) => {
      const into = batch.reserve(id, bytes.length);
      into.set(bytes);
      views.push(into);
    };
    let taken = 0;
    let room = true;
    while (taken < this.#small.length && held.small < smallPerBatch) {
      const { id, bytes } = this.#small[taken];
      if (!(room = batch.fits(bytes.length))) break;
      put(id, bytes);
      taken++;
      held.small++;
    }
    this.#small.splice(0, taken);
    if (!room) return false;
    while (this.#carry.length) {
      if (!batch.fits(this.#carry[0].bytes.length)) return false;
      const { id, bytes } = this.#carry.shift()!;
      put(id, bytes);
    }
    const ids = this.#queue.splice(0, readAhead);
    const read = await Promise.all(ids.map((id) => this.#read(id)));
    let full = false;
    for (const r of read) {
      if (!r) continue; // gone from the disk: reported by the run, not sent
      if (full || !batch.fits(r.bytes.length)) {
        full = true;
        this.#carry.push(r);
      } else {
        put(r.id, r.bytes);
      }
    }
    return !full;
  }

  /** A blob's bytes from its file, or from KV while staged; null for a blob on no disk. */
  async #read(id: string): Promise<Read | null> {
    let bytes: Uint8Array | null;
    try {
      bytes = await Deno.readFile(this.#o.blobs.pathOf(id));
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      // Not spilled to its file yet: staged in KV.
      bytes = await this.#o.staging.get(id).catch((e) => {
        if (e instanceof Deno.errors.NotFound) return null;
        throw e;
      });
    }
    this.#sized(id, bytes?.length ?? null);
    return bytes ? { id, bytes } : null;
  }

  async #send(batch: ObjectBatch, views: Uint8Array[]) {
    await this.#o.client.putBatch(batch).catch((e) => {
      if (!(e instanceof BackupHostError) || e.status !== 400) throw e;
      const bad = batch.ids.findIndex((id, i) => objectIdOf(views[i]) !== id);
      throw bad >= 0
        ? new Error(`blob ${batch.ids[bad]} is damaged on this disk (its digest does not match)`)
        : e;
    });
    const p = this.progress;
    p.objects += batch.count;
    p.bytes += batch.objectBytes;
    p.elapsedMs = Date.now() - this.#started;
    // Bytes still to go, estimated from the average object so far.
    p.totalBytes = p.objects ? Math.round(p.bytes / p.objects * p.totalObjects) : p.bytes;
    this.#o.onProgress?.(p);
  }

  /**
   * Resolves once every blob offered so far has a size (read into a batch, or
   * stat'ed when the host already holds it); rejects with a run's failure.
   */
  async blobsSized(): Promise<void> {
    this.#check();
    while (true) {
      if (this.#error) throw this.#error;
      if (!this.#pendingChecks && !this.#unsized.size) break;
      await this.#wait();
    }
    await this.#checks;
    const present = this.#present.filter((id) => !this.sizes.has(id));
    let next = 0;
    const stat = async () => {
      while (next < present.length) {
        const id = present[next++];
        this.#sized(id, await this.#statBlob(id));
      }
    };
    await Promise.all(Array.from({ length: Math.min(16, present.length) }, stat));
    if (this.#error) throw this.#error;
  }

  async #statBlob(id: string): Promise<number | null> {
    try {
      return (await Deno.stat(this.#o.blobs.pathOf(id))).size;
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return await this.#o.staging.get(id).then((b) => b.length, (e) => {
      if (e instanceof Deno.errors.NotFound) return null;
      throw e;
    });
  }

  /** Resolves when everything offered is at the host; no more offers after this. */
  async finish(): Promise<void> {
    this.#check();
    this.#closed = true;
    this.#notify();
    await Promise.all(this.#workers);
    await this.#checks;
    if (this.#error) throw this.#error;
    if (this.#o.signal?.aborted) {
      throw new Error("stopped; the next run resumes where this one ended");
    }
  }

  /** Stops the workers after a failure elsewhere in the run. */
  async abandon(): Promise<void> {
    this.#fail(new Error("abandoned"));
    await Promise.allSettled(this.#workers);
    await this.#checks.catch(() => {});
  }
}
