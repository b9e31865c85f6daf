/**
 * Where a backup host keeps its peers' objects: pack files, one per upload
 * batch, `DATA/backup/<peer>/packs/<pack>.pack`. A pack is written once to a
 * temporary file, fsynced, linked into place under a new random name (never
 * replacing a file) and its directory fsynced: one pair of fsyncs per batch
 * instead of one per object. A pack is never modified afterwards; a due
 * prune writes the live objects of a partly dead pack to a new pack and only
 * then removes the old one. Where each object lies (pack, offset, size) and
 * the quota are in KV (host_store.ts). Objects stored before packs existed
 * are loose files, `DATA/backup/<peer>/xx/<id>`, and are still read.
 *
 * A pack is self-describing: `hearth-pack-v1\n`, then per object its
 * 32-character id, a u32 length and the bytes (the upload batch framing).
 *
 * @example
 * ```ts
 * const files = new ObjectFiles("hearth-data/backup");
 * const { pack, offsets } = await files.writePack(peer, [{ id, bytes }]);
 * const back = await files.read(peer, id, { size: bytes.length, pack, off: offsets[0] });
 * ```
 */
import { toHex } from "../../src/encoding.ts";
import { isObjectId, isPeerId } from "./format.ts";

/** Where a stored object's bytes are: a range of a pack, or (no pack) a loose file. */
export interface ObjectLocation {
  size: number;
  pack?: string;
  off?: number;
}

/** The file operations a backup host needs; an interface so the app has no Deno calls. */
export interface ObjectStorage {
  /**
   * Stores objects durably as one new pack (one file fsync, one directory
   * fsync); returns the pack's name and each object's offset in it.
   */
  writePack(
    peer: string,
    items: { id: string; bytes: Uint8Array }[],
    /** The upload framing of exactly `items` (encodeObjectBatch), to write without a copy. */
    framed?: Uint8Array,
  ): Promise<{ pack: string; offsets: number[] }>;
  /**
   * The bytes at a location; fewer than `size` when the file was cut short,
   * null when the file is absent.
   */
  read(peer: string, id: string, at: ObjectLocation): Promise<Uint8Array | null>;
  /** Removes a whole pack (a due prune, once none of its objects is kept). */
  removePack(peer: string, pack: string): Promise<void>;
  /** Removes a loose object file (stored before packs). */
  remove(peer: string, id: string): Promise<void>;
}

const packMagic = new TextEncoder().encode("hearth-pack-v1\n");
const packPattern = /^[0-9a-f]{32}$/;

/** The bytes of a pack holding `items`, and each object's offset in it. */
export function encodePack(
  items: { id: string; bytes: Uint8Array }[],
): { bytes: Uint8Array; offsets: number[] } {
  const total = items.reduce((n, i) => n + 36 + i.bytes.length, packMagic.length);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  const offsets: number[] = [];
  out.set(packMagic);
  let off = packMagic.length;
  const enc = new TextEncoder();
  for (const { id, bytes } of items) {
    enc.encodeInto(id, out.subarray(off, off + 32));
    view.setUint32(off + 32, bytes.length);
    out.set(bytes, off + 36);
    offsets.push(off + 36);
    off += 36 + bytes.length;
  }
  return { bytes: out, offsets };
}

/** Where each item's bytes start in a pack (the magic's length included). */
function packOffsets(items: { bytes: Uint8Array }[]): number[] {
  const offsets: number[] = [];
  let off = packMagic.length;
  for (const { bytes } of items) {
    offsets.push(off + 36);
    off += 36 + bytes.length;
  }
  return offsets;
}

export class ObjectFiles implements ObjectStorage {
  readonly #root: string;

  constructor(root: string) {
    this.#root = root;
  }

  /** A loose object's file (objects stored before packs). */
  pathOf(peer: string, id: string): string {
    if (!isPeerId(peer) || !isObjectId(id)) throw new RangeError("not a peer or object id");
    return `${this.#root}/${peer}/${id.slice(0, 2)}/${id}`;
  }

  packPath(peer: string, pack: string): string {
    if (!isPeerId(peer) || !packPattern.test(pack)) throw new RangeError("not a peer or pack id");
    return `${this.#root}/${peer}/packs/${pack}.pack`;
  }

  async writePack(
    peer: string,
    items: { id: string; bytes: Uint8Array }[],
    framed?: Uint8Array,
  ): Promise<{ pack: string; offsets: number[] }> {
    const pack = toHex(crypto.getRandomValues(new Uint8Array(16)));
    const path = this.packPath(peer, pack);
    const dir = path.slice(0, path.lastIndexOf("/"));
    const tmpDir = `${this.#root}/${peer}/tmp`;
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    await Deno.mkdir(tmpDir, { recursive: true, mode: 0o700 });
    // The upload's own framing, when it is exactly these items, is written as it came: no copy
    // of the batch (the copies were most of the garbage the collector lagged behind on).
    const { bytes, offsets } = framed
      ? { bytes: framed, offsets: packOffsets(items) }
      : encodePack(items);
    const tmp = `${tmpDir}/${pack}`;
    const file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o600 });
    try {
      if (framed) await file.write(packMagic);
      let off = 0;
      while (off < bytes.length) off += await file.write(bytes.subarray(off));
      await file.syncData();
    } finally {
      file.close();
    }
    try {
      // A hard link fails when the name exists: a stored pack is never replaced.
      await Deno.link(tmp, path);
    } finally {
      await Deno.remove(tmp).catch(() => {});
    }
    const d = await Deno.open(dir, { read: true });
    try {
      await d.sync();
    } finally {
      d.close();
    }
    return { pack, offsets };
  }

  async read(peer: string, id: string, at: ObjectLocation): Promise<Uint8Array | null> {
    try {
      if (at.pack === undefined) return await Deno.readFile(this.pathOf(peer, id));
      const file = await Deno.open(this.packPath(peer, at.pack), { read: true });
      try {
        await file.seek(at.off ?? 0, Deno.SeekMode.Start);
        const out = new Uint8Array(at.size);
        let got = 0;
        while (got < at.size) {
          const n = await file.read(out.subarray(got));
          if (n === null) break;
          got += n;
        }
        return got === at.size ? out : out.slice(0, got);
      } finally {
        file.close();
      }
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      throw e;
    }
  }

  async removePack(peer: string, pack: string): Promise<void> {
    await Deno.remove(this.packPath(peer, pack)).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
  }

  async remove(peer: string, id: string): Promise<void> {
    await Deno.remove(this.pathOf(peer, id)).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
  }
}
