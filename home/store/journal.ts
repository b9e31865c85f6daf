/**
 * The delivery journal: where a small message delivered over SMTP becomes
 * durable before its `250`. The sealed message and its arrival facts are
 * appended to a preallocated segment file and `fdatasync`ed (one sync for
 * every delivery that arrived meanwhile, as a group commit); indexing it into
 * the account (metadata, the INBOX entry, the KV commit) is done after the
 * reply, off the client's path. Postfix answers the same way: its `250`
 * follows the fsync of its queue file, and delivery to the mailbox comes
 * after (docs/store.md, "The delivery journal").
 *
 * Each entry is folded into KV by a commit that also sets its marker,
 * `["journal-done", segment, index]`, so an entry is indexed exactly once,
 * and the blob's location, `["blob-pack", id]`: the sealed bytes stay where
 * the journal wrote them. At start, {@linkcode recoverJournal} indexes every
 * entry without a marker (as an arrival record, like mail for a locked
 * account). A segment whose entries are all indexed is cut to its used
 * length and moved to the packs (`DATA/blobs/packs`, packs.ts); only once
 * the move is durable are its markers deleted.
 *
 * An entry holds what an arrival record holds (account id, blob id, size,
 * date) and the age file: nothing readable of the message.
 *
 * Entry layout: magic `HJ01`, header length and sealed length (u32, big
 * endian), the header as JSON, the sealed bytes. An entry is valid when its
 * sealed bytes hash to its blob id; reading a segment stops at the first
 * invalid entry (the zeros after the last append, or an append that was cut
 * short: it never had its `250`).
 *
 * @example
 * ```ts
 * const journal = await DeliveryJournal.open(`${dataDir}/journal`);
 * const entry = await journal.append({ account, blob, size, date }, sealed); // durable now
 * // … index it with a commit that sets entry.marker, then:
 * journal.done(entry);
 * ```
 */
import { concatBytes, toHex } from "../../src/encoding.ts";
import { limits } from "../../src/limits.ts";
import { log } from "../../src/log.ts";
import {
  type BlobFileSystem,
  blobIdSync,
  type BlobStore,
  denoFileSystem,
  packKey,
  type PackLocation,
  packNamePattern,
} from "./blobs.ts";
import { deletePrefix } from "./chunks.ts";

/** What the journal records of a delivery beside its sealed bytes. */
export interface JournalHeader {
  /** The account's id. */
  account: string;
  /** The sealed blob's id (its content hash: the entry's checksum). */
  blob: string;
  /** Plaintext size in bytes. */
  size: number;
  /** Arrival time (ms): the message's internal date. */
  date: number;
}

/** A durable journal entry. */
export interface JournalEntry extends JournalHeader {
  sealed: Uint8Array;
  /** Set this key in the commit that indexes the entry. */
  marker: Deno.KvKey;
  /** Where the sealed bytes are: set as the blob's `packKey` in that same commit. */
  location: PackLocation;
}

const magic = [0x48, 0x4a, 0x30, 0x31]; // "HJ01"
const prefixBytes = 12;
/** Preallocated size of a segment: overwriting zeros needs no size change at each fdatasync. */
export const segmentBytes = 4 * 1024 * 1024;
const markerPrefix = "journal-done";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Encodes one entry. */
export function encodeEntry(header: JournalHeader, sealed: Uint8Array): Uint8Array {
  const json = encoder.encode(JSON.stringify(header));
  const out = new Uint8Array(prefixBytes + json.length + sealed.length);
  out.set(magic, 0);
  const view = new DataView(out.buffer);
  view.setUint32(4, json.length);
  view.setUint32(8, sealed.length);
  out.set(json, prefixBytes);
  out.set(sealed, prefixBytes + json.length);
  return out;
}

/** A valid entry of a segment, with the offset of its sealed bytes and the end of the entry. */
export interface DecodedEntry {
  header: JournalHeader;
  sealed: Uint8Array;
  offset: number;
  end: number;
}

/** The valid entries at the start of a segment's bytes, in order. */
export function decodeSegment(bytes: Uint8Array): DecodedEntry[] {
  const out: DecodedEntry[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  while (at + prefixBytes <= bytes.length) {
    if (magic.some((b, i) => bytes[at + i] !== b)) break;
    const jsonLength = view.getUint32(at + 4);
    const sealedLength = view.getUint32(at + 8);
    const end = at + prefixBytes + jsonLength + sealedLength;
    if (end > bytes.length) break;
    let header: JournalHeader;
    try {
      header = JSON.parse(
        decoder.decode(bytes.subarray(at + prefixBytes, at + prefixBytes + jsonLength)),
      );
    } catch {
      break;
    }
    const sealed = bytes.slice(at + prefixBytes + jsonLength, end);
    if (typeof header?.blob !== "string" || blobIdSync(sealed) !== header.blob) break;
    out.push({ header, sealed, offset: at + prefixBytes + jsonLength, end });
    at = end;
  }
  return out;
}

interface Segment {
  name: string;
  path: string;
  file: Deno.FsFile;
  /** Bytes written so far. */
  used: number;
  /** Entries appended, and entries indexed. */
  entries: number;
  done: number;
  /** No more appends go here (full, idle, or a failed sync). */
  closed: boolean;
}

/** One entry's indexing: the attempt under way, or the pause before the next. */
interface Indexing {
  current: Promise<boolean> | null;
  /** Settles when the next attempt does (while paused). */
  next: PromiseWithResolvers<void> | null;
  /** Ends the pause at once. */
  wake: (() => void) | null;
}

/** An indexing turn that entries wait for, and the timer that starts it. */
interface Turn {
  started: PromiseWithResolvers<void>;
  timer?: ReturnType<typeof setTimeout>;
}

function finished(segment: Segment): boolean {
  return segment.done >= segment.entries;
}

interface Queued {
  header: JournalHeader;
  sealed: Uint8Array;
  bytes: Uint8Array;
  resolve: (e: JournalEntry) => void;
  reject: (e: unknown) => void;
}

/** Options of {@linkcode DeliveryJournal.open}. */
export interface JournalOptions {
  /** The file system's sync steps (fault injection: fsync_faults.ts). */
  fileSystem?: BlobFileSystem;
  /** A segment whose entries are all indexed is closed after this long without appends. */
  idleMs?: number;
  /**
   * Indexing turns start at most this often (default 100 ms): an entry after a quiet moment is
   * indexed at once, and those that follow share the next turn, in one or two KV commits instead
   * of one each. A reader, a backlog past its bound or a close starts the turn at once.
   */
  indexDelayMs?: number;
  /**
   * An append's fdatasync runs on this thread while recent syncs average at most this long
   * (default 10 ms; 0: always on the blocking pool). See {@linkcode DeliveryJournal.inlineSync}.
   */
  inlineSyncMs?: number;
}

/** After inline syncs slower than the bound, syncs go to the blocking pool for this long. */
const inlineBackoffMs = 10_000;

/** Appends deliveries durably; see the module's documentation. */
export class DeliveryJournal {
  readonly dir: string;
  readonly #packDir: string;
  readonly #kv: Deno.Kv;
  readonly #fs: BlobFileSystem;
  readonly #idleMs: number;
  readonly #indexDelayMs: number;
  readonly #inlineSyncMs: number;
  /** Inline syncs resume at this time (performance.now()) after slow ones. */
  #inlineAfter = 0;
  /** The recent inline syncs' time, ms: an exponential moving average. */
  #inlineMs = 0;
  /** The indexing turn entries wait for, its timer, and when the last one started. */
  #turn: Turn | null = null;
  #lastTurn = -Infinity;
  #active: Segment | null = null;
  #spare: Promise<Segment> | null = null;
  readonly #segments = new Map<string, Segment>();
  readonly #removals = new Set<Promise<void>>();
  #queue: Queued[] = [];
  #running: Promise<void> | null = null;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  /** Indexing under way, per account: readers wait for it (read your own delivery). */
  readonly #pending = new Map<string, Set<Indexing>>();
  /** Bytes appended and not yet indexed (the caller waits for indexing past a bound). */
  backlogBytes = 0;
  /**
   * False after an indexing attempt failed, until one succeeds: deliveries then index before
   * their reply instead (a failing disk is answered with 451/452, as without the journal).
   */
  healthy = true;
  /** fdatasyncs made (tests check that appends were grouped). */
  syncs = 0;

  private constructor(blobs: BlobStore, kv: Deno.Kv, opts: JournalOptions) {
    this.dir = blobs.journalDir;
    this.#packDir = blobs.packDir;
    this.#kv = kv;
    this.#fs = opts.fileSystem ?? denoFileSystem;
    this.#idleMs = opts.idleMs ?? 2_000;
    this.#indexDelayMs = opts.indexDelayMs ?? 100;
    this.#inlineSyncMs = opts.inlineSyncMs ?? 10;
  }

  /**
   * True when the next append's fdatasync runs on this thread. On a fast disk it does: the hop
   * to the blocking pool and back (two thread wake-ups, each tens of microseconds on a virtual
   * machine, more when this thread is busy as the sync ends) cost as much as the sync itself,
   * and it was the largest part of a one-session delivery (docs/store.md, "Inline syncs").
   * Appends that arrive meanwhile wait in their sockets and share the next sync, so busier
   * loads still group their syncs. When the recent syncs average more than `inlineSyncMs` (a
   * slow or failing disk; one slow sync among fast ones does not count for much), they go to
   * the pool for `inlineBackoffMs`, then this thread tries again.
   */
  get inlineSync(): boolean {
    return this.#inlineSyncMs > 0 && performance.now() >= this.#inlineAfter;
  }

  /**
   * Opens the blob store's journal directory for appends. Recover what an earlier run left
   * first ({@linkcode recoverJournal}): new segments never share a name with old ones.
   */
  static async open(
    kv: Deno.Kv,
    blobs: BlobStore,
    opts: JournalOptions = {},
  ): Promise<DeliveryJournal> {
    await Deno.mkdir(blobs.journalDir, { recursive: true, mode: 0o700 });
    await Deno.mkdir(blobs.packDir, { recursive: true, mode: 0o700 });
    return new DeliveryJournal(blobs, kv, opts);
  }

  /** True once {@linkcode close} was called: nothing more is appended. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Appends a delivery; resolves once it is durable (the `250` may go out), with the marker
   * the indexing commit must set. Rejects when the write or its sync failed: nothing was
   * promised, and the entry will not be indexed by this process.
   */
  append(header: JournalHeader, sealed: Uint8Array): Promise<JournalEntry> {
    if (this.#closed) return Promise.reject(new Error("the delivery journal is closed"));
    return new Promise((resolve, reject) => {
      this.#queue.push({ header, sealed, bytes: encodeEntry(header, sealed), resolve, reject });
      this.#running ??= this.#drain().finally(() => this.#running = null);
    });
  }

  /**
   * Indexes an entry with `run` (which must set `entry.marker` in its commit), again after a
   * pause while it fails: the entry is durable here meanwhile, and a box that stops first leaves
   * it for the next start. Resolves once indexed, or once the journal is closed.
   */
  index(entry: JournalEntry, run: () => Promise<void>): Promise<void> {
    const item: Indexing = { current: null, next: null, wake: null };
    let items = this.#pending.get(entry.account);
    if (!items) this.#pending.set(entry.account, items = new Set());
    items.add(item);
    this.backlogBytes += entry.sealed.length;
    // The caller waits for its indexing past the bound (deliver.ts): no turn to wait for then.
    if (this.backlogBytes > limits.journalBacklogBytes) this.#startTurn();
    const loop = async () => {
      // The first attempt waits for the indexing turn: the caller's reply (the 250) goes out
      // before the indexing's CPU work, and the entries of a turn share their commits. A reader
      // waits on `next`.
      item.next = Promise.withResolvers<void>();
      await this.#nextTurn();
      for (let attempt = 0;; attempt++) {
        item.current = run().then(() => true, (e) => {
          log.warn("journal.index-failed", { account: entry.account, attempt, error: e });
          return false;
        });
        const ok = await item.current;
        item.current = null;
        item.next?.resolve();
        if (ok) {
          this.healthy = true;
          this.done(entry);
          return;
        }
        this.healthy = false;
        if (this.#closed) return;
        item.next = Promise.withResolvers<void>();
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.min(30_000, 200 * 2 ** attempt));
          item.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        item.wake = null;
        if (this.#closed) return;
      }
    };
    return loop().finally(() => {
      item.next?.resolve();
      items.delete(item);
      if (!items.size && this.#pending.get(entry.account) === items) {
        this.#pending.delete(entry.account);
      }
      this.backlogBytes -= entry.sealed.length;
    });
  }

  /**
   * Waits until the deliveries acknowledged so far for an account are indexed, or their next
   * attempt failed (one waiting for a retry is tried at once): a reader sees its mail, and is
   * never held up by a disk that keeps failing.
   */
  async indexed(account: string): Promise<void> {
    const items = this.#pending.get(account);
    if (!items?.size) return;
    this.#startTurn();
    await Promise.all([...items].map((item) => {
      if (item.current) return item.current;
      const next = item.next?.promise;
      item.wake?.();
      return next;
    }));
  }

  /**
   * Resolves when the current indexing turn starts. One is made if none waits: at once after a
   * quiet moment (in the next turn of the event loop, after the caller's reply is written),
   * else `indexDelayMs` after the last one started.
   */
  #nextTurn(): Promise<void> {
    if (!this.#turn) {
      const turn: Turn = { started: Promise.withResolvers<void>() };
      this.#turn = turn;
      const start = () => {
        if (this.#turn === turn) this.#startTurn();
      };
      const wait = this.#lastTurn + this.#indexDelayMs - performance.now();
      if (wait <= 0) setImmediate(start);
      else turn.timer = setTimeout(start, wait);
    }
    return this.#turn.started.promise;
  }

  /** Starts the indexing turn that entries wait for, if one does. */
  #startTurn() {
    const turn = this.#turn;
    if (!turn) return;
    this.#turn = null;
    this.#lastTurn = performance.now();
    clearTimeout(turn.timer);
    turn.started.resolve();
  }

  /** Retries every entry waiting for a retry now (KV answered again). */
  retryNow() {
    for (const items of this.#pending.values()) for (const item of items) item.wake?.();
  }

  /** Notes an entry as indexed (its marker committed): a closed segment all indexed goes. */
  done(entry: JournalEntry) {
    const segment = this.#segments.get(entry.marker[1] as string);
    if (!segment) return;
    segment.done++;
    if (segment.closed) this.#retireIfDone(segment);
    else if (segment === this.#active && finished(segment)) this.#armIdle();
  }

  /**
   * Stops appending, waits up to `waitMs` for indexing under way, and moves the segments that
   * are all indexed to the packs. Entries not indexed stay for the next start's
   * {@linkcode recoverJournal}.
   */
  async close(waitMs = 10_000) {
    this.#closed = true;
    clearTimeout(this.#idleTimer);
    await this.#running;
    const all = [...this.#pending.values()].flatMap((s) => [...s]);
    // Waiting ones start, paused ones stop; attempts get `waitMs` to finish.
    this.#startTurn();
    for (const item of all) item.wake?.();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.allSettled(all.map((i) => i.current ?? i.next?.promise)),
      new Promise((r) => timer = setTimeout(r, waitMs)),
    ]);
    clearTimeout(timer);
    const spare = await this.#spare?.catch(() => null);
    this.#spare = null;
    if (spare) await this.#discard(spare);
    for (const segment of [...this.#segments.values()]) {
      segment.closed = true;
      await this.#retireIfDone(segment);
      closeQuietly(segment.file);
    }
    this.#active = null;
    await Promise.all([...this.#removals]);
  }

  async #drain() {
    while (this.#queue.length) {
      const batch = this.#take();
      try {
        await this.#write(batch);
      } catch (e) {
        for (const q of batch) q.reject(e);
      }
    }
  }

  /** An append's fdatasync: on this thread or on the pool (see {@linkcode inlineSync}). */
  async #sync(file: Deno.FsFile) {
    if (!this.inlineSync) return await this.#fs.syncFile(file);
    const started = performance.now();
    try {
      this.#fs.syncFileNow(file);
    } finally {
      const took = performance.now() - started;
      this.#inlineMs += (took - this.#inlineMs) * 0.2;
      if (this.#inlineMs > this.#inlineSyncMs) {
        log.info("journal.slow-syncs", { ms: Math.round(this.#inlineMs * 10) / 10 });
        this.#inlineAfter = performance.now() + inlineBackoffMs;
        this.#inlineMs = this.#inlineSyncMs / 2;
      }
    }
  }

  /** The queued appends that fit in one segment. */
  #take(): Queued[] {
    let bytes = 0;
    let n = 0;
    for (const q of this.#queue) {
      if (n > 0 && bytes + q.bytes.length > segmentBytes) break;
      bytes += q.bytes.length;
      n++;
    }
    return this.#queue.splice(0, n);
  }

  async #write(batch: Queued[]) {
    const bytes = batch.reduce((n, q) => n + q.bytes.length, 0);
    let segment = this.#active;
    if (!segment || segment.closed || segment.used + bytes > segmentBytes) {
      if (segment) this.#closeSegment(segment);
      segment = this.#active = await this.#nextSegment(Math.max(segmentBytes, bytes));
    }
    clearTimeout(this.#idleTimer);
    const data = batch.length === 1 ? batch[0].bytes : concatBytes(batch.map((q) => q.bytes));
    const start = segment.used;
    try {
      // The file's position is the end of the last append. Writing into the page cache is quick
      // (a message is a few KB): done synchronously, only the fdatasync goes to a thread.
      let off = 0;
      while (off < data.length) off += segment.file.writeSync(data.subarray(off));
      segment.used += data.length;
      await this.#sync(segment.file);
      this.syncs++;
    } catch (e) {
      // The bytes may or may not be on disk: none of these appends was promised, so none may
      // come back at the next start. Zeros over them (recovery stops there), and no more
      // appends to this segment.
      try {
        await segment.file.seek(start, Deno.SeekMode.Start);
        await segment.file.write(new Uint8Array(data.length));
      } catch (e2) {
        log.warn("journal.unwrite-failed", { segment: segment.name, error: e2 });
      }
      this.#closeSegment(segment);
      throw e;
    }
    // Half full: the next segment is made in the background, before it is needed.
    if (segment.used > segmentBytes / 2) this.#spare ??= this.#create(segmentBytes);
    let at = start;
    for (const q of batch) {
      const offset = at + q.bytes.length - q.sealed.length;
      at += q.bytes.length;
      const entry: JournalEntry = {
        ...q.header,
        sealed: q.sealed,
        marker: [markerPrefix, segment.name, segment.entries++],
        location: [segment.name, offset, q.sealed.length],
      };
      q.resolve(entry);
    }
  }

  async #nextSegment(size: number): Promise<Segment> {
    const spare = this.#spare;
    this.#spare = null;
    if (spare && size <= segmentBytes) {
      try {
        return await spare;
      } catch {
        // Made again below; its own error is the one the caller sees.
      }
    }
    return await this.#create(size);
  }

  /** A new segment, zero-filled to its size, durable with its directory entry. */
  async #create(size: number): Promise<Segment> {
    const rand = crypto.getRandomValues(new Uint8Array(4));
    const name = `${Date.now().toString(36)}-${toHex(rand)}.jnl`;
    const path = `${this.dir}/${name}`;
    const file = await Deno.open(path, { read: true, write: true, createNew: true, mode: 0o600 });
    try {
      const zeros = new Uint8Array(256 * 1024);
      for (let off = 0; off < size; off += zeros.length) {
        await file.write(zeros.subarray(0, Math.min(zeros.length, size - off)));
      }
      await this.#fs.syncFile(file);
      await this.#fs.syncDirectory(this.dir);
      await file.seek(0, Deno.SeekMode.Start);
    } catch (e) {
      file.close();
      await Deno.remove(path).catch(() => {});
      throw e;
    }
    const segment: Segment = {
      name,
      path,
      file,
      used: 0,
      entries: 0,
      done: 0,
      closed: false,
    };
    this.#segments.set(name, segment);
    return segment;
  }

  #closeSegment(segment: Segment) {
    segment.closed = true;
    if (this.#active === segment) this.#active = null;
    this.#retireIfDone(segment);
  }

  #armIdle() {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => {
      const active = this.#active;
      if (active && !this.#queue.length && finished(active) && active.entries) {
        this.#closeSegment(active);
      }
    }, this.#idleMs);
  }

  /** Moves a closed segment whose entries are all indexed to the packs (an empty one goes). */
  #retireIfDone(segment: Segment): Promise<void> {
    if (!segment.closed || !finished(segment)) return Promise.resolve();
    if (!this.#segments.delete(segment.name)) return Promise.resolve();
    const removal = (async () => {
      try {
        if (segment.entries === 0) {
          await this.#fs.remove(segment.path);
          return;
        }
        await retireSegment(this.#kv, this.#fs, segment.file, {
          dir: this.dir,
          packDir: this.#packDir,
          name: segment.name,
          used: segment.used,
        });
      } catch (e) {
        // Left for the next start, which finds every entry marked and moves it then.
        log.warn("journal.retire-failed", { segment: segment.name, error: e });
      } finally {
        closeQuietly(segment.file);
      }
    })();
    this.#removals.add(removal);
    removal.finally(() => this.#removals.delete(removal));
    return removal;
  }

  async #discard(segment: Segment) {
    this.#segments.delete(segment.name);
    segment.file.close();
    await Deno.remove(segment.path).catch(() => {});
  }
}

/**
 * Moves a segment whose entries are all indexed to the packs: cut to its used length (a
 * segment is preallocated) and synced, renamed, both directories synced, and only then its
 * markers deleted. The other order could leave the file in the journal after a crash with its
 * markers gone, and index its entries twice.
 */
async function retireSegment(
  kv: Deno.Kv,
  fs: BlobFileSystem,
  file: Deno.FsFile,
  at: { dir: string; packDir: string; name: string; used: number },
) {
  await file.truncate(at.used);
  await fs.syncFile(file);
  await fs.rename(`${at.dir}/${at.name}`, `${at.packDir}/${at.name}`);
  await fs.syncDirectory(at.packDir);
  await fs.syncDirectory(at.dir);
  await deleteMarkers(kv, at.name);
}

function deleteMarkers(kv: Deno.Kv, name: string) {
  return deletePrefix(kv, [markerPrefix, name]);
}

/**
 * Indexes what an earlier run left in the journal directories `dirs` (the blob store's, and
 * an older layout's `DATA/journal`): every entry without a marker is handed to `index` (which
 * must set `entry.marker` and the blob's location in its commit), then each segment goes to
 * the packs. Markers of segments no longer in a journal are deleted. Run before anything
 * appends or delivers.
 */
export async function recoverJournal(
  dirs: string[],
  kv: Deno.Kv,
  blobs: BlobStore,
  index: (entry: JournalEntry) => Promise<void>,
  fs: BlobFileSystem = denoFileSystem,
): Promise<number> {
  const found: [name: string, dir: string][] = [];
  for (const dir of dirs) {
    try {
      for await (const e of Deno.readDir(dir)) {
        if (e.isFile && packNamePattern.test(e.name)) found.push([e.name, dir]);
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  found.sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0);
  const names = found.map(([name]) => name);
  if (found.length) await Deno.mkdir(blobs.packDir, { recursive: true, mode: 0o700 });
  let indexed = 0;
  for (const [name, dir] of found) {
    const marked = new Set<number>();
    for await (const e of kv.list({ prefix: [markerPrefix, name] })) marked.add(e.key[2] as number);
    const entries = decodeSegment(await Deno.readFile(`${dir}/${name}`));
    for (const [i, { header, sealed, offset }] of entries.entries()) {
      const location: PackLocation = [name, offset, sealed.length];
      if (marked.has(i)) {
        // Indexed by a version that kept the blob in memory until its file was written, and
        // stopped before that: the segment holds it, and keeps it as a pack.
        const known = await kv.get(packKey(header.blob));
        if (!known.versionstamp && !(await blobs.has(header.blob))) {
          await kv.set(packKey(header.blob), location);
        }
        continue;
      }
      await index({ ...header, sealed, marker: [markerPrefix, name, i], location });
      indexed++;
    }
    const file = await Deno.open(`${dir}/${name}`, { read: true, write: true });
    try {
      if (!entries.length) {
        await fs.remove(`${dir}/${name}`);
        await fs.syncDirectory(dir);
        await deleteMarkers(kv, name);
      } else {
        const used = entries[entries.length - 1].end;
        await retireSegment(kv, fs, file, { dir, packDir: blobs.packDir, name, used });
      }
    } finally {
      closeQuietly(file);
    }
  }
  // Markers whose segment left the journal (a crash after the move, before the markers' delete).
  const present = new Set(names);
  const orphans = new Set<string>();
  for await (const e of kv.list({ prefix: [markerPrefix] })) {
    const name = e.key[1] as string;
    if (!present.has(name)) orphans.add(name);
  }
  for (const name of orphans) await deleteMarkers(kv, name);
  if (indexed) log.info("journal.recovered", { entries: indexed, segments: names.length });
  return indexed;
}

function closeQuietly(file: Deno.FsFile) {
  try {
    file.close();
  } catch {
    // Closed already.
  }
}
