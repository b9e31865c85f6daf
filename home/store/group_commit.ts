/**
 * Group commit for Deno KV: writes queued while a commit is in flight go out
 * together in the next atomic commit, so concurrent deliveries share one
 * SQLite WAL fsync instead of paying one each (DESIGN.md, durability promise).
 * Every caller's promise resolves only after the commit holding its write is
 * durable.
 *
 * @example
 * ```ts
 * const group = groupCommitFor(kv);
 * const ok = await group.commit({
 *   apply: (op) => op.set(["arrival", id, n], record),
 *   mutations: 1,
 *   bytes: 200,
 * });
 * ```
 */

/** One caller's share of a commit. */
export interface GroupWrite {
  /** Adds this write's checks and mutations to an atomic operation. */
  apply(op: Deno.AtomicOperation): void;
  /** Mutations (sets, deletes) that `apply` adds. */
  mutations: number;
  /** Checks that `apply` adds (default 0). */
  checks?: number;
  /** About how many bytes of keys and values `apply` adds. */
  bytes: number;
}

/**
 * Bounds of one grouped commit. Deno KV refuses an atomic operation with more than 100 checks,
 * 1,000 mutations, 80 KiB of keys or 800 KiB in all; these stay well inside.
 */
export interface GroupCommitLimits {
  maxMutations: number;
  maxChecks: number;
  maxBytes: number;
}

const defaultLimits: GroupCommitLimits = { maxMutations: 400, maxChecks: 50, maxBytes: 600_000 };

interface Queued {
  write: GroupWrite;
  resolve: (ok: boolean) => void;
  reject: (e: unknown) => void;
}

/** Batches {@linkcode GroupWrite}s into as few atomic commits as the limits allow. */
export class KvGroupCommit {
  readonly #kv: Deno.Kv;
  readonly #limits: GroupCommitLimits;
  #queue: Queued[] = [];
  #running = false;
  /** Commits made so far (tests check that writes were grouped). */
  commits = 0;

  constructor(kv: Deno.Kv, limits: Partial<GroupCommitLimits> = {}) {
    this.#kv = kv;
    this.#limits = { ...defaultLimits, ...limits };
  }

  /**
   * Commits a write with whatever else is queued. Resolves true once durable,
   * false when one of its own checks failed (nothing of it was written);
   * rejects when KV failed.
   */
  commit(write: GroupWrite): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      this.#queue.push({ write, resolve, reject });
      if (!this.#running) this.#drain();
    });
  }

  async #drain() {
    this.#running = true;
    try {
      while (this.#queue.length) await this.#commitBatch(this.#takeBatch());
    } finally {
      this.#running = false;
    }
  }

  #takeBatch(): Queued[] {
    let mutations = 0;
    let checks = 0;
    let bytes = 0;
    let n = 0;
    const l = this.#limits;
    for (const q of this.#queue) {
      mutations += q.write.mutations;
      checks += q.write.checks ?? 0;
      bytes += q.write.bytes;
      // A write alone over the limits still goes, alone: KV gives it its own verdict.
      if (n > 0 && (mutations > l.maxMutations || checks > l.maxChecks || bytes > l.maxBytes)) {
        break;
      }
      n++;
    }
    return this.#queue.splice(0, n);
  }

  async #commitBatch(batch: Queued[]) {
    try {
      if (await this.#commitTogether(batch)) {
        for (const q of batch) q.resolve(true);
        return;
      }
      if (batch.length === 1) return batch[0].resolve(false);
      // One write's check failed and refused the whole commit: give each its own verdict.
      for (const q of batch) q.resolve(await this.#commitTogether([q]));
    } catch (e) {
      for (const q of batch) q.reject(e);
    }
  }

  async #commitTogether(batch: Queued[]): Promise<boolean> {
    const op = this.#kv.atomic();
    for (const q of batch) q.write.apply(op);
    this.commits++;
    return (await op.commit()).ok;
  }
}

const shared = new WeakMap<Deno.Kv, KvGroupCommit>();

/** The group committer of a KV handle, shared by every writer of that handle. */
export function groupCommitFor(kv: Deno.Kv): KvGroupCommit {
  let group = shared.get(kv);
  if (!group) shared.set(kv, group = new KvGroupCommit(kv));
  return group;
}
