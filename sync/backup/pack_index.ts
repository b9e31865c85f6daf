/**
 * The backup host's index of a peer's objects (docs/backup.md): one KV record
 * per pack file, `bk-host, pack, P, packId` → {@linkcode PackRecord}, listing
 * the id, offset and size of each object in it, instead of one record per
 * object (a KV commit of 500 object records cost ~30 ms, more than writing
 * and fsyncing the pack). Lookups go through an in-memory map per peer,
 * loaded from those records and kept while `bk-host, objgen, P` is
 * unchanged: every commit that adds or removes objects sets it, so another
 * process's writes are seen on the next request.
 *
 * @example
 * ```ts
 * const index = new ObjectIndex(kv);
 * const { objects } = await index.load(peer);
 * const at = objects.get(id); // { pack, off, size, at }
 * ```
 */
import { toHex } from "../../src/encoding.ts";
import type { ObjectLocation } from "./object_files.ts";

const P = "bk-host";

/** A stored object: where its bytes are and when it arrived. */
export interface Located extends ObjectLocation {
  at: number;
}

/** A pack's KV record: per object its 16-byte id, u32 offset and u32 size (24 bytes). */
export interface PackRecord {
  at: number;
  entries: Uint8Array;
}

/** Encodes the entries of a pack record. */
export function encodePackEntries(items: { id: string; off: number; size: number }[]): Uint8Array {
  const out = new Uint8Array(items.length * 24);
  const view = new DataView(out.buffer);
  items.forEach(({ id, off, size }, i) => {
    for (let j = 0; j < 16; j++) out[i * 24 + j] = parseInt(id.slice(j * 2, j * 2 + 2), 16);
    view.setUint32(i * 24 + 16, off);
    view.setUint32(i * 24 + 20, size);
  });
  return out;
}

/** The inverse of {@linkcode encodePackEntries}. */
export function decodePackEntries(
  entries: Uint8Array,
): { id: string; off: number; size: number }[] {
  const view = new DataView(entries.buffer, entries.byteOffset, entries.byteLength);
  const out = [];
  for (let i = 0; i + 24 <= entries.length; i += 24) {
    out.push({
      id: toHex(entries.subarray(i, i + 16)),
      off: view.getUint32(i + 16),
      size: view.getUint32(i + 20),
    });
  }
  return out;
}

/** The KV keys of the index. */
export const indexKeys = {
  pack: (peer: string, pack: string): Deno.KvKey => [P, "pack", peer, pack],
  /** Set by every commit that adds or removes a peer's objects. */
  gen: (peer: string): Deno.KvKey => [P, "objgen", peer],
  /** Objects stored before packs: one record each, a loose file each. */
  loose: (peer: string, id: string): Deno.KvKey => [P, "obj", peer, id],
};

export interface LoadedIndex {
  /** Every object the peer has: id → location. */
  objects: Map<string, Located>;
  /** The generation entry the map is current for (check it in a commit that changes objects). */
  gen: Deno.KvEntryMaybe<number>;
}

/** Per-peer maps of stored objects, reloaded when another writer changed them. */
export class ObjectIndex {
  readonly #kv: Deno.Kv;
  readonly #peers = new Map<string, { stamp: string | null; objects: Map<string, Located> }>();

  constructor(kv: Deno.Kv) {
    this.#kv = kv;
  }

  /** The peer's objects, as of the generation read here (one KV read when unchanged). */
  async load(peer: string): Promise<LoadedIndex> {
    const gen = await this.#kv.get<number>(indexKeys.gen(peer));
    const cached = this.#peers.get(peer);
    if (cached && cached.stamp === gen.versionstamp) return { objects: cached.objects, gen };
    const objects = new Map<string, Located>();
    for await (const e of this.#kv.list<PackRecord>({ prefix: [P, "pack", peer] })) {
      const pack = e.key[3] as string;
      for (const x of decodePackEntries(e.value.entries)) {
        objects.set(x.id, { pack, off: x.off, size: x.size, at: e.value.at });
      }
    }
    for await (const e of this.#kv.list<Located>({ prefix: [P, "obj", peer] })) {
      objects.set(e.key[3] as string, { size: e.value.size, at: e.value.at });
    }
    // Writes between the generation read and the listing show up in the map and move the
    // generation on, so the next load lists again: the map is never older than its stamp.
    this.#peers.set(peer, { stamp: gen.versionstamp, objects });
    return { objects, gen };
  }

  /** After this process's own commit (which checked `from`): the map as changed, without a reload. */
  committed(
    peer: string,
    from: string | null,
    to: string,
    change: (m: Map<string, Located>) => void,
  ) {
    const cached = this.#peers.get(peer);
    if (!cached || cached.stamp !== from) {
      this.#peers.delete(peer);
      return;
    }
    change(cached.objects);
    cached.stamp = to;
  }

  /** Forgets a peer's map (after a failed commit, or to free memory). */
  forget(peer: string) {
    this.#peers.delete(peer);
  }
}
