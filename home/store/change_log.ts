/**
 * How one account's mailbox state is persisted in Deno KV: `["st", account,
 * "head"]` names the current snapshot generation; `["st", account, "snap",
 * gen, i]` holds the packed snapshot and `["st", account, "log", n, part]` the
 * changes since, one entry per writer batch. Loading reads the snapshot and
 * replays the log, so opening a 100,000-message account reads a few hundred
 * values, not 100,000. Only the account's writer (account_store.ts) appends.
 *
 * @example
 * ```ts
 * const changes = new ChangeLog(kv, account);
 * for (const op of await changes.load()) state.apply(op, nameOf);
 * await changes.append(ops, [], [], []);
 * if (changes.entries > 2000) await changes.compact(state.snapshotOps());
 * ```
 */
import { boundedOps, decodeOps, encodeOps } from "./log_codec.ts";
import type { Op } from "./state.ts";
import {
  chunksPerCommit,
  deletePrefix,
  deleteRange,
  getChunked,
  joinChunks,
  setChunked,
  splitChunks,
} from "./chunks.ts";

export class ChangeLog {
  readonly #kv: Deno.Kv;
  readonly #account: string;
  #logNext = 0;
  #logFrom = 0;
  #gen = 0;

  constructor(kv: Deno.Kv, account: string) {
    this.#kv = kv;
    this.#account = account;
  }

  /** Log entries written since the snapshot: the store compacts past a threshold. */
  get entries(): number {
    return this.#logNext - this.#logFrom;
  }

  /** The ops of the snapshot, then those of every log entry after it, in order. */
  async load(): Promise<Op[]> {
    const id = this.#account;
    const head = await this.#kv.get<{ gen: number; chunks: number; logFrom: number }>([
      "st",
      id,
      "head",
    ]);
    const ops: Op[] = [];
    if (head.value) {
      this.#gen = head.value.gen;
      this.#logFrom = head.value.logFrom;
      const snap = await getChunked(this.#kv, ["st", id, "snap", this.#gen], head.value.chunks);
      if (snap) ops.push(...decodeOps(snap));
    }
    this.#logNext = this.#logFrom;
    let current = -1;
    let parts: Uint8Array[] = [];
    const flush = () => {
      if (parts.length) ops.push(...decodeOps(joinChunks(parts)));
      parts = [];
    };
    for await (
      const e of this.#kv.list<Uint8Array>({
        start: ["st", id, "log", this.#logFrom],
        end: ["st", id, "log", Number.MAX_SAFE_INTEGER],
      })
    ) {
      const n = e.key[3] as number;
      if (n !== current) {
        flush();
        current = n;
      }
      parts.push(e.value);
      this.#logNext = n + 1;
    }
    flush();
    return ops;
  }

  /**
   * Appends ops to the change log: one log entry per atomic commit of at most
   * chunksPerCommit parts. Each entry is written only if its key is unused, so
   * a second writer of the same account (a bug) fails instead of overwriting.
   * `deletes` and `sets` go in the last commit; `early` in the first, or in
   * commits before it when they do not fit.
   */
  async append(
    ops: Op[],
    deletes: Deno.KvKey[],
    sets: [Deno.KvKey, unknown][] = [],
    early: [Deno.KvKey, Uint8Array][] = [],
  ) {
    let entry: Op[] = [];
    let entryBytes = 0;
    const limit = 60_000 * chunksPerCommit - 10_000;
    const bounded = [...boundedOps(ops)];
    const sizes = bounded.map((op) => encodeOps([op]).length + 1);
    const opBytes = sizes.reduce((a, b) => a + b, 0);
    // Early sets (metadata, staged blobs) ride in the first commit as far as Deno KV's 800 KiB
    // and 1,000 mutations allow beside its log entry; the rest go first, in commits of their own.
    const earlyBudget = opBytes <= limit
      ? {
        sets: 500 - deletes.length - sets.length,
        bytes: 680_000 - opBytes - 2_000 * sets.length - 200 * deletes.length,
      }
      : { sets: 200, bytes: 150_000 };
    let earlyBytes = early.reduce((n, [, v]) => n + v.length + 100, 0);
    while (early.length && (early.length > earlyBudget.sets || earlyBytes > earlyBudget.bytes)) {
      const tx = this.#kv.atomic();
      let bytes = 0;
      let n = 0;
      while (n < early.length && (n === 0 || (n < 500 && bytes < 600_000))) {
        tx.set(early[n][0], early[n][1]);
        bytes += early[n][1].length + 100;
        n++;
      }
      if (!(await tx.commit()).ok) throw new Error("metadata commit was refused");
      early = early.slice(n);
      earlyBytes -= bytes;
    }
    const commit = async (last: boolean) => {
      const tx = this.#kv.atomic();
      for (const [key, value] of early) tx.set(key, value);
      early = [];
      const n = this.#logNext;
      if (entry.length) {
        tx.check({ key: ["st", this.#account, "log", n, 0], versionstamp: null });
        splitChunks(encodeOps(entry)).forEach((part, i) =>
          tx.set(["st", this.#account, "log", n, i], part)
        );
      }
      if (last) {
        for (const key of deletes) tx.delete(key);
        for (const [key, value] of sets) tx.set(key, value);
      }
      const res = await tx.commit();
      if (!res.ok) throw new Error("change log commit was refused");
      if (entry.length) this.#logNext = n + 1;
      entry = [];
      entryBytes = 0;
    };
    for (const [i, op] of bounded.entries()) {
      const size = sizes[i];
      if (entry.length && entryBytes + size > limit) await commit(false);
      entry.push(op);
      entryBytes += size;
    }
    if (entry.length || deletes.length || sets.length || early.length) await commit(true);
  }

  /**
   * Writes a new snapshot of `snapshot` (the state as of the last append) and
   * drops the log it replaces. The head names the snapshot's chunk count, so
   * chunks left by a compaction that crashed before its head commit are never
   * read as part of a later snapshot.
   */
  async compact(snapshot: Iterable<Op>) {
    const id = this.#account;
    const gen = this.#gen + 1;
    const logFrom = this.#logNext;
    const packed = encodeOps([...snapshot]);
    await deletePrefix(this.#kv, ["st", id, "snap", gen]);
    await setChunked(this.#kv, ["st", id, "snap", gen], packed);
    const res = await this.#kv.atomic()
      .set(["st", id, "head"], { gen, chunks: splitChunks(packed).length, logFrom })
      .commit();
    if (!res.ok) throw new Error("snapshot head commit was refused");
    const oldGen = this.#gen;
    this.#gen = gen;
    this.#logFrom = logFrom;
    await deletePrefix(this.#kv, ["st", id, "snap", oldGen]);
    // Everything below logFrom, including entries an earlier crash left behind.
    await deleteRange(this.#kv, ["st", id, "log", 0], ["st", id, "log", logFrom]);
  }
}
