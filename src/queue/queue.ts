/**
 * The outbound queue's durable storage in Deno KV, encrypted at rest.
 *
 * Nothing readable of a message (addresses, subject, body) reaches the disk:
 * the envelope and every chunk of the message are AES-256-GCM encrypted under
 * the queue key (the home box keeps it in `DATA/queue.key`, 0600; the edge in
 * its own key file). A role must send while accounts are locked, so this key
 * cannot be an account key: see docs/queue.md.
 *
 * Layout: `["queue","chunk",id,n]` holds the encrypted message in chunks
 * (KV values are at most 64 KiB); `["queue","item",id]`, written last, makes
 * an item visible. Chunks without an item (a crash mid-enqueue) are collected
 * by {@linkcode OutboundQueue.collectOrphans}.
 *
 * @example
 * ```ts
 * const queue = new OutboundQueue(kv, await loadQueueKey("hearth-data/queue.key"), { prepare });
 * await queue.enqueue("me@example.org", ["you@example.net"], raw); // durable now
 * ```
 */
import { normaliseLineEndings } from "../mail/line_endings.ts";
import { limits } from "../limits.ts";
import { ProtocolError } from "../errors.ts";
import { commitRetrying } from "../kv.ts";

/** Plaintext bytes per chunk; with nonce and tag it stays below the 64 KiB value limit. */
const chunkBytes = 60 * 1024;
/** Chunks written per atomic commit (bounded by KV's total mutation size). */
const chunksPerCommit = 10;
/** Bumped by {@linkcode OutboundQueue.retryNow}, so a runner in another process notices. */
const retryKey = ["queue", "retry"];

export type RecipientState = "pending" | "delivered" | "failed";

export interface QueueRecipient {
  address: string;
  state: RecipientState;
  /** Last reply or error, for `hearth queue` and the DSN. */
  reason?: string;
  /** Enhanced status code (RFC 3463) of a permanent failure. */
  status?: string;
}

/** The encrypted part of an item. */
export interface QueueEnvelope {
  from: string;
  recipients: QueueRecipient[];
}

/** What is stored in clear: only counts, sizes and times. */
interface ItemRecord {
  id: string;
  created: number;
  attempts: number;
  nextAttempt: number;
  size: number;
  chunks: number;
  envelope: Uint8Array;
}

/** A queue item with its envelope decrypted. */
export interface QueueItem {
  id: string;
  created: number;
  attempts: number;
  nextAttempt: number;
  size: number;
  envelope: QueueEnvelope;
}

export interface QueueOptions {
  /** Turns a submitted message into what is stored and sent (CRLF normalisation, DKIM). */
  prepare?: (raw: Uint8Array) => Promise<Uint8Array>;
  /** Current time in ms (injected by tests). */
  now?: () => number;
}

/** Reads a 32-byte queue key file, creating it (0600) on first use. */
export async function loadQueueKey(path: string): Promise<CryptoKey> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    bytes = crypto.getRandomValues(new Uint8Array(32));
    try {
      await Deno.writeFile(path, bytes, { mode: 0o600, createNew: true });
    } catch (err) {
      if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
      bytes = await Deno.readFile(path);
    }
  }
  if (bytes.length !== 32) throw new Error(`${path} is not a 32-byte key`);
  return crypto.subtle.importKey("raw", bytes as BufferSource, "AES-GCM", false, [
    "encrypt",
    "decrypt",
  ]);
}

export class OutboundQueue {
  readonly #kv: Deno.Kv;
  readonly #key: CryptoKey;
  readonly #prepare: (raw: Uint8Array) => Promise<Uint8Array>;
  readonly #listeners = new Set<() => void>();
  readonly now: () => number;

  constructor(kv: Deno.Kv, key: CryptoKey, opts: QueueOptions = {}) {
    this.#kv = kv;
    this.#key = key;
    this.#prepare = opts.prepare ?? ((raw) => Promise.resolve(normaliseLineEndings(raw)));
    this.now = opts.now ?? Date.now;
  }

  /** Opens the home box's queue of a data directory (creating its key on first use). */
  static async open(kv: Deno.Kv, dataDir: string, opts: QueueOptions = {}): Promise<OutboundQueue> {
    return new OutboundQueue(kv, await loadQueueKey(`${dataDir}/queue.key`), opts);
  }

  /** Calls `listener` after each enqueue (the runner starts delivery at once). */
  onEnqueue(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async #seal(plain: Uint8Array, context: string): Promise<Uint8Array> {
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const additionalData = new TextEncoder().encode(context);
    const ct = new Uint8Array(
      await crypto.subtle.encrypt(
        { name: "AES-GCM", iv, additionalData },
        this.#key,
        plain as BufferSource,
      ),
    );
    const out = new Uint8Array(12 + ct.length);
    out.set(iv);
    out.set(ct, 12);
    return out;
  }

  async #open(sealed: Uint8Array, context: string): Promise<Uint8Array> {
    const additionalData = new TextEncoder().encode(context);
    return new Uint8Array(
      await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: sealed.subarray(0, 12) as BufferSource, additionalData },
        this.#key,
        sealed.subarray(12) as BufferSource,
      ),
    );
  }

  async #sealEnvelope(id: string, env: QueueEnvelope): Promise<Uint8Array> {
    return await this.#seal(new TextEncoder().encode(JSON.stringify(env)), `queue:${id}:env`);
  }

  /**
   * Queues a message for `to`; resolves only once the item is durable (the
   * SMTP `250` waits for it). The message is prepared (CRLF, DKIM) first.
   */
  async enqueue(from: string, to: string[], raw: Uint8Array): Promise<void> {
    await this.add(from, to, raw);
  }

  /** As {@linkcode enqueue}, returning the new item's id. */
  async add(from: string, to: string[], raw: Uint8Array): Promise<string> {
    if (to.length === 0) throw new TypeError("a queue item needs at least one recipient");
    if (raw.length > limits.messageBytes) {
      throw new ProtocolError("NO", `message is larger than ${limits.messageBytes} bytes`, {
        smtp: { code: 552, enhanced: "5.3.4" },
      });
    }
    const message = await this.#prepare(raw);
    const id = crypto.randomUUID();
    const now = this.now();
    const chunks = Math.max(1, Math.ceil(message.length / chunkBytes));
    for (let first = 0; first < chunks; first += chunksPerCommit) {
      const op = this.#kv.atomic();
      for (let n = first; n < Math.min(chunks, first + chunksPerCommit); n++) {
        const part = message.subarray(n * chunkBytes, (n + 1) * chunkBytes);
        op.set(["queue", "chunk", id, n], await this.#seal(part, `queue:${id}:${n}`));
      }
      if (!(await op.commit()).ok) throw new Error("queue chunk commit was refused");
    }
    const recipients = [...new Set(to)].map((address) => ({ address, state: "pending" as const }));
    const record: ItemRecord = {
      id,
      created: now,
      attempts: 0,
      nextAttempt: now,
      size: message.length,
      chunks,
      envelope: await this.#sealEnvelope(id, { from, recipients }),
    };
    const res = await commitRetrying(() =>
      this.#kv.atomic().check({ key: ["queue", "item", id], versionstamp: null })
        .set(["queue", "item", id], record)
    );
    if (!res.ok) throw new Error("queue item commit was refused");
    for (const listener of this.#listeners) listener();
    return id;
  }

  async #decode(rec: ItemRecord): Promise<QueueItem> {
    const env = JSON.parse(
      new TextDecoder().decode(await this.#open(rec.envelope, `queue:${rec.id}:env`)),
    );
    const { id, created, attempts, nextAttempt, size } = rec;
    return { id, created, attempts, nextAttempt, size, envelope: env };
  }

  /** Every item, oldest first. */
  async list(): Promise<QueueItem[]> {
    const items: QueueItem[] = [];
    for await (const e of this.#kv.list<ItemRecord>({ prefix: ["queue", "item"] })) {
      items.push(await this.#decode(e.value));
    }
    return items.sort((a, b) => a.created - b.created);
  }

  /** Items whose next attempt is due at `now`. */
  async due(now = this.now()): Promise<QueueItem[]> {
    return (await this.list()).filter((i) => i.nextAttempt <= now);
  }

  async get(id: string): Promise<QueueItem | null> {
    const rec = (await this.#kv.get<ItemRecord>(["queue", "item", id])).value;
    return rec ? await this.#decode(rec) : null;
  }

  /** The stored (prepared) message of an item. */
  async message(id: string): Promise<Uint8Array> {
    const rec = (await this.#kv.get<ItemRecord>(["queue", "item", id])).value;
    if (!rec) throw new Error(`queue item ${id} does not exist`);
    const out = new Uint8Array(rec.size);
    let at = 0;
    for await (const e of this.#kv.list<Uint8Array>({ prefix: ["queue", "chunk", id] })) {
      const part = await this.#open(e.value, `queue:${id}:${String(e.key[3])}`);
      out.set(part, at);
      at += part.length;
    }
    if (at !== rec.size) throw new Error(`queue item ${id} is incomplete`);
    return out;
  }

  /** Records an attempt's outcome: new recipient states and the next attempt time. */
  async update(item: QueueItem): Promise<void> {
    const rec = (await this.#kv.get<ItemRecord>(["queue", "item", item.id])).value;
    if (!rec) return;
    const next: ItemRecord = {
      ...rec,
      attempts: item.attempts,
      nextAttempt: item.nextAttempt,
      envelope: await this.#sealEnvelope(item.id, item.envelope),
    };
    await this.#kv.set(["queue", "item", item.id], next);
  }

  /** Makes an item due now (`hearth queue retry`). */
  async retryNow(id: string): Promise<boolean> {
    const item = await this.get(id);
    if (!item) return false;
    await this.update({ ...item, nextAttempt: this.now() });
    await this.#kv.set(retryKey, this.now());
    for (const listener of this.#listeners) listener();
    return true;
  }

  /**
   * Calls `listener` after a {@linkcode retryNow} in another process (`hearth
   * queue retry` while the box runs) by reading one key every `intervalMs`.
   * Not `kv.watch`: on local SQLite it does not see another process's writes
   * for a minute or more, while a plain read sees them at once. Returns a stop
   * function that waits for a read in flight.
   */
  pollRetries(listener: () => void, intervalMs = 1000): () => Promise<void> {
    let stopped = false;
    let seen: string | null | undefined; // undefined until the first read
    let timer: ReturnType<typeof setTimeout> | undefined;
    let reading: Promise<void> = Promise.resolve();
    const read = () => {
      reading = (async () => {
        try {
          const { versionstamp } = await this.#kv.get(retryKey);
          if (seen !== undefined && versionstamp !== seen && !stopped) listener();
          seen = versionstamp;
        } catch { /* KV closed under us: the box is stopping */ }
        if (!stopped) timer = setTimeout(read, intervalMs);
      })();
    };
    read();
    return async () => {
      stopped = true;
      clearTimeout(timer);
      await reading;
    };
  }

  /** Removes an item and its chunks (delivered, bounced, or `hearth queue delete`). */
  async remove(id: string): Promise<void> {
    await this.#kv.delete(["queue", "item", id]);
    for await (const e of this.#kv.list({ prefix: ["queue", "chunk", id] })) {
      await this.#kv.delete(e.key);
    }
  }

  /**
   * Deletes chunks that no item owns (left by a crash mid-enqueue). Run it
   * before accepting mail: an enqueue in progress also has no item yet.
   */
  async collectOrphans(): Promise<number> {
    let removed = 0;
    const owned = new Map<string, boolean>();
    for await (const e of this.#kv.list({ prefix: ["queue", "chunk"] })) {
      const id = e.key[2] as string;
      if (!owned.has(id)) owned.set(id, (await this.#kv.get(["queue", "item", id])).value !== null);
      if (!owned.get(id)) {
        await this.#kv.delete(e.key);
        removed++;
      }
    }
    return removed;
  }
}
