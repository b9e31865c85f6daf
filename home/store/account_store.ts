/**
 * One account's store while it is unlocked: the in-memory state, its single
 * writer, the change log in Deno KV (change_log.ts), the sealed blobs and the
 * encrypted per-message metadata (message_meta.ts). New messages come in
 * through incoming.ts; this class is the face the rest of Hearth uses.
 *
 * Every mutation goes through {@linkcode AccountStore.mutate}: mutations that
 * arrive while a commit is in flight are applied together and committed in
 * one KV commit (group commit); their promises resolve only after it is
 * durable, and only then are sessions notified.
 */
import type { MessageInfo } from "../../src/mime/message_info.ts";
import { openSealed } from "../../src/crypto/age.ts";
import { decryptIndex, encryptIndex } from "../../src/crypto/index_key.ts";
import { log } from "../../src/log.ts";
import { limits } from "../../src/limits.ts";
import { ProtocolError } from "../../src/errors.ts";
import { type BlobStore, packKey, type PackLocation } from "./blobs.ts";
import { StagedBlobs } from "./staging.ts";
import { ChangeLog } from "./change_log.ts";
import { MessageMeta } from "./message_meta.ts";
import { PlaintextCache } from "./plaintext_cache.ts";
import type { SearchTextBytes } from "./search_text.ts";
import {
  type ArrivalRecord,
  IncomingMessages,
  newMessageRecord,
  type PreparedMessage,
} from "./incoming.ts";
import { AccountState, type MailboxRecord, type Op } from "./state.ts";
import { deletePrefix } from "./chunks.ts";

/** What sessions hear after a commit. `origin` is the session that caused it, if any. */
export type ChangeEvent =
  | { kind: "add"; mb: string; uid: number }
  | { kind: "flags"; mb: string; uid: number; origin?: number }
  | { kind: "expunge"; mb: string; uids: number[]; origin?: number }
  | { kind: "mailboxes" };

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
/** How long encrypted search texts wait for a commit to ride in before they get their own. */
const textFlushMs = 50;
/** Search-text bytes at most added to one commit. */
const textBytesPerCommit = 256 * 1024;

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
  #log: ChangeLog;
  #names = new Map<string, string>();
  #queue: Pending[] = [];
  #writing = false;
  #listeners = new Set<Listener>();
  #closed = false;
  readonly #compactAfterEntries: number;
  readonly #staging: StagedBlobs;
  readonly #meta: MessageMeta;
  readonly #plaintext = new PlaintextCache(limits.messageCacheBytes);
  readonly #incoming: IncomingMessages;
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
    this.#log = new ChangeLog(kv, id);
    this.#compactAfterEntries = opts.compactAfterEntries ?? 2000;
    this.#staging = StagedBlobs.for(kv, blobs);
    this.#meta = new MessageMeta(kv, this, () => this.#flushTextsSoon());
    this.#incoming = new IncomingMessages(kv, blobs, this.#staging, this.#meta, this);
  }

  /** Search texts ride in the next commit; when none comes soon, an empty mutation brings one. */
  #flushTextsSoon() {
    if (this.#closed || this.#textFlush !== undefined) return;
    this.#textFlush = setTimeout(() => {
      this.#textFlush = undefined;
      if (this.#closed || !this.#meta.textsReady) return;
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
    const ops = await this.#log.load();
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
    early.push(...this.#meta.textsForCommit(textBytesPerCommit));
    const stagedBytes = early.reduce((n, [k, v]) => k[0] === "staged" ? n + v.length : n, 0);
    if (ops.length || deletes.length || sets.length || early.length) {
      try {
        await this.#log.append(ops, deletes, sets, early);
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
    // Texts left over (a burst's, made at once when it ended) get the next commit soon, not
    // whenever the next mail comes: until then they hold memory, and they would be written
    // during that mail's burst, sharing the disk with its journal syncs.
    if (this.#meta.textsReady) this.#flushTextsSoon();
    if (events.length) this.#notify(events);
    if (this.#log.entries > this.#compactAfterEntries) {
      await this.#log.compact(this.state.snapshotOps()).catch((e) =>
        log.warn("store.compact-failed", { error: e })
      );
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
    this.#log = fresh.#log;
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

  /** Waits for queued mutations, then refuses new ones. */
  async close() {
    while (this.#writing || this.#queue.length) await new Promise((r) => setTimeout(r, 5));
    this.#closed = true;
    clearTimeout(this.#textFlush);
    await this.#meta.writeTexts().catch((e) =>
      log.warn("store.text-write-failed", { account: this.id, error: e })
    );
    this.#meta.clear();
    this.#plaintext.clear();
  }

  // --- messages ---

  /**
   * Seals, stores and analyses a message; returns what `add` needs. The
   * mutation that adds it must pass the result to {@linkcode commitPrepared}
   * (see {@linkcode IncomingMessages.prepareMessage}).
   */
  prepareMessage(raw: Uint8Array): Promise<PreparedMessage> {
    return this.#incoming.prepareMessage(raw);
  }

  /**
   * {@linkcode prepareMessage} for bytes already sealed to this account (a phone's copy of mail
   * it sent): stored as they are, so the blob keeps the id its sender computed.
   */
  prepareSealed(sealed: Uint8Array): Promise<PreparedMessage> {
    return this.#incoming.prepareSealed(sealed);
  }

  /** {@linkcode prepareMessage} for many messages (`hearth import`), in a few KV commits. */
  prepareMany(raws: Uint8Array[]): Promise<{ blob: string; size: number }[]> {
    return this.#incoming.prepareMany(raws);
  }

  /** Puts what {@linkcode prepareMessage} left pending into the commit of the mutation `tx`. */
  commitPrepared(tx: Tx, prepared: PreparedMessage) {
    for (const [key, value] of prepared.pending ?? []) tx.setNoLaterThanCommit(key, value);
  }

  /**
   * Adds a message delivered while the account is unlocked straight to INBOX,
   * its plaintext in hand (see {@linkcode IncomingMessages.addDelivered}).
   * `sealing` is `raw` sealed to this account (or that sealing under way); `journaled`, what a
   * delivery from the journal (journal.ts) adds.
   */
  addDelivered(
    sealing: Uint8Array | Promise<Uint8Array>,
    raw: Uint8Array,
    date: number,
    journaled?: { marker: Deno.KvKey; location: PackLocation },
  ): Promise<string> {
    return this.#incoming.addDelivered(sealing, raw, date, journaled);
  }

  /**
   * Moves messages that arrived while the account was locked (sealed blob plus
   * an arrival record, see deliver.ts) into INBOX. Idempotent: a blob already
   * in the account is not added twice, so a crash mid-way duplicates nothing.
   */
  ingestArrivals(): Promise<number> {
    return this.#incoming.ingestArrivals();
  }

  /** A message's sealed bytes as stored (a phone fetching a body gets the age file itself). */
  sealed(blob: string): Promise<Uint8Array> {
    return this.#staging.get(blob);
  }

  /** The decrypted metadata of a message (ENVELOPE, BODYSTRUCTURE, headers). */
  info(blob: string): Promise<MessageInfo> {
    return this.#meta.info(blob);
  }

  /**
   * Decrypts the metadata of many messages with one ordered scan instead of
   * many point reads, handing each to `each` (nothing is cached here).
   */
  scanInfo(blobs: Iterable<string>, each: (blob: string, info: MessageInfo) => void) {
    return this.#meta.scanInfo(blobs, each);
  }

  /**
   * Reads the searchable text of many messages in one ordered scan; `each` is
   * called as texts arrive. Blobs without stored text are not reported
   * (callers fall back to {@linkcode text}).
   */
  scanText(blobs: ReadonlySet<string>, each: (blob: string, text: SearchTextBytes) => void) {
    return this.#meta.scanText(blobs, each);
  }

  /** The decoded searchable text of a message. */
  text(blob: string): Promise<SearchTextBytes> {
    return this.#meta.text(blob);
  }

  /**
   * The plaintext message: opens the sealed blob. Recently opened messages
   * are kept in a bounded in-memory cache (plaintext_cache.ts).
   */
  async message(blob: string): Promise<Uint8Array> {
    const hit = this.#plaintext.get(blob);
    if (hit) return hit;
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
    return this.#plaintext.add(blob, await openSealed(sealed, this.#keys.identity));
  }

  /** Deletes blobs and metadata no message references any more (after expunges). */
  async collectUnreferenced(blobs: Iterable<string>) {
    for (const blob of blobs) {
      if (this.state.blobRefs.has(blob)) continue;
      this.#meta.forget(blob);
      this.#plaintext.delete(blob);
      // The blob first, its metadata last: a crash in between leaves orphaned metadata, which
      // the next unlock removes, never a blob that nothing names.
      await this.#staging.remove(blob);
      await this.#meta.remove(blob);
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
      await this.#kv.delete(packKey(blob));
      await this.#meta.remove(blob);
    }
    if (orphans.size) log.info("store.orphans-removed", { account: this.id, count: orphans.size });
    return orphans.size;
  }

  /** Builds a message record for `add`. */
  static readonly newRecord: typeof newMessageRecord = newMessageRecord;
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
