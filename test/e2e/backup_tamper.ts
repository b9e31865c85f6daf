/**
 * A friend's box that damages what it keeps, for the tamper tests: flips a
 * byte of an object in its pack file, serves an object cut short, swaps two
 * objects, drops one; every change is undone by `undo()`. Works on the
 * host's KV and files directly (sync/backup/pack_index.ts, object_files.ts),
 * as a careless or malicious friend would.
 *
 * @example
 * ```ts
 * const t = new FriendTamper(boxB.kv, `${dirB}/backup`, peer);
 * await t.flip(id);
 * await t.undo();
 * ```
 */
import { ObjectFiles } from "../../sync/backup/object_files.ts";
import {
  decodePackEntries,
  encodePackEntries,
  indexKeys,
  type PackRecord,
} from "../../sync/backup/pack_index.ts";

export class FriendTamper {
  readonly #kv: Deno.Kv;
  readonly #files: ObjectFiles;
  readonly #peer: string;
  readonly #undo: (() => Promise<void>)[] = [];

  constructor(kv: Deno.Kv, backupDir: string, peer: string) {
    this.#kv = kv;
    this.#files = new ObjectFiles(backupDir);
    this.#peer = peer;
  }

  /** The pack record holding an object, and its entry. */
  async locate(id: string) {
    for await (const e of this.#kv.list<PackRecord>({ prefix: ["bk-host", "pack", this.#peer] })) {
      const entries = decodePackEntries(e.value.entries);
      const i = entries.findIndex((x) => x.id === id);
      if (i >= 0) {
        const pack = e.key[3] as string;
        return { entry: e, entries, i, pack, path: this.#files.packPath(this.#peer, pack) };
      }
    }
    throw new Error(`object ${id} is not in any pack`);
  }

  /** Rewrites pack records (and moves the index generation, as the host does). */
  async #setEntries(changes: { key: Deno.KvKey; value: PackRecord }[]) {
    const before = await Promise.all(changes.map((c) => this.#kv.get<PackRecord>(c.key)));
    this.#undo.push(() => this.#rewrite(before.map((b) => ({ key: b.key, value: b.value! }))));
    await this.#rewrite(changes);
  }

  async #rewrite(changes: { key: Deno.KvKey; value: PackRecord }[]) {
    const gen = await this.#kv.get<number>(indexKeys.gen(this.#peer));
    const op = this.#kv.atomic().set(gen.key, (gen.value ?? 0) + 1);
    for (const c of changes) op.set(c.key, c.value);
    await op.commit();
  }

  /** Flips the last byte of an object in its pack file. */
  async flip(id: string) {
    const { entries, i, path } = await this.locate(id);
    const original = await Deno.readFile(path);
    this.#undo.push(() => Deno.writeFile(path, original));
    const bytes = original.slice();
    bytes[entries[i].off + entries[i].size - 1] ^= 1;
    await Deno.writeFile(path, bytes);
  }

  /** The host serves only the first `keep` bytes of an object. */
  async truncate(id: string, keep = 100) {
    const { entry, entries, i } = await this.locate(id);
    entries[i] = { ...entries[i], size: Math.min(keep, entries[i].size - 1) };
    await this.#setEntries([{
      key: entry.key,
      value: { ...entry.value, entries: encodePackEntries(entries) },
    }]);
  }

  /** Each of two objects is served with the other's bytes. */
  async swap(a: string, b: string) {
    const la = await this.locate(a);
    const lb = await this.locate(b);
    const [ea, eb] = [la.entries[la.i], lb.entries[lb.i]];
    if (la.pack === lb.pack) {
      la.entries[la.i] = { id: a, off: eb.off, size: eb.size };
      la.entries[lb.i] = { id: b, off: ea.off, size: ea.size };
      await this.#setEntries([{
        key: la.entry.key,
        value: { ...la.entry.value, entries: encodePackEntries(la.entries) },
      }]);
      return;
    }
    throw new Error("swap() expects two objects of one pack");
  }

  /** The host no longer has the object. */
  async drop(id: string) {
    const { entry, entries, i } = await this.locate(id);
    entries.splice(i, 1);
    await this.#setEntries([{
      key: entry.key,
      value: { ...entry.value, entries: encodePackEntries(entries) },
    }]);
  }

  /** Puts everything back as it was. */
  async undo() {
    while (this.#undo.length) await this.#undo.pop()!();
  }
}
