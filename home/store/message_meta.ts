/**
 * Reading what one account knows of each message besides its sealed blob:
 * the encrypted metadata (`["meta", account, blob, i]`: ENVELOPE,
 * BODYSTRUCTURE, headers) and search text (`["text", account, blob, i]`),
 * with a bounded cache of decrypted metadata and the search texts of recent
 * deliveries that are not stored yet (`PendingSearchTexts`). Both are
 * rebuilt from the message when missing. Writing them is `incoming.ts`'s.
 *
 * @example
 * ```ts
 * const meta = new MessageMeta(kv, store, flushSoon);
 * const info = await meta.info(blob);
 * await meta.scanText(blobs, (blob, text) => index(blob, text.body));
 * ```
 */
import type { MessageInfo } from "../../src/mime/message_info.ts";
import { analyzeMessage } from "../../src/mime/analyze.ts";
import { searchableText } from "../../src/mime/searchable_text.ts";
import { decryptIndex, decryptJson, encryptIndex } from "../../src/crypto/index_key.ts";
import { deletePrefix, getChunked, joinChunks, splitChunks } from "./chunks.ts";
import { decodeSearchText, PendingSearchTexts, type SearchTextBytes } from "./search_text.ts";
import type { AccountStore } from "./account_store.ts";

/** Full metadata entries kept per account (the IMAP layer keeps its own compact form). */
const metaCacheSize = 2000;

/** What reading metadata needs of its account's store. */
export type MetaSource = Pick<AccountStore, "id" | "state" | "keys" | "message">;

export class MessageMeta {
  readonly #kv: Deno.Kv;
  readonly #store: MetaSource;
  readonly #cache = new Map<string, MessageInfo>();
  readonly #texts: PendingSearchTexts;

  /** `onTextsReady` is called when encrypted search texts wait for a commit. */
  constructor(kv: Deno.Kv, store: MetaSource, onTextsReady: () => void) {
    this.#kv = kv;
    this.#store = store;
    this.#texts = new PendingSearchTexts(
      (blob, plain) => encryptIndex(store.keys.indexKey, plain, `text:${blob}`),
      onTextsReady,
    );
  }

  /** Keeps the decrypted metadata of a message just written or read. */
  remember(blob: string, info: MessageInfo) {
    if (this.#cache.size >= metaCacheSize) {
      const first = this.#cache.keys().next().value;
      if (first !== undefined) this.#cache.delete(first);
    }
    this.#cache.set(blob, info);
  }

  /** The decrypted metadata of a message (ENVELOPE, BODYSTRUCTURE, headers). */
  async info(blob: string): Promise<MessageInfo> {
    const hit = this.#cache.get(blob);
    if (hit) return hit;
    const box = await getChunked(this.#kv, ["meta", this.#store.id, blob]);
    if (box) {
      const info = await decryptJson<MessageInfo>(this.#store.keys.indexKey, box, `meta:${blob}`);
      this.remember(blob, info);
      return info;
    }
    // Metadata missing (an older crash between blob and meta): rebuild it from the blob.
    const raw = await this.#store.message(blob);
    const info = analyzeMessage(raw);
    this.remember(blob, info);
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
    await this.#scanChunks(
      "meta",
      want,
      256,
      (blob, box) =>
        decryptJson<MessageInfo>(this.#store.keys.indexKey, box, `meta:${blob}`).then((info) => {
          want.delete(blob);
          each(blob, info);
        }),
    );
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
    await this.#scanChunks(
      "text",
      blobs,
      64,
      (blob, box) =>
        decryptIndex(this.#store.keys.indexKey, box, `text:${blob}`).then((plain) =>
          each(blob, decodeSearchText(plain))
        ),
    );
  }

  /**
   * One ordered scan of the account's chunked `meta` or `text` records: each wanted blob's
   * chunks joined and handed to `open`, which runs in parallel with the scan in batches of
   * `batch` (waited for before the next batch starts).
   */
  async #scanChunks(
    kind: "meta" | "text",
    wanted: ReadonlySet<string>,
    batch: number,
    open: (blob: string, box: Uint8Array) => Promise<void>,
  ) {
    let pending: Promise<void>[] = [];
    let current = "";
    let parts: Uint8Array[] = [];
    for await (
      const e of this.#kv.list<Uint8Array>({ prefix: [kind, this.#store.id] }, { batchSize: 500 })
    ) {
      const blob = e.key[2] as string;
      if (blob !== current) {
        if (parts.length) pending.push(open(current, joinChunks(parts)));
        parts = [];
        current = blob;
        if (pending.length >= batch) {
          await Promise.all(pending);
          pending = [];
        }
      }
      if (wanted.has(blob)) parts.push(e.value);
    }
    if (parts.length) pending.push(open(current, joinChunks(parts)));
    await Promise.all(pending);
  }

  /** The decoded searchable text of a message. */
  async text(blob: string): Promise<SearchTextBytes> {
    const pending = this.#texts.plain(blob);
    if (pending) return decodeSearchText(pending);
    const box = await getChunked(this.#kv, ["text", this.#store.id, blob]);
    if (box) {
      return decodeSearchText(
        await decryptIndex(this.#store.keys.indexKey, box, `text:${blob}`),
      );
    }
    return searchableText(await this.#store.message(blob));
  }

  /** Queues the search text of a message just delivered; it is made after the reply. */
  addText(blob: string, raw: Uint8Array) {
    this.#texts.add(blob, raw);
  }

  /** True when an encrypted search text waits for a commit. */
  get textsReady(): boolean {
    return this.#texts.ready;
  }

  /** KV sets for a commit: encrypted search texts of messages still here, up to about `maxBytes`. */
  textsForCommit(maxBytes: number): [Deno.KvKey, Uint8Array][] {
    const out: [Deno.KvKey, Uint8Array][] = [];
    for (const [blob, box] of this.#texts.take(maxBytes)) {
      if (!this.#store.state.blobRefs.has(blob)) continue;
      splitChunks(box).forEach((part, i) => out.push([["text", this.#store.id, blob, i], part]));
    }
    return out;
  }

  /** Writes every queued search text outside the writer (the store is closing); they name no state. */
  async writeTexts() {
    const texts = await this.#texts.drain();
    let tx = this.#kv.atomic();
    let bytes = 0;
    for (const [blob, box] of texts) {
      if (!this.#store.state.blobRefs.has(blob)) continue;
      if (bytes + box.length > 500_000) {
        if (!(await tx.commit()).ok) throw new Error("search text commit was refused");
        tx = this.#kv.atomic();
        bytes = 0;
      }
      splitChunks(box).forEach((part, i) => tx.set(["text", this.#store.id, blob, i], part));
      bytes += box.length + 100;
    }
    if (bytes && !(await tx.commit()).ok) throw new Error("search text commit was refused");
  }

  /** Drops what memory holds of a message (it was expunged). */
  forget(blob: string) {
    this.#cache.delete(blob);
    this.#texts.forget(blob);
  }

  /** Deletes a message's stored metadata and search text. */
  async remove(blob: string) {
    await deletePrefix(this.#kv, ["meta", this.#store.id, blob]);
    await deletePrefix(this.#kv, ["text", this.#store.id, blob]);
  }

  /** Empties the metadata cache (the store is closing). */
  clear() {
    this.#cache.clear();
  }
}
