/**
 * One account's store while it is unlocked: the in-memory state, its single
 * writer, the change log in Deno KV, the sealed blobs and the encrypted
 * per-message metadata.
 *
 * Persistence: `["st", account, "head"]` names the current snapshot
 * generation; `["st", account, "snap", gen, i]` holds the packed snapshot and
 * `["st", account, "log", n, part]` the changes since, one entry per writer
 * batch. Loading reads the snapshot and replays the log, so opening a
 * 100,000-message account reads a few hundred values, not 100,000.
 *
 * Every mutation goes through {@linkcode AccountStore.mutate}: mutations that
 * arrive while a commit is in flight are applied together and committed in
 * one KV commit (group commit); their promises resolve only after it is
 * durable, and only then are sessions notified.
 */
import type { MessageInfo } from "../../src/mime/message_info.ts";
import { analyzeMessage } from "../../src/mime/analyze.ts";
import { searchableText } from "../../src/mime/searchable_text.ts";
import { openSealed, sealToRecipient } from "../../src/crypto/age.ts";
import { sealAheadFor } from "../../src/crypto/age_seal.ts";
import {
  decryptIndex,
  decryptJson,
  encryptIndex,
  encryptJson,
  encryptJsonSync,
} from "../../src/crypto/index_key.ts";
import { log } from "../../src/log.ts";
import { limits } from "../../src/limits.ts";
import { ProtocolError } from "../../src/errors.ts";
import { BlobStore } from "./blobs.ts";
import { groupCommitFor } from "./group_commit.ts";
import { StagedBlobs, stagedEntries } from "./staging.ts";
import { boundedOps, decodeOps, encodeOps } from "./log_codec.ts";
import { decodeSearchText, encodeSearchText, PendingSearchTexts } from "./search_text.ts";
import { AccountState, type MailboxRecord, type MessageRecord, type Op } from "./state.ts";
import {
  chunkBytes,
  chunksPerCommit,
  deletePrefix,
  deleteRange,
  getChunked,
  joinChunks,
  setChunked,
  setChunkedMany,
  splitChunks,
} from "./chunks.ts";

/** A message's searchable text: decoded strings, and the UTF-8 bytes when read from storage. */
export interface SearchTextBytes {
  readonly headers: string;
  readonly body: string;
  readonly headerBytes?: Uint8Array;
  readonly bodyBytes?: Uint8Array;
}

/** What sessions hear after a commit. `origin` is the session that caused it, if any. */
export type ChangeEvent =
  | { kind: "add"; mb: string; uid: number }
  | { kind: "flags"; mb: string; uid: number; origin?: number }
  | { kind: "expunge"; mb: string; uids: number[]; origin?: number }
  | { kind: "mailboxes" };

/** A message ready for `add`; `pending` holds KV writes for the commit that adds it. */
export interface PreparedMessage {
  blob: string;
  size: number;
  /** The metadata and staged blob, for {@linkcode AccountStore.commitPrepared}. */
  pending?: [Deno.KvKey, Uint8Array][];
}

/** A message sealed and stored while its account was locked, waiting to be indexed into INBOX. */
export interface ArrivalRecord {
  blob: string;
  size: number;
  date: number;
}

export type Listener = (events: ChangeEvent[]) => void;

/** The unlocked secrets of an account, held in memory only. */
export interface AccountKeys {
  identity: string;
  recipient: string;
  indexKey: CryptoKey;
}

/** The handle a mutation works through: reads state, allocates modseqs, records ops. */
export interface Tx {
  readonly state: AccountState;
  /** A new modseq, higher than any before (RFC 7162 §3.1.1: strictly increasing per mailbox). */
  nextModSeq(): number;
  /** Applies an op to memory now and records it for the commit. */
  push(op: Op, origin?: number): void;
  /** Deletes a KV key in the same commit as the ops (an ingested arrival record). */
  deleteWithCommit(key: Deno.KvKey): void;
  /** Sets a KV key in the same commit as the ops (hearth import's resume point). */
  setWithCommit(key: Deno.KvKey, value: unknown): void;
  /**
   * Sets a KV key in the first commit of the ops, or in one before it if it does not fit, never
   * after: a new message's metadata, so that it costs no commit of its own.
   */
  setNoLaterThanCommit(key: Deno.KvKey, value: Uint8Array): void;
}

interface Pending {
  run: (tx: Tx) => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** Full metadata entries kept per account (the IMAP layer keeps its own compact form). */
const metaCacheSize = 2000;
/** Arrivals opened in parallel and indexed in one mutation (one log commit) at a time. */
const ingestBatchSize = 32;
/** How long encrypted search texts wait for a commit to ride in before they get their own. */
const textFlushMs = 50;
/** Search-text bytes at most added to one commit. */
const textBytesPerCommit = 256 * 1024;
/** Bytes of decrypted messages kept per unlocked account. */
const rawCacheBytes = limits.messageCacheBytes;

/** Tuning of one account store; tests shrink these to exercise compaction. */
export interface AccountStoreOptions {
  /** Change-log entries after which the state is compacted into a new snapshot. */
  compactAfterEntries?: number;
}

export class AccountStore {
  readonly id: string;
  readonly state = new AccountState();
  readonly #kv: Deno.Kv;
  readonly #blobs: BlobStore;
  readonly #keys: AccountKeys;
  #names = new Map<string, string>();
  #logNext = 0;
  #logFrom = 0;
  #gen = 0;
  #queue: Pending[] = [];
  #writing = false;
  #listeners = new Set<Listener>();
  #metaCache = new Map<string, MessageInfo>();
  #rawCache = new Map<string, Uint8Array>();
  #ingesting: Promise<number> | null = null;
  #ingestAgain = false;
  /** True once an ingest has run since the store opened: no older arrival is left waiting. */
  #ingestedOnce = false;
  #rawCacheSize = 0;
  #closed = false;
  readonly #compactAfterEntries: number;
  readonly #staging: StagedBlobs;
  readonly #texts: PendingSearchTexts;
  #textFlush: ReturnType<typeof setTimeout> | undefined;

  private constructor(
    id: string,
    kv: Deno.Kv,
    blobs: BlobStore,
    keys: AccountKeys,
    opts: AccountStoreOptions,
  ) {
    this.id = id;
    this.#kv = kv;
    this.#blobs = blobs;
    this.#keys = keys;
    this.#compactAfterEntries = opts.compactAfterEntries ?? 2000;
    this.#staging = StagedBlobs.for(kv, blobs);
    this.#texts = new PendingSearchTexts(
      (blob, plain) => encryptIndex(this.#keys.indexKey, plain, `text:${blob}`),
      () => this.#flushTextsSoon(),
    );
  }

  /** Search texts ride in the next commit; when none comes soon, an empty mutation brings one. */
  #flushTextsSoon() {
    if (this.#closed || this.#textFlush !== undefined) return;
    this.#textFlush = setTimeout(() => {
      this.#textFlush = undefined;
      if (this.#closed || !this.#texts.ready) return;
      this.mutate(() => {}).catch((e) => log.warn("store.text-flush-failed", { error: e }));
    }, textFlushMs);
  }

  get keys(): AccountKeys {
    return this.#keys;
  }

  /** Loads an account's state: snapshot plus change log. Decrypts mailbox names. */
  static async open(
    kv: Deno.Kv,
    blobs: BlobStore,
    id: string,
    keys: AccountKeys,
    opts: AccountStoreOptions = {},
  ): Promise<AccountStore> {
    const store = new AccountStore(id, kv, blobs, keys, opts);
    await store.#load();
    return store;
  }

  async #load() {
    const head = await this.#kv.get<{ gen: number; chunks: number; logFrom: number }>([
      "st",
      this.id,
      "head",
    ]);
    const ops: Op[] = [];
    if (head.value) {
      this.#gen = head.value.gen;
      this.#logFrom = head.value.logFrom;
      const snap = await getChunked(
        this.#kv,
        ["st", this.id, "snap", this.#gen],
        head.value.chunks,
      );
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
        start: ["st", this.id, "log", this.#logFrom],
        end: [
          "st",
          this.id,
          "log",
          Number.MAX_SAFE_INTEGER,
        ],
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
    // Names are decrypted before replay so apply() stays synchronous.
    for (const op of ops) {
      if (op.op === "mbox") await this.#rememberName(op.rec);
    }
    for (const op of ops) this.state.apply(op, (rec) => this.#names.get(rec.id) ?? "");
  }

  async #rememberName(rec: MailboxRecord) {
    const name = decoder.decode(
      await decryptIndex(this.#keys.indexKey, rec.nameEnc, "mailbox-name"),
    );
    this.#names.set(rec.id, name);
    return name;
  }

  /** Encrypts a mailbox name for a record. */
  async encryptName(name: string): Promise<Uint8Array> {
    return await encryptIndex(this.#keys.indexKey, encoder.encode(name), "mailbox-name");
  }

  /** Registers a name for a record about to be pushed (so apply() can name it). */
  nameRecord(id: string, name: string) {
    this.#names.set(id, name);
  }

  /** Listens for committed changes; returns the unsubscribe function. */
  subscribe(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Runs a mutation under the account's single writer. `run` is synchronous:
   * it checks state and pushes ops; anything slow (sealing, writing blobs)
   * happens before. Resolves after the ops are durable.
   */
  mutate<T>(run: (tx: Tx) => T): Promise<T> {
    if (this.#closed) return Promise.reject(new Error("account store is closed"));
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ run, resolve: resolve as (v: unknown) => void, reject });
      if (!this.#writing) this.#drain();
    });
  }

  async #drain() {
    this.#writing = true;
    try {
      while (this.#queue.length) {
        const batch = this.#queue;
        this.#queue = [];
        await this.#commitBatch(batch);
      }
    } finally {
      this.#writing = false;
    }
  }

  async #commitBatch(batch: Pending[]) {
    const ops: Op[] = [];
    const deletes: Deno.KvKey[] = [];
    const sets: [Deno.KvKey, unknown][] = [];
    const early: [Deno.KvKey, Uint8Array][] = [];
    const events: ChangeEvent[] = [];
    const results: { p: Pending; ok: boolean; value: unknown }[] = [];
    const tx: Tx = {
      state: this.state,
      nextModSeq: () => ++this.state.modseq,
      push: (op, origin) => {
        this.state.apply(op, (rec) => this.#names.get(rec.id) ?? "");
        ops.push(op);
        events.push(...eventsOf(op, origin));
      },
      deleteWithCommit: (key) => deletes.push(key),
      setWithCommit: (key, value) => sets.push([key, value]),
      setNoLaterThanCommit: (key, value) => early.push([key, value]),
    };
    for (const p of batch) {
      const before = ops.length;
      try {
        results.push({ p, ok: true, value: p.run(tx) });
      } catch (e) {
        // A refused mutation must leave no ops behind; refusals happen before any push.
        if (ops.length !== before) log.error("store.partial-mutation", { account: this.id });
        results.push({ p, ok: false, value: e });
      }
    }
    // Search texts of earlier deliveries (PendingSearchTexts), for messages still here.
    for (const [blob, box] of this.#texts.take(textBytesPerCommit)) {
      if (!this.state.blobRefs.has(blob)) continue;
      splitChunks(box).forEach((part, i) => early.push([["text", this.id, blob, i], part]));
    }
    const stagedBytes = early.reduce((n, [k, v]) => k[0] === "staged" ? n + v.length : n, 0);
    if (ops.length || deletes.length || sets.length || early.length) {
      try {
        await this.#appendLog(ops, deletes, sets, early);
      } catch (e) {
        log.error("store.commit-failed", { account: this.id, error: e });
        // Memory is ahead of disk: rebuild it from what is durable, and refuse the whole batch.
        await this.#reload().catch((e2) => log.error("store.reload-failed", { error: e2 }));
        const err = new ProtocolError(
          "NO",
          "The mailbox store could not save the change; try again",
          // The cause lets the protocol layer tell a full disk (NO [OVERQUOTA], 452 4.3.1).
          // RFC 5530 §3: UNAVAILABLE, a temporary failure of a subsystem (the disk), not a
          // server bug; the client may retry.
          { imapCode: "UNAVAILABLE", userFault: false, cause: e },
        );
        for (const r of results) r.p.reject(err);
        return;
      }
    }
    if (stagedBytes) this.#staging.noteStaged(stagedBytes);
    for (const r of results) r.ok ? r.p.resolve(r.value) : r.p.reject(r.value);
    if (events.length) this.#notify(events);
    if (this.#logNext - this.#logFrom > this.#compactAfterEntries) {
      await this.#compact().catch((e) => log.warn("store.compact-failed", { error: e }));
    }
  }

  async #reload() {
    const fresh = await AccountStore.open(this.#kv, this.#blobs, this.id, this.#keys, {
      compactAfterEntries: this.#compactAfterEntries,
    });
    // Mailbox objects keep their identity: open sessions hold them (the selected mailbox).
    for (const k of this.state.mailboxes.keys()) {
      if (!fresh.state.mailboxes.has(k)) this.state.mailboxes.delete(k);
    }
    for (const [k, v] of fresh.state.mailboxes) {
      const old = this.state.mailboxes.get(k);
      if (!old) {
        this.state.mailboxes.set(k, v);
        continue;
      }
      old.rec = v.rec;
      old.name = v.name;
      old.uids = v.uids;
      old.expunged = v.expunged;
      old.byUid.clear();
      for (const [uid, m] of v.byUid) old.byUid.set(uid, m);
    }
    this.state.blobRefs.clear();
    for (const [k, v] of fresh.state.blobRefs) this.state.blobRefs.set(k, v);
    this.state.modseq = fresh.state.modseq;
    this.#logNext = fresh.#logNext;
    this.#logFrom = fresh.#logFrom;
    this.#gen = fresh.#gen;
    this.#names = fresh.#names;
    this.#notify([{ kind: "mailboxes" }]);
  }

  #notify(events: ChangeEvent[]) {
    for (const l of this.#listeners) {
      try {
        l(events);
      } catch (e) {
        log.error("store.listener-failed", { error: e });
      }
    }
  }

  /**
   * Appends ops to the change log: one log entry per atomic commit of at most
   * chunksPerCommit parts. Each entry is written only if its key is unused, so
   * a second writer of the same account (a bug) fails instead of overwriting.
   */
  async #appendLog(
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
        tx.check({ key: ["st", this.id, "log", n, 0], versionstamp: null });
        splitChunks(encodeOps(entry)).forEach((part, i) =>
          tx.set(["st", this.id, "log", n, i], part)
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
   * Writes a new snapshot and drops the log it replaces. The head names the
   * snapshot's chunk count, so chunks left by a compaction that crashed before
   * its head commit are never read as part of a later snapshot.
   */
  async #compact() {
    const gen = this.#gen + 1;
    const logFrom = this.#logNext;
    const snapshot = encodeOps([...this.state.snapshotOps()]);
    await deletePrefix(this.#kv, ["st", this.id, "snap", gen]);
    await setChunked(this.#kv, ["st", this.id, "snap", gen], snapshot);
    const res = await this.#kv.atomic()
      .set(["st", this.id, "head"], { gen, chunks: splitChunks(snapshot).length, logFrom })
      .commit();
    if (!res.ok) throw new Error("snapshot head commit was refused");
    const oldGen = this.#gen;
    this.#gen = gen;
    this.#logFrom = logFrom;
    await deletePrefix(this.#kv, ["st", this.id, "snap", oldGen]);
    // Everything below logFrom, including entries an earlier crash left behind.
    await deleteRange(this.#kv, ["st", this.id, "log", 0], ["st", this.id, "log", logFrom]);
  }

  /** Waits for queued mutations, then refuses new ones. */
  async close() {
    while (this.#writing || this.#queue.length) await new Promise((r) => setTimeout(r, 5));
    this.#closed = true;
    clearTimeout(this.#textFlush);
    await this.#writeTexts(await this.#texts.drain()).catch((e) =>
      log.warn("store.text-write-failed", { account: this.id, error: e })
    );
    this.#metaCache.clear();
    this.#rawCache.clear();
    this.#rawCacheSize = 0;
  }

  /** Writes search texts outside the writer (the store is closing); they name no state. */
  async #writeTexts(texts: [string, Uint8Array][]) {
    let tx = this.#kv.atomic();
    let bytes = 0;
    for (const [blob, box] of texts) {
      if (!this.state.blobRefs.has(blob)) continue;
      if (bytes + box.length > 500_000) {
        if (!(await tx.commit()).ok) throw new Error("search text commit was refused");
        tx = this.#kv.atomic();
        bytes = 0;
      }
      splitChunks(box).forEach((part, i) => tx.set(["text", this.id, blob, i], part));
      bytes += box.length + 100;
    }
    if (bytes && !(await tx.commit()).ok) throw new Error("search text commit was refused");
  }

  // --- messages ---

  /**
   * Seals, stores and analyses a message; returns what `add` needs. Runs
   * outside the writer so concurrent deliveries seal and fsync in parallel.
   * When the blob is staged (staging.ts), it and the metadata are not
   * written yet: the mutation that adds the message must pass the result to
   * {@linkcode commitPrepared}, which puts them in its commit.
   */
  async prepareMessage(raw: Uint8Array): Promise<PreparedMessage> {
    const sealed = await sealToRecipient(raw, this.#keys.recipient);
    const blob = await BlobStore.idOf(sealed);
    if (!this.#staging.shouldStage(sealed)) {
      await this.#blobs.put(sealed);
      await this.#writeMeta(blob, raw);
      return { blob, size: raw.length };
    }
    const { info, metaBox, textBox } = await this.#encryptMeta(blob, raw);
    const pending: [Deno.KvKey, Uint8Array][] = [];
    if (metaBox.length < chunkBytes && textBox.length < chunkBytes) {
      pending.push([["meta", this.id, blob, 0], metaBox], [["text", this.id, blob, 0], textBox]);
    } else {
      await setChunkedMany(this.#kv, [[["meta", this.id, blob], metaBox], [
        ["text", this.id, blob],
        textBox,
      ]]);
    }
    // After the metadata that names it: never staged before a record of it (blob GC).
    pending.push(...stagedEntries(blob, sealed));
    this.#cacheInfo(blob, info);
    return { blob, size: raw.length, pending };
  }

  /**
   * {@linkcode prepareMessage} for bytes already sealed to this account (a phone's copy of mail
   * it sent): stored as they are, so the blob keeps the id its sender computed.
   */
  async prepareSealed(sealed: Uint8Array): Promise<PreparedMessage> {
    const raw = await openSealed(sealed, this.#keys.identity);
    const blob = await this.#blobs.put(sealed);
    await this.#writeMeta(blob, raw);
    return { blob, size: raw.length };
  }

  /** A message's sealed bytes as stored (a phone fetching a body gets the age file itself). */
  sealed(blob: string): Promise<Uint8Array> {
    return this.#staging.get(blob);
  }

  /** Puts what {@linkcode prepareMessage} left pending into the commit of the mutation `tx`. */
  commitPrepared(tx: Tx, prepared: PreparedMessage) {
    for (const [key, value] of prepared.pending ?? []) tx.setNoLaterThanCommit(key, value);
  }

  /** Analyses a message and encrypts its metadata and search text for `blob`. */
  #encryptMeta(blob: string, raw: Uint8Array) {
    return this.#encryptAnalysed(blob, analyzeMessage(raw), searchableText(raw));
  }

  async #encryptAnalysed(blob: string, info: MessageInfo, text: ReturnType<typeof searchableText>) {
    // Both at once: each waits on WebCrypto's worker thread.
    const [metaBox, textBox] = await Promise.all([
      encryptJson(this.#keys.indexKey, info, `meta:${blob}`),
      encryptIndex(this.#keys.indexKey, encodeSearchText(text), `text:${blob}`),
    ]);
    return { info, metaBox, textBox };
  }

  async #writeMeta(blob: string, raw: Uint8Array) {
    const { info, metaBox, textBox } = await this.#encryptMeta(blob, raw);
    if (metaBox.length < chunkBytes && textBox.length < chunkBytes) {
      // The usual case: one chunk each, in one commit shared with concurrent writers (group commit).
      const ok = await groupCommitFor(this.#kv).commit({
        apply: (op) => {
          op.set(["meta", this.id, blob, 0], metaBox);
          op.set(["text", this.id, blob, 0], textBox);
        },
        mutations: 2,
        bytes: metaBox.length + textBox.length + 200,
      });
      if (!ok) throw new Error("metadata commit was refused");
    } else {
      await setChunkedMany(this.#kv, [
        [["meta", this.id, blob], metaBox],
        [["text", this.id, blob], textBox],
      ]);
    }
    this.#cacheInfo(blob, info);
  }

  #cacheInfo(blob: string, info: MessageInfo) {
    if (this.#metaCache.size >= metaCacheSize) {
      const first = this.#metaCache.keys().next().value;
      if (first !== undefined) this.#metaCache.delete(first);
    }
    this.#metaCache.set(blob, info);
  }

  /** The decrypted metadata of a message (ENVELOPE, BODYSTRUCTURE, headers). */
  async info(blob: string): Promise<MessageInfo> {
    const hit = this.#metaCache.get(blob);
    if (hit) return hit;
    const box = await getChunked(this.#kv, ["meta", this.id, blob]);
    if (box) {
      const info = await decryptJson<MessageInfo>(this.#keys.indexKey, box, `meta:${blob}`);
      this.#cacheInfo(blob, info);
      return info;
    }
    // Metadata missing (an older crash between blob and meta): rebuild it from the blob.
    const raw = await this.message(blob);
    const info = analyzeMessage(raw);
    this.#cacheInfo(blob, info);
    return info;
  }

  /**
   * Decrypts the metadata of many messages with one ordered scan instead of
   * many point reads, handing each to `each` (nothing is cached here).
   */
  async scanInfo(blobs: Iterable<string>, each: (blob: string, info: MessageInfo) => void) {
    const want = new Set(blobs);
    if (want.size === 0) return;
    if (want.size < 64) {
      for (const blob of want) each(blob, await this.info(blob));
      return;
    }
    // Decryptions run in parallel batches while the scan goes on.
    let batch: Promise<void>[] = [];
    const decrypt = (blob: string, box: Uint8Array) =>
      batch.push(
        decryptJson<MessageInfo>(this.#keys.indexKey, box, `meta:${blob}`).then((info) => {
          want.delete(blob);
          each(blob, info);
        }),
      );
    let current = "";
    let parts: Uint8Array[] = [];
    for await (
      const e of this.#kv.list<Uint8Array>({ prefix: ["meta", this.id] }, { batchSize: 500 })
    ) {
      const blob = e.key[2] as string;
      if (blob !== current) {
        if (parts.length) decrypt(current, joinChunks(parts));
        parts = [];
        current = blob;
        if (batch.length >= 256) {
          await Promise.all(batch);
          batch = [];
        }
      }
      if (want.has(blob)) parts.push(e.value);
    }
    if (parts.length) decrypt(current, joinChunks(parts));
    await Promise.all(batch);
    // Anything without stored metadata is rebuilt from its blob.
    for (const blob of [...want]) each(blob, await this.info(blob));
  }

  /**
   * Reads the searchable text of many messages in one ordered scan, with
   * decryption in parallel batches; `each` is called as texts arrive. Blobs
   * without stored text are not reported (callers fall back to {@linkcode text}).
   */
  async scanText(
    blobs: ReadonlySet<string>,
    each: (blob: string, text: SearchTextBytes) => void,
  ) {
    let batch: Promise<void>[] = [];
    const decrypt = (blob: string, box: Uint8Array) =>
      batch.push(
        decryptIndex(this.#keys.indexKey, box, `text:${blob}`).then((plain) =>
          each(blob, decodeSearchText(plain))
        ),
      );
    let current = "";
    let parts: Uint8Array[] = [];
    for await (
      const e of this.#kv.list<Uint8Array>({ prefix: ["text", this.id] }, { batchSize: 500 })
    ) {
      const blob = e.key[2] as string;
      if (blob !== current) {
        if (parts.length) decrypt(current, joinChunks(parts));
        parts = [];
        current = blob;
        if (batch.length >= 64) {
          await Promise.all(batch);
          batch = [];
        }
      }
      if (blobs.has(blob)) parts.push(e.value);
    }
    if (parts.length) decrypt(current, joinChunks(parts));
    await Promise.all(batch);
  }

  /** The decoded searchable text of a message. */
  async text(blob: string): Promise<SearchTextBytes> {
    const pending = this.#texts.plain(blob);
    if (pending) return decodeSearchText(pending);
    const box = await getChunked(this.#kv, ["text", this.id, blob]);
    if (box) {
      return decodeSearchText(await decryptIndex(this.#keys.indexKey, box, `text:${blob}`));
    }
    return searchableText(await this.message(blob));
  }

  /**
   * The plaintext message: opens the sealed blob. Recently opened messages
   * are kept in a bounded in-memory cache (plaintext exists only in memory,
   * and only while the account is unlocked), as a disk server leans on the
   * page cache.
   */
  async message(blob: string): Promise<Uint8Array> {
    const hit = this.#rawCache.get(blob);
    if (hit) {
      this.#rawCache.delete(blob);
      this.#rawCache.set(blob, hit);
      return hit;
    }
    // A blob delivered recently may still be staged in KV (staging.ts): the same age bytes.
    let sealed: Uint8Array;
    try {
      sealed = await this.#staging.get(blob);
    } catch (e) {
      // Expunged by another session while this one still shows the message: RFC 2180 §4.1.2
      // lets the server refuse the FETCH; RFC 9051 §7.1 names the reason EXPUNGEISSUED.
      if (e instanceof Deno.errors.NotFound && !this.state.blobRefs.has(blob)) {
        throw new ProtocolError("NO", "A message was expunged by another session", {
          imapCode: "EXPUNGEISSUED",
        });
      }
      throw e;
    }
    const raw = await openSealed(sealed, this.#keys.identity);
    if (raw.length <= rawCacheBytes / 16) {
      this.#rawCache.set(blob, raw);
      this.#rawCacheSize += raw.length;
      while (this.#rawCacheSize > rawCacheBytes) {
        const [k, v] = this.#rawCache.entries().next().value!;
        this.#rawCache.delete(k);
        this.#rawCacheSize -= v.length;
      }
    }
    return raw;
  }

  /** Deletes blobs and metadata no message references any more (after expunges). */
  async collectUnreferenced(blobs: Iterable<string>) {
    for (const blob of blobs) {
      if (this.state.blobRefs.has(blob)) continue;
      this.#metaCache.delete(blob);
      this.#texts.forget(blob);
      const cached = this.#rawCache.get(blob);
      if (cached) {
        this.#rawCache.delete(blob);
        this.#rawCacheSize -= cached.length;
      }
      // The blob first, its metadata last: a crash in between leaves orphaned metadata, which
      // the next unlock removes, never a blob that nothing names.
      await this.#staging.remove(blob);
      await deletePrefix(this.#kv, ["meta", this.id, blob]);
      await deletePrefix(this.#kv, ["text", this.id, blob]);
    }
  }

  /**
   * Removes metadata of messages that never made it into the index (a crash
   * between writing a message and committing it). Call only before any
   * message is being added (right after unlock): an APPEND in flight also has
   * metadata without an index entry. Their staged blobs go too (a blob id is
   * sealed to one account); blob files are left to
   * {@linkcode BlobStore.collectUnreferenced}, which knows every account.
   */
  async collectOrphanedMetadata(): Promise<number> {
    const arriving = new Set<string>();
    for await (const e of this.#kv.list<ArrivalRecord>({ prefix: ["arrival", this.id] })) {
      arriving.add(e.value.blob);
    }
    const orphans = new Set<string>();
    for await (const e of this.#kv.list({ prefix: ["meta", this.id] })) {
      const blob = e.key[2] as string;
      if (!this.state.blobRefs.has(blob) && !arriving.has(blob)) orphans.add(blob);
    }
    for (const blob of orphans) {
      await deletePrefix(this.#kv, ["staged", blob]);
      await deletePrefix(this.#kv, ["meta", this.id, blob]);
      await deletePrefix(this.#kv, ["text", this.id, blob]);
    }
    if (orphans.size) log.info("store.orphans-removed", { account: this.id, count: orphans.size });
    return orphans.size;
  }

  /**
   * Moves messages that arrived while the account was locked (sealed blob plus
   * an arrival record, see deliver.ts) into INBOX. Idempotent: a blob already
   * in the account is not added twice, so a crash mid-way duplicates nothing.
   */
  ingestArrivals(): Promise<number> {
    // Single flight: deliveries arriving together would otherwise each scan and open every
    // pending arrival. A call during a run asks for one more run, which sees what it wrote.
    if (this.#ingesting) {
      this.#ingestAgain = true;
      return this.#ingesting;
    }
    const run = (async () => {
      let n = 0;
      do {
        this.#ingestAgain = false;
        n += await this.#ingestOnce();
      } while (this.#ingestAgain);
      this.#ingestedOnce = true;
      return n;
    })();
    this.#ingesting = run;
    run.finally(() => {
      if (this.#ingesting === run) this.#ingesting = null;
    }).catch(() => {});
    return run;
  }

  async #ingestOnce(): Promise<number> {
    let n = 0;
    let batch: Deno.KvEntry<ArrivalRecord>[] = [];
    const flush = async () => {
      n += await this.#ingestBatch(batch);
      batch = [];
    };
    for await (const e of this.#kv.list<ArrivalRecord>({ prefix: ["arrival", this.id] })) {
      batch.push(e);
      if (batch.length >= ingestBatchSize) await flush();
    }
    if (batch.length) await flush();
    return n;
  }

  /** Opens and analyses arrivals in parallel, then moves them all into INBOX in one mutation. */
  async #ingestBatch(batch: Deno.KvEntry<ArrivalRecord>[]): Promise<number> {
    const prepared = await Promise.all(batch.map(async (e) => {
      try {
        return await this.#prepareFromBlob(e.value.blob);
      } catch (err) {
        log.error("store.arrival-unreadable", { account: this.id, blob: e.value.blob, error: err });
        return null;
      }
    }));
    return await this.mutate((tx) => {
      let n = 0;
      batch.forEach((e, i) => {
        const p = prepared[i];
        if (!p) return;
        tx.deleteWithCommit(e.key);
        n++;
        if (this.state.blobRefs.has(p.blob)) return;
        this.#pushInboxAdd(tx, p, e.value.date);
      });
      return n;
    });
  }

  /**
   * Adds a message delivered while the account is unlocked straight to INBOX,
   * its plaintext in hand: no arrival record, no second decryption. `sealing`
   * is `raw` sealed to this account (or that sealing under way). A small
   * sealed blob is staged in KV in the index commit itself (staging.ts), with
   * the metadata: the `250` follows one durable commit holding the sealed
   * bytes and their record. A larger one is written as a file in parallel
   * with the analysis, and the index commit waits for it. The search text
   * is made after the commit and stored with a later one (PendingSearchTexts).
   */
  async addDelivered(
    sealing: Uint8Array | Promise<Uint8Array>,
    raw: Uint8Array,
    date: number,
  ): Promise<string> {
    const sealed = await sealing;
    const blob = await BlobStore.idOf(sealed);
    const staged = this.#staging.shouldStage(sealed);
    // The metadata is small: encrypted in place, no wait on WebCrypto's worker thread. The
    // search text is not needed for durability: it is made after the reply (PendingSearchTexts).
    const info = analyzeMessage(raw);
    const metaBox = encryptJsonSync(this.#keys.indexKey, info, `meta:${blob}`);
    await Promise.all([
      staged ? null : this.#blobs.put(sealed),
      // Mail that arrived while the account was locked goes first, so UIDs follow arrival order
      // (an unlock by SMTP AUTH does not ingest, unlike an IMAP login).
      this.#ingestedOnce ? null : this.ingestArrivals(),
    ]);
    // Metadata of one chunk rides in the index commit: one KV fsync per delivery batch.
    const small = metaBox.length < chunkBytes;
    if (!small) await setChunkedMany(this.#kv, [[["meta", this.id, blob], metaBox]]);
    const prepared = { blob, size: raw.length };
    const committed = this.mutate((tx) => {
      if (this.state.blobRefs.has(blob)) return;
      if (small) tx.setNoLaterThanCommit(["meta", this.id, blob, 0], metaBox);
      // After the metadata, which names the blob: early sets are committed in order, so the blob
      // is never staged before a record of it (blob garbage collection relies on it).
      if (staged) {
        for (const [k, v] of stagedEntries(blob, sealed)) tx.setNoLaterThanCommit(k, v);
      }
      this.#pushInboxAdd(tx, prepared, date);
    });
    // The commit is under way and this thread would wait for its fsync: make the next message's
    // age header now (sealing then only encrypts the payload).
    sealAheadFor(this.#keys.recipient);
    await committed;
    this.#texts.add(blob, raw);
    this.#cacheInfo(blob, info);
    return blob;
  }

  #pushInboxAdd(tx: Tx, prepared: { blob: string; size: number }, date: number) {
    const inbox = this.state.byName("INBOX");
    if (!inbox) throw new Error("the account has no INBOX");
    tx.push({
      op: "add",
      mb: inbox.id,
      msg: AccountStore.newRecord(inbox.rec.uidNext, prepared, [], date, tx.nextModSeq()),
    });
  }

  async #prepareFromBlob(blob: string): Promise<{ blob: string; size: number }> {
    const raw = await this.message(blob);
    await this.#writeMeta(blob, raw);
    return { blob, size: raw.length };
  }

  // --- bulk import (home/import) ---

  /**
   * {@linkcode prepareMessage} for many messages (`hearth import`): sealed and written in
   * parallel, and their metadata packed into a few KV commits instead of one per message.
   */
  async prepareMany(raws: Uint8Array[]): Promise<{ blob: string; size: number }[]> {
    const out = await Promise.all(raws.map(async (raw) => {
      const sealed = await sealToRecipient(raw, this.#keys.recipient);
      return { blob: await this.#blobs.put(sealed), size: raw.length };
    }));
    const values: [Deno.KvKey, Uint8Array][] = [];
    await Promise.all(out.map(async ({ blob }, i) => {
      const raw = raws[i];
      const [metaBox, textBox] = await Promise.all([
        encryptJson(this.#keys.indexKey, analyzeMessage(raw), `meta:${blob}`),
        encryptIndex(this.#keys.indexKey, encodeSearchText(searchableText(raw)), `text:${blob}`),
      ]);
      values.push([["meta", this.id, blob], metaBox], [["text", this.id, blob], textBox]);
    }));
    // Deno KV: at most 1,000 mutations and 800 KiB per atomic commit.
    let tx = this.#kv.atomic();
    let count = 0;
    let bytes = 0;
    const flush = async () => {
      if (count && !(await tx.commit()).ok) throw new Error("KV commit failed");
      tx = this.#kv.atomic();
      count = bytes = 0;
    };
    for (const [prefix, data] of values) {
      for (const [i, chunk] of splitChunks(data).entries()) {
        if (count >= 500 || bytes + chunk.length > 600_000) await flush();
        tx.set([...prefix, i], chunk);
        count++;
        bytes += chunk.length + 100;
      }
    }
    await flush();
    return out;
  }

  /** Builds a message record for `add`. */
  static newRecord(
    uid: number,
    prepared: { blob: string; size: number },
    flags: string[],
    date: number,
    modseq: number,
  ): MessageRecord {
    return {
      uid,
      blob: prepared.blob,
      flags: [...new Set(flags)].sort(),
      modseq,
      size: prepared.size,
      date,
      saved: Date.now(),
    };
  }
}

function eventsOf(op: Op, origin?: number): ChangeEvent[] {
  switch (op.op) {
    case "add":
      return [{ kind: "add", mb: op.mb, uid: op.msg.uid }];
    case "flags":
      return op.changes.map(([uid]) => ({ kind: "flags", mb: op.mb, uid, origin }));
    case "expunge":
      return [{ kind: "expunge", mb: op.mb, uids: op.uids, origin }];
    default:
      return [{ kind: "mailboxes" }];
  }
}
