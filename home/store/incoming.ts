/**
 * How new messages enter one unlocked account: sealed, stored and analysed
 * outside the writer, so that concurrent deliveries seal and fsync in
 * parallel, then added in a mutation. The ways in: mail delivered while the
 * account is unlocked (`addDelivered`), arrivals left while it was locked
 * (`ingestArrivals`, see deliver.ts), an APPEND or a phone's sent copy
 * (`prepareMessage`, `prepareSealed`) and `hearth import` (`prepareMany`).
 * Each writes the sealed blob (or stages it, staging.ts), the encrypted
 * metadata and the search text that message_meta.ts reads back.
 *
 * @example
 * ```ts
 * const incoming = new IncomingMessages(kv, blobs, staging, meta, store);
 * const blob = await incoming.addDelivered(sealToRecipient(raw, recipient), raw, Date.now());
 * ```
 */
import type { MessageInfo } from "../../src/mime/message_info.ts";
import { analyzeMessage } from "../../src/mime/analyze.ts";
import { searchableText } from "../../src/mime/searchable_text.ts";
import { openSealed, sealToRecipient } from "../../src/crypto/age.ts";
import { sealAheadFor } from "../../src/crypto/age_seal.ts";
import { encryptIndex, encryptJson, encryptJsonSync } from "../../src/crypto/index_key.ts";
import { log } from "../../src/log.ts";
import { BlobStore, packKey, type PackLocation } from "./blobs.ts";
import { groupCommitFor } from "./group_commit.ts";
import { type StagedBlobs, stagedEntries } from "./staging.ts";
import { encodeSearchText } from "./search_text.ts";
import { chunkBytes, setChunkedMany, splitChunks } from "./chunks.ts";
import type { MessageMeta } from "./message_meta.ts";
import type { MessageRecord } from "./state.ts";
import type { AccountStore, Tx } from "./account_store.ts";

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

/** Arrivals opened in parallel and indexed in one mutation (one log commit) at a time. */
const ingestBatchSize = 32;

/** What adding messages needs of its account's store. */
export type IncomingTarget = Pick<AccountStore, "id" | "state" | "keys" | "mutate" | "message">;

/** Builds a message record for `add`. */
export function newMessageRecord(
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

export class IncomingMessages {
  readonly #kv: Deno.Kv;
  readonly #blobs: BlobStore;
  readonly #staging: StagedBlobs;
  readonly #meta: MessageMeta;
  readonly #store: IncomingTarget;
  #ingesting: Promise<number> | null = null;
  #ingestAgain = false;
  /** True once an ingest has run since the store opened: no older arrival is left waiting. */
  #ingestedOnce = false;

  constructor(
    kv: Deno.Kv,
    blobs: BlobStore,
    staging: StagedBlobs,
    meta: MessageMeta,
    store: IncomingTarget,
  ) {
    this.#kv = kv;
    this.#blobs = blobs;
    this.#staging = staging;
    this.#meta = meta;
    this.#store = store;
  }

  /**
   * Seals, stores and analyses a message; returns what `add` needs. Runs
   * outside the writer so concurrent deliveries seal and fsync in parallel.
   * When the blob is staged (staging.ts), it and the metadata are not
   * written yet: the mutation that adds the message must pass the result to
   * {@linkcode AccountStore.commitPrepared}, which puts them in its commit.
   */
  async prepareMessage(raw: Uint8Array): Promise<PreparedMessage> {
    const id = this.#store.id;
    const sealed = await sealToRecipient(raw, this.#store.keys.recipient);
    const blob = await BlobStore.idOf(sealed);
    if (!this.#staging.shouldStage(sealed)) {
      await this.#blobs.put(sealed);
      await this.#writeMeta(blob, raw);
      return { blob, size: raw.length };
    }
    const { info, metaBox, textBox } = await this.#encryptMeta(blob, raw);
    const pending: [Deno.KvKey, Uint8Array][] = [];
    if (metaBox.length < chunkBytes && textBox.length < chunkBytes) {
      pending.push([["meta", id, blob, 0], metaBox], [["text", id, blob, 0], textBox]);
    } else {
      await setChunkedMany(this.#kv, [[["meta", id, blob], metaBox], [
        ["text", id, blob],
        textBox,
      ]]);
    }
    // After the metadata that names it: never staged before a record of it (blob GC).
    pending.push(...stagedEntries(blob, sealed));
    this.#meta.remember(blob, info);
    return { blob, size: raw.length, pending };
  }

  /**
   * {@linkcode prepareMessage} for bytes already sealed to this account (a phone's copy of mail
   * it sent): stored as they are, so the blob keeps the id its sender computed.
   */
  async prepareSealed(sealed: Uint8Array): Promise<PreparedMessage> {
    const raw = await openSealed(sealed, this.#store.keys.identity);
    const blob = await this.#blobs.put(sealed);
    await this.#writeMeta(blob, raw);
    return { blob, size: raw.length };
  }

  /**
   * {@linkcode prepareMessage} for many messages (`hearth import`): sealed and written in
   * parallel, and their metadata packed into a few KV commits instead of one per message.
   */
  async prepareMany(raws: Uint8Array[]): Promise<{ blob: string; size: number }[]> {
    const { id, keys } = this.#store;
    const out = await Promise.all(raws.map(async (raw) => {
      const sealed = await sealToRecipient(raw, keys.recipient);
      return { blob: await this.#blobs.put(sealed), size: raw.length };
    }));
    const values: [Deno.KvKey, Uint8Array][] = [];
    await Promise.all(out.map(async ({ blob }, i) => {
      const raw = raws[i];
      const [metaBox, textBox] = await Promise.all([
        encryptJson(keys.indexKey, analyzeMessage(raw), `meta:${blob}`),
        encryptIndex(keys.indexKey, encodeSearchText(searchableText(raw)), `text:${blob}`),
      ]);
      values.push([["meta", id, blob], metaBox], [["text", id, blob], textBox]);
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

  /**
   * Adds a message delivered while the account is unlocked straight to INBOX,
   * its plaintext in hand: no arrival record, no second decryption. `sealing`
   * is `raw` sealed to this account (or that sealing under way). A small
   * sealed blob is staged in KV in the index commit itself (staging.ts), with
   * the metadata: the `250` follows one durable commit holding the sealed
   * bytes and their record. A larger one is written as a file in parallel
   * with the analysis, and the index commit waits for it. The search text
   * is made after the commit and stored with a later one (PendingSearchTexts). A delivery from
   * the journal (journal.ts) passes its `marker` and its blob's `location` in the journal, both
   * set in the same commit: the blob is neither staged nor written here.
   */
  async addDelivered(
    sealing: Uint8Array | Promise<Uint8Array>,
    raw: Uint8Array,
    date: number,
    journaled?: { marker: Deno.KvKey; location: PackLocation },
  ): Promise<string> {
    const { id, keys, state } = this.#store;
    const sealed = await sealing;
    const blob = await BlobStore.idOf(sealed);
    const staged = !journaled && this.#staging.shouldStage(sealed);
    // The metadata is small: encrypted in place, no wait on WebCrypto's worker thread. The
    // search text is not needed for durability: it is made after the reply (PendingSearchTexts).
    const info = analyzeMessage(raw);
    const metaBox = encryptJsonSync(keys.indexKey, info, `meta:${blob}`);
    await Promise.all([
      staged || journaled ? null : this.#blobs.put(sealed),
      // Mail that arrived while the account was locked goes first, so UIDs follow arrival order
      // (an unlock by SMTP AUTH does not ingest, unlike an IMAP login).
      this.#ingestedOnce ? null : this.ingestArrivals(),
    ]);
    // Metadata of one chunk rides in the index commit: one KV fsync per delivery batch.
    const small = metaBox.length < chunkBytes;
    if (!small) await setChunkedMany(this.#kv, [[["meta", id, blob], metaBox]]);
    const prepared = { blob, size: raw.length };
    const committed = this.#store.mutate((tx) => {
      if (journaled) {
        tx.setWithCommit(journaled.marker, true);
        tx.setWithCommit(packKey(blob), journaled.location);
      }
      if (state.blobRefs.has(blob)) return;
      if (small) tx.setNoLaterThanCommit(["meta", id, blob, 0], metaBox);
      // After the metadata, which names the blob: early sets are committed in order, so the blob
      // is never staged before a record of it (blob garbage collection relies on it).
      if (staged) {
        for (const [k, v] of stagedEntries(blob, sealed)) tx.setNoLaterThanCommit(k, v);
      }
      this.#pushInboxAdd(tx, prepared, date);
    });
    // The commit is under way and this thread would wait for its fsync: make the next message's
    // age header now (sealing then only encrypts the payload).
    sealAheadFor(keys.recipient);
    await committed;
    this.#meta.addText(blob, raw);
    this.#meta.remember(blob, info);
    return blob;
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
    for await (const e of this.#kv.list<ArrivalRecord>({ prefix: ["arrival", this.#store.id] })) {
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
        log.error("store.arrival-unreadable", {
          account: this.#store.id,
          blob: e.value.blob,
          error: err,
        });
        return null;
      }
    }));
    return await this.#store.mutate((tx) => {
      let n = 0;
      batch.forEach((e, i) => {
        const p = prepared[i];
        if (!p) return;
        tx.deleteWithCommit(e.key);
        n++;
        if (this.#store.state.blobRefs.has(p.blob)) return;
        this.#pushInboxAdd(tx, p, e.value.date);
      });
      return n;
    });
  }

  #pushInboxAdd(tx: Tx, prepared: { blob: string; size: number }, date: number) {
    const inbox = this.#store.state.byName("INBOX");
    if (!inbox) throw new Error("the account has no INBOX");
    tx.push({
      op: "add",
      mb: inbox.id,
      msg: newMessageRecord(inbox.rec.uidNext, prepared, [], date, tx.nextModSeq()),
    });
  }

  async #prepareFromBlob(blob: string): Promise<{ blob: string; size: number }> {
    const raw = await this.#store.message(blob);
    await this.#writeMeta(blob, raw);
    return { blob, size: raw.length };
  }

  /** Analyses a message and encrypts its metadata and search text for `blob`. */
  #encryptMeta(blob: string, raw: Uint8Array) {
    return this.#encryptAnalysed(blob, analyzeMessage(raw), searchableText(raw));
  }

  async #encryptAnalysed(blob: string, info: MessageInfo, text: ReturnType<typeof searchableText>) {
    const indexKey = this.#store.keys.indexKey;
    // Both at once: each waits on WebCrypto's worker thread.
    const [metaBox, textBox] = await Promise.all([
      encryptJson(indexKey, info, `meta:${blob}`),
      encryptIndex(indexKey, encodeSearchText(text), `text:${blob}`),
    ]);
    return { info, metaBox, textBox };
  }

  async #writeMeta(blob: string, raw: Uint8Array) {
    const id = this.#store.id;
    const { info, metaBox, textBox } = await this.#encryptMeta(blob, raw);
    if (metaBox.length < chunkBytes && textBox.length < chunkBytes) {
      // The usual case: one chunk each, in one commit shared with concurrent writers (group commit).
      const ok = await groupCommitFor(this.#kv).commit({
        apply: (op) => {
          op.set(["meta", id, blob, 0], metaBox);
          op.set(["text", id, blob, 0], textBox);
        },
        mutations: 2,
        bytes: metaBox.length + textBox.length + 200,
      });
      if (!ok) throw new Error("metadata commit was refused");
    } else {
      await setChunkedMany(this.#kv, [
        [["meta", id, blob], metaBox],
        [["text", id, blob], textBox],
      ]);
    }
    this.#meta.remember(blob, info);
  }
}
