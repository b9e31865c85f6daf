/**
 * The phone's copy of message content (docs/sync.md): summaries for listing,
 * and the sealed blobs it has fetched or made, in its {@linkcode PhoneStorage}.
 * Summaries are kept in 256 buckets by the first two hex digits of the blob
 * id (a compressed batch each, sync/summary.ts), so a sync that brings 50 new
 * ones rewrites a few small values, not all of them. Blobs stay sealed to
 * the account: they are opened only to be shown.
 *
 * @example
 * ```ts
 * const mail = await PhoneMailStore.open(storage);
 * mail.putSummaries([[blob, summary]]);
 * await mail.save();
 * mail.summary(blob)?.subject;
 * ```
 */
import { sha256, toHex } from "../../src/encoding.ts";
import { decodeSummaries, encodeSummaries, type Summary, summaryKey } from "../summary.ts";
import type { PhoneStorage } from "./client.ts";

const bucketKey = (bucket: string) => `sum-${bucket}`;
const blobKey = (blob: string) => `blob-${blob}`;
const hexId = /^[0-9a-f]{2,}$/;

/** The id the home box's blob store gives these sealed bytes (home/store/blobs.ts). */
export async function blobIdOf(sealed: Uint8Array): Promise<string> {
  return toHex((await sha256(sealed)).subarray(0, 16));
}

export class PhoneMailStore {
  readonly #storage: PhoneStorage;
  /** Summaries by bucket, then by blob id. */
  readonly #buckets = new Map<string, Map<string, Summary>>();
  readonly #dirty = new Set<string>();

  private constructor(storage: PhoneStorage) {
    this.#storage = storage;
  }

  /** Loads every stored summary (a few hundred KiB for thousands of messages). */
  static async open(storage: PhoneStorage): Promise<PhoneMailStore> {
    const store = new PhoneMailStore(storage);
    const buckets = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
    await Promise.all(buckets.map(async (b) => {
      const bytes = await storage.get(bucketKey(b));
      if (!bytes) return;
      try {
        store.#buckets.set(b, new Map(await decodeSummaries(bytes)));
      } catch {
        // A damaged bucket is dropped: its summaries come again on demand.
      }
    }));
    return store;
  }

  summary(blob: string): Summary | undefined {
    return this.#buckets.get(blob.slice(0, 2))?.get(summaryKey(blob));
  }

  has(blob: string): boolean {
    return this.summary(blob) !== undefined;
  }

  putSummaries(entries: Iterable<[string, Summary]>): number {
    let n = 0;
    for (const [id, s] of entries) {
      if (!hexId.test(id)) continue;
      const bucket = id.slice(0, 2);
      let m = this.#buckets.get(bucket);
      if (!m) this.#buckets.set(bucket, m = new Map());
      m.set(summaryKey(id), s);
      this.#dirty.add(bucket);
      n++;
    }
    return n;
  }

  /** Writes the buckets that changed. */
  async save(): Promise<void> {
    for (const bucket of [...this.#dirty]) {
      const entries = [...this.#buckets.get(bucket) ?? []];
      await this.#storage.set(bucketKey(bucket), await encodeSummaries(entries));
      this.#dirty.delete(bucket);
    }
  }

  /** The sealed blob, if this phone holds it. */
  async blob(blob: string): Promise<Uint8Array | null> {
    if (!hexId.test(blob)) return null;
    return await this.#storage.get(blobKey(blob));
  }

  /**
   * Keeps a sealed blob. The bytes must hash to `blob` (content addressed,
   * like the home's store): a blob that does not is refused with a RangeError.
   */
  async putBlob(blob: string, sealed: Uint8Array): Promise<void> {
    if (await blobIdOf(sealed) !== blob) {
      throw new RangeError(`the bytes received for ${blob} are not that message`);
    }
    await this.#storage.set(blobKey(blob), sealed);
  }
}
