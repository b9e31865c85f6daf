/** The searchable text of a message as stored, before encryption, and as read back. */
import { searchableText } from "../../src/mime/searchable_text.ts";
import { limits } from "../../src/limits.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A message's searchable text: decoded strings, and the UTF-8 bytes when read from storage. */
export interface SearchTextBytes {
  readonly headers: string;
  readonly body: string;
  readonly headerBytes?: Uint8Array;
  readonly bodyBytes?: Uint8Array;
}

/**
 * Search text as stored (before encryption): the byte length of the header
 * text (u32, big-endian), the header text, then the body text, UTF-8. Not
 * compressed: SEARCH TEXT reads every message's text, and inflating costs
 * more than the disk it saves.
 */
export function encodeSearchText(text: { headers: string; body: string }): Uint8Array {
  const headers = encoder.encode(text.headers);
  const body = encoder.encode(text.body);
  const out = new Uint8Array(4 + headers.length + body.length);
  new DataView(out.buffer).setUint32(0, headers.length);
  out.set(headers, 4);
  out.set(body, 4 + headers.length);
  return out;
}

/** Search text as read back: the bytes, with strings decoded only if asked for. */
export class StoredSearchText {
  readonly headerBytes: Uint8Array;
  readonly bodyBytes: Uint8Array;
  #headers?: string;
  #body?: string;

  constructor(data: Uint8Array) {
    const n = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0);
    this.headerBytes = data.subarray(4, 4 + n);
    this.bodyBytes = data.subarray(4 + n);
  }

  get headers(): string {
    return this.#headers ??= decoder.decode(this.headerBytes);
  }

  get body(): string {
    return this.#body ??= decoder.decode(this.bodyBytes);
  }
}

export function decodeSearchText(data: Uint8Array): StoredSearchText {
  return new StoredSearchText(data);
}

/** One delivered message's search text on its way to KV. */
interface PendingText {
  /** The message, until its text is made. */
  raw?: Uint8Array;
  /** The text as stored, before encryption. */
  plain?: Uint8Array;
}

/**
 * Search texts of delivered messages that are not stored yet. A delivery's
 * `250` waits only for what durability needs (the sealed blob, its record and
 * its metadata); its search text is made and encrypted once deliveries pause
 * for `quietMs` (or at once for the oldest, when the messages waiting hold
 * more than `maxRawBytes`), then written with the account's next commits.
 * During a burst of mail, the work of indexing (as much CPU as sealing and a
 * second write as large as the message) does not slow the replies. Until
 * then a text is answered from memory. Losing it in a crash loses nothing: a
 * message without stored text is searched from its sealed blob
 * (`AccountStore.text`).
 *
 * @example
 * ```ts
 * const texts = new PendingSearchTexts((blob, plain) => encryptIndex(key, plain, `text:${blob}`), flush);
 * texts.add(blob, raw);
 * // later, in a commit:
 * for (const [blob, box] of texts.take(256_000)) tx.set(["text", acct, blob, 0], box);
 * ```
 */
export class PendingSearchTexts {
  readonly #pending = new Map<string, PendingText>();
  /** Entries whose text is not made yet, oldest first. */
  readonly #unmade = new Map<string, PendingText>();
  /** Encrypted texts waiting for a commit, in the order they became ready. */
  readonly #ready = new Map<string, Uint8Array>();
  readonly #encrypting = new Set<Promise<void>>();
  readonly #encrypt: (blob: string, plain: Uint8Array) => Promise<Uint8Array>;
  readonly #onReady: () => void;
  readonly #quietMs: number;
  readonly #maxRawBytes: number;
  /** Bytes of the messages whose texts are not made yet. */
  #rawBytes = 0;
  #lastAdd = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #urgent = false;

  /**
   * `encrypt` seals a text for its blob; `onReady` is called when encrypted
   * texts wait for a commit (the store then makes sure one comes).
   */
  constructor(
    encrypt: (blob: string, plain: Uint8Array) => Promise<Uint8Array>,
    onReady: () => void,
    opts: { quietMs?: number; maxRawBytes?: number } = {},
  ) {
    this.#encrypt = encrypt;
    this.#onReady = onReady;
    this.#quietMs = opts.quietMs ?? 250;
    this.#maxRawBytes = opts.maxRawBytes ?? limits.pendingSearchTextBytes;
  }

  /** Queues a delivered message's text, to be made at the next quiet moment. */
  add(blob: string, raw: Uint8Array): void {
    if (this.#pending.get(blob)?.raw) return;
    const entry = { raw };
    this.#pending.set(blob, entry);
    this.#unmade.set(blob, entry);
    this.#rawBytes += raw.length;
    this.#lastAdd = performance.now();
    if (this.#rawBytes > this.#maxRawBytes) {
      // Memory bound: the oldest are made now, whatever the traffic, just enough to get back
      // under it: under sustained mail, one text per message, as steady as the mail itself.
      if (!this.#urgent) {
        this.#urgent = true;
        setTimeout(() => {
          this.#urgent = false;
          this.#make(this.#maxRawBytes);
        }, 0);
      }
    } else {
      this.#timer ??= setTimeout(() => this.#whenQuiet(), this.#quietMs);
    }
  }

  #whenQuiet(): void {
    const since = performance.now() - this.#lastAdd;
    if (since < this.#quietMs) {
      this.#timer = setTimeout(() => this.#whenQuiet(), this.#quietMs - since);
      return;
    }
    this.#timer = undefined;
    this.#make(0);
  }

  /** Makes and encrypts queued texts, oldest first, until at most `keepRawBytes` are left. */
  #make(keepRawBytes: number): void {
    for (const [blob, entry] of this.#unmade) {
      if (this.#rawBytes <= keepRawBytes) break;
      this.#unmade.delete(blob);
      const plain = this.plain(blob)!;
      this.#rawBytes -= entry.raw!.length;
      entry.raw = undefined;
      const encrypting: Promise<void> = this.#encrypt(blob, plain).then(
        (box) => {
          if (this.#pending.get(blob) !== entry) return; // forgotten meanwhile
          this.#ready.set(blob, box);
          this.#onReady();
        },
        // Not stored then: that message is searched from its blob.
        () => {
          if (this.#pending.get(blob) === entry) this.#pending.delete(blob);
        },
      ).finally(() => this.#encrypting.delete(encrypting));
      this.#encrypting.add(encrypting);
    }
  }

  /** The text as stored, before encryption, of a message whose text is not in KV yet. */
  plain(blob: string): Uint8Array | undefined {
    const entry = this.#pending.get(blob);
    if (entry?.raw && !entry.plain) entry.plain = encodeSearchText(searchableText(entry.raw));
    return entry?.plain;
  }

  /** Encrypted texts for a commit, up to about `maxBytes`; they leave this queue. */
  take(maxBytes: number): [string, Uint8Array][] {
    const out: [string, Uint8Array][] = [];
    let bytes = 0;
    for (const [blob, box] of this.#ready) {
      if (out.length && bytes + box.length > maxBytes) break;
      out.push([blob, box]);
      bytes += box.length;
      this.#ready.delete(blob);
      this.#pending.delete(blob);
    }
    return out;
  }

  /** True when an encrypted text waits for a commit. */
  get ready(): boolean {
    return this.#ready.size > 0;
  }

  /** Drops a message's text (it was expunged before its text was written). */
  forget(blob: string): void {
    const raw = this.#pending.get(blob)?.raw;
    if (raw) this.#rawBytes -= raw.length;
    this.#pending.delete(blob);
    this.#unmade.delete(blob);
    this.#ready.delete(blob);
  }

  /** Makes every queued text now and returns them all (the store is closing). */
  async drain(): Promise<[string, Uint8Array][]> {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    this.#make(0);
    await Promise.all([...this.#encrypting]);
    return this.take(Infinity);
  }
}
