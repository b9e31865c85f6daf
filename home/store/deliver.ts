/**
 * Local delivery: seals a message to its recipient's account key and stores
 * it durably, whether or not the account is unlocked. The sealed blob and an
 * arrival record are durable before this resolves (the SMTP `250` waits for
 * it); the account indexes arrivals into INBOX when it is unlocked.
 *
 * @example
 * ```ts
 * await deliverLocally(kv, blobs, "me@hearth.localhost", raw, registry);
 * ```
 */
import { sealToRecipient } from "../../src/crypto/age.ts";
import { ProtocolError } from "../../src/errors.ts";
import { limits } from "../../src/limits.ts";
import type { BlobStore } from "./blobs.ts";
import type { ArrivalRecord } from "./account_store.ts";
import { type AccountRecord, type AccountRegistry, loginKey } from "./accounts.ts";
import { log } from "../../src/log.ts";

let arrivalCounter = 0;

/** True when an address has an account here (RCPT checks). */
export async function accountExists(kv: Deno.Kv, address: string): Promise<boolean> {
  return (await kv.get(["login", await loginKey(address)])).value !== null;
}

/** Delivers a raw message to a local account's INBOX. */
export async function deliverLocally(
  kv: Deno.Kv,
  blobs: BlobStore,
  address: string,
  raw: Uint8Array,
  registry?: AccountRegistry,
): Promise<void> {
  if (raw.length > limits.messageBytes) {
    throw new ProtocolError("NO", `message is larger than ${limits.messageBytes} bytes`, {
      imapCode: "TOOBIG",
      smtp: { code: 552, enhanced: "5.3.4" },
    });
  }
  const id = (await kv.get<string>(["login", await loginKey(address)])).value;
  if (!id) {
    throw new ProtocolError("NO", `no mailbox here for ${address}`, {
      smtp: { code: 550, enhanced: "5.1.1" },
    });
  }
  const account = (await kv.get<AccountRecord>(["account", id])).value;
  if (!account) throw new Error(`account record ${id} is missing`);
  const sealed = await sealToRecipient(raw, account.recipient);
  await storeArrival(kv, blobs, id, sealed, raw.length, Date.now(), null, registry);
}

/** An item sealed elsewhere (by the edge) for one of our accounts. */
export interface SealedArrival {
  /** The account's id (the edge registered it under this id). */
  account: string;
  /** The age file, exactly as the edge sealed it: it becomes the blob. */
  sealed: Uint8Array;
  /** Plaintext size in bytes. */
  size: number;
  /** Arrival time at the edge (ms); the message's internal date. */
  date: number;
  /** The edge's item id: storing the same item twice stores it once. */
  itemId: string;
}

/** How long an edge item id is remembered; longer than the edge keeps an unacked item. */
const seenItemMs = 60 * 24 * 3600_000;

/**
 * Stores an item the edge sealed. Idempotent by item id: a second delivery of
 * the same item (the edge resends what was not acked) changes nothing and
 * returns false. Durable when it resolves, so the caller may ack.
 */
export async function deliverSealed(
  kv: Deno.Kv,
  blobs: BlobStore,
  item: SealedArrival,
  registry?: AccountRegistry,
): Promise<boolean> {
  const account = (await kv.get<AccountRecord>(["account", item.account])).value;
  if (!account) {
    throw new ProtocolError("NO", `no account ${item.account} here`, {
      smtp: { code: 550, enhanced: "5.1.1" },
    });
  }
  if ((await kv.get(["edge-item", item.itemId])).versionstamp) return false;
  return await storeArrival(
    kv,
    blobs,
    item.account,
    item.sealed,
    item.size,
    item.date,
    item.itemId,
    registry,
  );
}

/** Writes the blob durably, then the arrival record (and the item marker) in one commit. */
async function storeArrival(
  kv: Deno.Kv,
  blobs: BlobStore,
  account: string,
  sealed: Uint8Array,
  size: number,
  date: number,
  itemId: string | null,
  registry?: AccountRegistry,
): Promise<boolean> {
  const blob = await blobs.put(sealed);
  const arrival: ArrivalRecord = { blob, size, date };
  const key = ["arrival", account, Date.now(), arrivalCounter++, crypto.randomUUID()];
  const op = kv.atomic().set(key, arrival);
  if (itemId) {
    op.check({ key: ["edge-item", itemId], versionstamp: null })
      .set(["edge-item", itemId], true, { expireIn: seenItemMs });
  }
  const res = await op.commit();
  if (!res.ok) {
    // Only the item check can fail: another pull stored this item first.
    if (itemId) return false;
    throw new Error("arrival commit was refused");
  }
  const store = registry?.unlocked(account);
  if (store) {
    store.ingestArrivals().catch((e) => log.error("deliver.ingest-failed", { error: e }));
  }
  return true;
}
