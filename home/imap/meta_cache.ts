/**
 * What the IMAP layer keeps of each message's metadata while its account is
 * unlocked: ENVELOPE, BODY and BODYSTRUCTURE already encoded (a FETCH of
 * 10,000 envelopes copies bytes instead of walking 10,000 value trees), and a
 * light copy of the headers that SEARCH, SORT and THREAD use most. Compact,
 * so a large mailbox fits, and bounded by bytes.
 */
import type { MessageInfo } from "../../src/mime/message_info.ts";
import type { AccountStore } from "../store/account_store.ts";
import { encodeValue } from "./encoder.ts";
import { limits } from "../../src/limits.ts";

/** Header fields kept in the light copy: the ones SEARCH keys name and SORT/THREAD read. */
export const lightFields = new Set([
  "from",
  "to",
  "cc",
  "bcc",
  "subject",
  "date",
  "message-id",
  "in-reply-to",
  "references",
  "sender",
  "reply-to",
]);

export interface CachedMeta {
  envelope: Uint8Array;
  body: Uint8Array;
  bodyStructure: Uint8Array;
  /** MessageInfo without the value trees and with only {@linkcode lightFields}. */
  light: MessageInfo;
  bytes: number;
}

const budgetBytes = limits.metaCacheBytes;

function compact(info: MessageInfo): CachedMeta {
  const envelope = encodeValue(info.envelope);
  const body = encodeValue(info.body);
  const bodyStructure = encodeValue(info.bodyStructure);
  const fields = info.headers.fields.filter(([n]) => lightFields.has(n.toLowerCase()));
  const light: MessageInfo = {
    envelope: null,
    body: null,
    bodyStructure: null,
    headers: { ...info.headers, fields },
    size: info.size,
  };
  let bytes = envelope.length + body.length + bodyStructure.length + 200;
  for (const [n, v] of fields) bytes += 2 * (n.length + v.length) + 32;
  return { envelope, body, bodyStructure, light, bytes };
}

export class MetaCache {
  readonly #store: AccountStore;
  readonly #entries = new Map<string, CachedMeta>();
  #bytes = 0;

  constructor(store: AccountStore) {
    this.#store = store;
  }

  #put(blob: string, meta: CachedMeta) {
    const old = this.#entries.get(blob);
    if (old) this.#bytes -= old.bytes;
    this.#entries.set(blob, meta);
    this.#bytes += meta.bytes;
    while (this.#bytes > budgetBytes && this.#entries.size > 1) {
      const [k, v] = this.#entries.entries().next().value!;
      this.#entries.delete(k);
      this.#bytes -= v.bytes;
    }
  }

  /** The cached form of a message's metadata if it is cached now. */
  peek(blob: string): CachedMeta | undefined {
    return this.#entries.get(blob);
  }

  /** The cached form of a message's metadata, loading it if needed. */
  async get(blob: string): Promise<CachedMeta> {
    const hit = this.#entries.get(blob);
    if (hit) return hit;
    const meta = compact(await this.#store.info(blob));
    this.#put(blob, meta);
    return meta;
  }

  /** Loads many at once (one ordered KV scan) before a FETCH, SEARCH, SORT or THREAD over them. */
  async load(blobs: Iterable<string>) {
    const missing: string[] = [];
    for (const b of blobs) if (!this.#entries.has(b)) missing.push(b);
    if (missing.length === 0) return;
    await this.#store.scanInfo(missing, (blob, info) => this.#put(blob, compact(info)));
  }

  forget(blob: string) {
    const old = this.#entries.get(blob);
    if (!old) return;
    this.#entries.delete(blob);
    this.#bytes -= old.bytes;
  }
}

const caches = new WeakMap<AccountStore, MetaCache>();
const warmed = new WeakSet<AccountStore>();

/** Messages of INBOX whose metadata is loaded in the background after an unlock. */
const warmMessages = 20_000;

/**
 * Loads the metadata of INBOX's most recent messages in the background, once
 * per unlock, so the first FETCH ENVELOPE or SEARCH FROM a client sends does
 * not wait for thousands of decryptions.
 */
export function warmMetaCache(store: AccountStore): Promise<void> {
  if (warmed.has(store)) return Promise.resolve();
  warmed.add(store);
  const inbox = store.state.byName("INBOX");
  if (!inbox) return Promise.resolve();
  const blobs = inbox.uids.slice(-warmMessages).map((u) => inbox.byUid.get(u)!.blob);
  return metaCacheOf(store).load(blobs);
}

/** The metadata cache of an unlocked account, shared by its sessions. */
export function metaCacheOf(store: AccountStore): MetaCache {
  let cache = caches.get(store);
  if (!cache) {
    cache = new MetaCache(store);
    caches.set(store, cache);
  }
  return cache;
}
