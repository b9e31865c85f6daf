/**
 * Sealed message blobs on disk: `DATA/blobs/xx/<id>.age`, where the id is the
 * first 128 bits of the SHA-256 of the sealed bytes (content addressed, so a
 * friend's box stores the same names). A blob is written to a temporary
 * file, fsynced, renamed into place, and its directory fsynced before
 * {@linkcode BlobStore.put} resolves: only then may a `250` or `OK` be sent.
 * Small blobs reach the disk first as KV entries committed with their record
 * (`staging.ts`), and are moved here later by {@linkcode BlobStore.putMany}.
 * Small blobs delivered over SMTP stay where the delivery journal wrote them
 * (`journal.ts`): a segment of the journal, `DATA/blobs/journal/NAME`, is
 * moved to `DATA/blobs/packs/NAME` once all its entries are indexed, and a KV
 * record `["blob-pack", id]` says where in it the blob is (`packs.ts`).
 *
 * @example
 * ```ts
 * const blobs = new BlobStore("hearth-data/blobs");
 * const id = await blobs.put(sealedBytes);
 * const again = await blobs.get(id);
 * ```
 */
import { createHash } from "node:crypto";
import { sha256, toHex } from "../../src/encoding.ts";
import { deletePrefix } from "./chunks.ts";

/** Up to this size a blob is hashed and written synchronously: cheaper than a thread hop. */
const syncBytes = 1 << 20;

/**
 * {@linkcode BlobStore.idOf} computed on this thread: for blobs of message size (staged or
 * journaled), where a hop to WebCrypto's thread costs more than the hash.
 */
export function blobIdSync(sealed: Uint8Array): string {
  return createHash("sha256").update(sealed).digest("hex").slice(0, 32);
}

/** The file operations the store needs; tests inject faults (a failing fsync) through it. */
export interface BlobFileSystem {
  writeDurably(path: string, data: Uint8Array): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  syncDirectory(path: string): Promise<void>;
  /** fdatasync of an open file (the delivery journal's appends). */
  syncFile(file: Deno.FsFile): Promise<void>;
  /** The same fdatasync on the calling thread (the journal's inline syncs). */
  syncFileNow(file: Deno.FsFile): void;
  readFile(path: string): Promise<Uint8Array>;
  remove(path: string): Promise<void>;
  mkdir(path: string): Promise<void>;
}

/** The real file system. */
export const denoFileSystem: BlobFileSystem = {
  async writeDurably(path, data) {
    // Creating a file can wait on the journal while other fsyncs run: async. Writing a
    // message-sized file only fills the page cache: done synchronously, one thread hop fewer.
    const file = await Deno.open(path, { write: true, createNew: true, mode: 0o600 });
    try {
      let off = 0;
      while (off < data.length) {
        const rest = data.subarray(off);
        off += rest.length <= syncBytes ? file.writeSync(rest) : await file.write(rest);
      }
      await file.syncData();
    } finally {
      file.close();
    }
  },
  // A rename or a directory open can wait on the file system's journal while other fsyncs run
  // (ext4 holds metadata changes behind a commit): on the blocking pool, not on this thread. Done
  // synchronously they took a sixth of the main thread's busy time in a one-session bench.
  rename: (from, to) => Deno.rename(from, to),
  async syncDirectory(path) {
    const dir = await Deno.open(path, { read: true });
    try {
      await dir.sync();
    } finally {
      dir.close();
    }
  },
  syncFile: (file) => file.syncData(),
  syncFileNow: (file) => file.syncDataSync(),
  readFile: (path) => Deno.readFile(path),
  async remove(path) {
    try {
      await Deno.remove(path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  },
  mkdir: (path) => Deno.mkdir(path, { recursive: true, mode: 0o700 }),
};

const idPattern = /^[0-9a-f]{32}$/;
/** The name of a journal segment, which a pack keeps (journal.ts). */
export const packNamePattern = /^[0-9a-z]+-[0-9a-f]{8}\.jnl$/;

/** Where a blob lives in a pack: the pack's name, the offset of its sealed bytes, their length. */
export type PackLocation = [pack: string, offset: number, length: number];

/** The KV key of a packed blob's location. */
export function packKey(id: string): Deno.KvKey {
  return ["blob-pack", id];
}

/** Content-addressed, durably written sealed blobs. */
export class BlobStore {
  readonly #root: string;
  readonly #fs: BlobFileSystem;
  /**
   * Per directory, the fsync under way and the one waiting to start: every put that renamed into
   * that directory meanwhile shares the waiting one (group commit).
   */
  readonly #dirSyncs = new Map<
    string,
    { running: Promise<void> | null; pending: Promise<void> | null }
  >();
  /** Directories known to exist: a put then skips the mkdir. */
  readonly #madeDirs = new Set<string>();
  #ready: Promise<void> | null = null;

  constructor(root: string, fs: BlobFileSystem = denoFileSystem) {
    this.#root = root;
    this.#fs = fs;
  }

  /** The id a sealed blob gets. */
  static async idOf(sealed: Uint8Array): Promise<string> {
    if (sealed.length > syncBytes) return toHex((await sha256(sealed)).subarray(0, 16));
    return blobIdSync(sealed);
  }

  /** The delivery journal's directory (journal.ts): segments still taking or indexing mail. */
  get journalDir(): string {
    return `${this.#root}/journal`;
  }

  /** Where journal segments go once all their entries are indexed (packs.ts). */
  get packDir(): string {
    return `${this.#root}/packs`;
  }

  /**
   * Reads a packed blob: from its pack, or from the journal segment it still is (a segment is
   * moved to the packs once indexed). Null when neither file exists (compacted meanwhile: the
   * blob has its own file then). Throws when the bytes there are not the blob.
   */
  async readPacked(id: string, [pack, offset, length]: PackLocation): Promise<Uint8Array | null> {
    if (!packNamePattern.test(pack)) throw new RangeError(`not a pack name: ${pack}`);
    // Packs first (most blobs), the journal, and the packs again: a segment moved between the
    // first two looks is found by the third.
    for (const dir of [this.packDir, this.journalDir, this.packDir]) {
      let file: Deno.FsFile;
      try {
        file = await Deno.open(`${dir}/${pack}`, { read: true });
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) continue;
        throw e;
      }
      try {
        await file.seek(offset, Deno.SeekMode.Start);
        const out = new Uint8Array(length);
        let got = 0;
        while (got < length) {
          const n = await file.read(out.subarray(got));
          if (n === null) break;
          got += n;
        }
        if (got < length || blobIdSync(out) !== id) {
          throw new Error(`blob ${id} is damaged in pack ${pack}`);
        }
        return out;
      } finally {
        file.close();
      }
    }
    return null;
  }

  /** Where a blob lives on disk. */
  pathOf(id: string): string {
    if (!idPattern.test(id)) throw new RangeError(`not a blob id: ${id}`);
    return `${this.#root}/${id.slice(0, 2)}/${id}.age`;
  }

  #prepare(): Promise<void> {
    this.#ready ??= this.#fs.mkdir(`${this.#root}/tmp`);
    return this.#ready;
  }

  /** Writes a sealed blob durably and returns its id. Writing the same bytes twice is harmless. */
  async put(sealed: Uint8Array): Promise<string> {
    await this.#prepare();
    const id = await BlobStore.idOf(sealed);
    const dir = `${this.#root}/${id.slice(0, 2)}`;
    const tmp = `${this.#root}/tmp/${id}.${crypto.randomUUID()}`;
    if (!this.#madeDirs.has(dir)) {
      await this.#fs.mkdir(dir);
      this.#madeDirs.add(dir);
    }
    try {
      await this.#fs.writeDurably(tmp, sealed);
      await this.#fs.rename(tmp, this.pathOf(id));
    } catch (e) {
      await this.#fs.remove(tmp).catch(() => {});
      throw e;
    }
    await this.#syncDir(dir);
    return id;
  }

  /**
   * Writes many sealed blobs durably under ids the caller has checked, with one
   * directory fsync per directory for the whole batch (the spiller of staged
   * blobs). A blob whose file already exists whole is not written again.
   */
  async putMany(items: { id: string; sealed: Uint8Array }[], parallel = 8): Promise<void> {
    await this.#prepare();
    const dirs = new Set<string>();
    let next = 0;
    const worker = async () => {
      while (next < items.length) {
        const { id, sealed } = items[next++];
        const path = this.pathOf(id);
        const dir = `${this.#root}/${id.slice(0, 2)}`;
        if (!this.#madeDirs.has(dir)) {
          await this.#fs.mkdir(dir);
          this.#madeDirs.add(dir);
        }
        dirs.add(dir);
        // Left by a spill that crashed before its KV delete: renamed only after its fdatasync.
        const existing = await Deno.stat(path).catch(() => null);
        if (existing?.size === sealed.length) continue;
        const tmp = `${this.#root}/tmp/${id}.${crypto.randomUUID()}`;
        try {
          await this.#fs.writeDurably(tmp, sealed);
          await this.#fs.rename(tmp, path);
        } catch (e) {
          await this.#fs.remove(tmp).catch(() => {});
          throw e;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(parallel, items.length) }, worker));
    await Promise.all([...dirs].map((dir) => this.#fs.syncDirectory(dir)));
  }

  /**
   * fsyncs a directory after a rename into it. A sync under way may have started before the
   * rename, so the caller shares the next one, with every rename until that one starts.
   */
  #syncDir(dir: string): Promise<void> {
    let state = this.#dirSyncs.get(dir);
    if (!state) this.#dirSyncs.set(dir, state = { running: null, pending: null });
    if (state.pending) return state.pending;
    const s = state;
    const before = s.running;
    const sync = Promise.withResolvers<void>();
    (async () => {
      await before?.catch(() => {});
      // Renames of the same tick join too.
      await Promise.resolve();
      s.pending = null;
      s.running = sync.promise;
      try {
        await this.#fs.syncDirectory(dir);
        sync.resolve();
      } catch (e) {
        sync.reject(e);
      } finally {
        if (s.running === sync.promise) s.running = null;
      }
    })();
    s.pending = sync.promise;
    return sync.promise;
  }

  /** True when a blob's file exists. */
  async has(id: string): Promise<boolean> {
    try {
      await Deno.stat(this.pathOf(id));
      return true;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return false;
      throw e;
    }
  }

  /** Reads a sealed blob from its file. */
  get(id: string): Promise<Uint8Array> {
    return this.#fs.readFile(this.pathOf(id));
  }

  /** Removes a blob that no message references any more. */
  async remove(id: string): Promise<void> {
    await this.#fs.remove(this.pathOf(id));
  }

  /**
   * Removes blobs that nothing references: no account's metadata and no
   * arrival record names them (a crash between writing a blob and recording
   * it, or while removing one). Only files older than `minAgeMs` are
   * considered, so a write in flight is never touched. Staged blobs (KV) are
   * listed before the references: a blob is staged no earlier than a record
   * naming it (staging.ts), so one seen staged has its reference seen after. Pack locations
   * (packs.ts) are collected the same way.
   */
  async collectUnreferenced(kv: Deno.Kv, minAgeMs = 24 * 60 * 60 * 1000): Promise<number> {
    const staged = new Set<string>();
    for await (const e of kv.list({ prefix: ["staged"] })) staged.add(e.key[1] as string);
    // Pack locations likewise: set in the commit of the record that names the blob.
    const packed = new Set<string>();
    for await (const e of kv.list({ prefix: ["blob-pack"] })) packed.add(e.key[1] as string);
    const referenced = new Set<string>();
    for await (const e of kv.list({ prefix: ["meta"] })) referenced.add(e.key[2] as string);
    for await (const e of kv.list<{ blob: string }>({ prefix: ["arrival"] })) {
      referenced.add(e.value.blob);
    }
    let removed = 0;
    for (const id of staged) {
      if (referenced.has(id)) continue;
      await deletePrefix(kv, ["staged", id]);
      removed++;
    }
    for (const id of packed) {
      if (referenced.has(id)) continue;
      // Its bytes in the pack go at the pack's next compaction (packs.ts).
      await kv.delete(packKey(id));
      removed++;
    }
    const cutoff = Date.now() - minAgeMs;
    let dirs: Deno.DirEntry[] = [];
    try {
      dirs = await Array.fromAsync(Deno.readDir(this.#root));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return removed;
      throw e;
    }
    for (const dir of dirs) {
      if (!dir.isDirectory || !/^[0-9a-f]{2}$/.test(dir.name)) continue;
      for await (const f of Deno.readDir(`${this.#root}/${dir.name}`)) {
        const m = /^([0-9a-f]{32})\.age$/.exec(f.name);
        if (!m || referenced.has(m[1])) continue;
        const path = `${this.#root}/${dir.name}/${f.name}`;
        const info = await Deno.stat(path);
        if ((info.mtime?.getTime() ?? Date.now()) > cutoff) continue;
        await this.#fs.remove(path);
        removed++;
      }
    }
    return removed;
  }

  /** Removes temporary files a crash left behind (never visible as blobs). */
  async collectTemporaries(): Promise<number> {
    let n = 0;
    try {
      for await (const entry of Deno.readDir(`${this.#root}/tmp`)) {
        await this.#fs.remove(`${this.#root}/tmp/${entry.name}`);
        n++;
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return n;
  }
}
