/**
 * Where a backup host keeps its peers' objects: `DATA/backup/<peer>/xx/<id>`,
 * written to a temporary file, fsynced, then linked into place without ever
 * replacing an existing file (write-only: an object, once stored, is never
 * overwritten). The index of objects and the quota are in KV (host_store.ts).
 *
 * @example
 * ```ts
 * const files = new ObjectFiles("hearth-data/backup");
 * await files.write("p-0123456789abcdef", id, bytes);
 * ```
 */
import { isObjectId, isPeerId } from "./format.ts";

/** The file operations a backup host needs; an interface so the app has no Deno calls. */
export interface ObjectStorage {
  /** Stores bytes durably; an existing object is left as it is. */
  write(peer: string, id: string, bytes: Uint8Array): Promise<void>;
  /** The bytes, or null when absent. */
  read(peer: string, id: string): Promise<Uint8Array | null>;
  remove(peer: string, id: string): Promise<void>;
  /** Stores many objects durably, sharing the directory fsyncs (a batch upload). */
  writeMany(peer: string, items: { id: string; bytes: Uint8Array }[]): Promise<void>;
}

export class ObjectFiles implements ObjectStorage {
  readonly #root: string;

  constructor(root: string) {
    this.#root = root;
  }

  pathOf(peer: string, id: string): string {
    if (!isPeerId(peer) || !isObjectId(id)) throw new RangeError("not a peer or object id");
    return `${this.#root}/${peer}/${id.slice(0, 2)}/${id}`;
  }

  async write(peer: string, id: string, bytes: Uint8Array): Promise<void> {
    await this.writeMany(peer, [{ id, bytes }]);
  }

  async writeMany(peer: string, items: { id: string; bytes: Uint8Array }[]): Promise<void> {
    const dirs = new Set<string>();
    let next = 0;
    const worker = async () => {
      while (next < items.length) {
        const { id, bytes } = items[next++];
        dirs.add(await this.#place(peer, id, bytes));
      }
    };
    await Promise.all(Array.from({ length: Math.min(8, items.length) }, worker));
    await Promise.all([...dirs].map(async (dir) => {
      const d = await Deno.open(dir, { read: true });
      try {
        await d.sync();
      } finally {
        d.close();
      }
    }));
  }

  /** Writes one object's file (fsynced) into place; returns its directory, to be fsynced. */
  async #place(peer: string, id: string, bytes: Uint8Array): Promise<string> {
    const path = this.pathOf(peer, id);
    const dir = path.slice(0, path.lastIndexOf("/"));
    const tmpDir = `${this.#root}/${peer}/tmp`;
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    await Deno.mkdir(tmpDir, { recursive: true, mode: 0o700 });
    const tmp = `${tmpDir}/${id}.${crypto.randomUUID()}`;
    const file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o600 });
    try {
      let off = 0;
      while (off < bytes.length) off += await file.write(bytes.subarray(off));
      await file.syncData();
    } finally {
      file.close();
    }
    try {
      // A hard link fails when the name exists: a stored object is never replaced.
      await Deno.link(tmp, path);
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    } finally {
      await Deno.remove(tmp).catch(() => {});
    }
    return dir;
  }

  async read(peer: string, id: string): Promise<Uint8Array | null> {
    try {
      return await Deno.readFile(this.pathOf(peer, id));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      throw e;
    }
  }

  async remove(peer: string, id: string): Promise<void> {
    await Deno.remove(this.pathOf(peer, id)).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
  }
}
