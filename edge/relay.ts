/**
 * Relay mailboxes for sync envelopes (DESIGN.md, Sync and the phone): one
 * per device and one per home box, store-and-forward, deleted on ack. The
 * edge holds opaque sealed bytes and learns only which mailbox they wait in
 * and their size (sync/envelope.ts hides even the sender).
 *
 * KV: `["edge","relay", mailbox, id]` → {bytes, at}. Envelopes are at most
 * {@linkcode limits.relayEnvelopeBytes} (one KV value); the sync layer splits
 * larger payloads. A mailbox holds at most {@linkcode limits.relayMailboxItems}
 * envelopes: a phone that never fetches cannot fill the edge.
 *
 * @example
 * ```ts
 * const relay = new RelayStore(kv);
 * await relay.post("dev-phone-1", sealed);
 * const { items } = await relay.list("dev-phone-1", 50);
 * await relay.ack("dev-phone-1", items.map((i) => i.id));
 * ```
 */
import { toHex } from "../src/encoding.ts";
import { ProtocolError } from "../src/errors.ts";
import { limits } from "../src/limits.ts";
import { Wakeups } from "./long_poll.ts";

interface RelayRecord {
  bytes: Uint8Array;
  at: number;
}

export interface RelayItem {
  id: string;
  at: number;
  envelope: Uint8Array;
}

export class RelayStore {
  readonly #kv: Deno.Kv;
  readonly #now: () => number;
  readonly #wakeups = new Wakeups();

  constructor(kv: Deno.Kv, now: () => number = Date.now) {
    this.#kv = kv;
    this.#now = now;
  }

  /** Stores an envelope for `mailbox`; durable when it resolves. */
  async post(mailbox: string, envelope: Uint8Array): Promise<string> {
    if (envelope.length > limits.relayEnvelopeBytes) {
      throw new ProtocolError(
        "NO",
        `an envelope is at most ${limits.relayEnvelopeBytes} bytes; split the payload`,
        { http: 413 },
      );
    }
    let n = 0;
    for await (const _ of this.#kv.list({ prefix: ["edge", "relay", mailbox] })) {
      if (++n >= limits.relayMailboxItems) {
        throw new ProtocolError("NO", "the recipient's relay mailbox is full", { http: 507 });
      }
    }
    const now = this.#now();
    const id = `${now.toString(36).padStart(9, "0")}${
      toHex(crypto.getRandomValues(new Uint8Array(8)))
    }`;
    await this.#kv.set(["edge", "relay", mailbox, id], { bytes: envelope, at: now }, {
      expireIn: limits.edgeRetentionMs,
    });
    this.#wakeups.wake(mailbox);
    return id;
  }

  /** Envelopes waiting in `mailbox`, oldest first. */
  async list(mailbox: string, limit: number): Promise<{ items: RelayItem[]; more: boolean }> {
    const items: RelayItem[] = [];
    let more = false;
    const iter = this.#kv.list<RelayRecord>({ prefix: ["edge", "relay", mailbox] }, {
      limit: limit + 1,
    });
    for await (const e of iter) {
      if (items.length === limit) {
        more = true;
        break;
      }
      items.push({ id: String(e.key[3]), at: e.value.at, envelope: e.value.bytes });
    }
    return { items, more };
  }

  async ack(mailbox: string, ids: string[]): Promise<number> {
    let n = 0;
    for (const id of ids) {
      const key = ["edge", "relay", mailbox, id];
      if ((await this.#kv.get(key)).versionstamp) {
        await this.#kv.delete(key);
        n++;
      }
    }
    return n;
  }

  /** Resolves when an envelope may be waiting for `mailbox` or after `ms`. */
  wait(mailbox: string, ms: number): Promise<void> {
    return this.#wakeups.wait(mailbox, ms);
  }
}
