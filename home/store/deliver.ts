/**
 * Local delivery: seals a message to its recipient's account key and stores
 * it durably, whether or not the account is unlocked. The sealed blob and its
 * index record are durable before this resolves (the SMTP `250` waits for
 * it): for an unlocked account the INBOX entry itself, otherwise an arrival
 * record that the account indexes into INBOX at its next unlock. A small
 * sealed blob is staged in KV in that same commit (`staging.ts`). Concurrent
 * deliveries share KV commits (`group_commit.ts`). In `hearth home`, a small
 * message is journaled instead (`journal.ts`): durable with the fdatasync of
 * its append, indexed after the reply, its sealed bytes left in the journal
 * segment that becomes a pack (`packs.ts`).
 *
 * @example
 * ```ts
 * await deliverLocally(kv, blobs, "me@hearth.localhost", raw, registry);
 * ```
 */
import { sealToRecipient } from "../../src/crypto/age.ts";
import { ProtocolError } from "../../src/errors.ts";
import { limits } from "../../src/limits.ts";
import { BlobStore, packKey } from "./blobs.ts";
import { stageable, StagedBlobs, stagedEntries } from "./staging.ts";
import type { ArrivalRecord } from "./incoming.ts";
import { type AccountRecord, type AccountRegistry, loginKey } from "./accounts.ts";
import { groupCommitFor } from "./group_commit.ts";
import type { JournalEntry } from "./journal.ts";
import { log } from "../../src/log.ts";

let arrivalCounter = 0;

/** A local account as delivery needs it. */
interface LocalRecipient {
  id: string;
  recipient: string;
  until: number;
}

// A login and its account's recipient never change once created (accounts are not deleted),
// so found ones are kept: RCPT and delivery skip a hash and two KV reads. Misses are not
// kept, so an account `hearth user add` just made in another process is seen at once.
const recipientTtlMs = 60_000;
const recipientCacheSize = 1_000;
const recipientCaches = new WeakMap<Deno.Kv, Map<string, LocalRecipient>>();

async function localRecipient(kv: Deno.Kv, address: string): Promise<LocalRecipient | null> {
  let cache = recipientCaches.get(kv);
  if (!cache) recipientCaches.set(kv, cache = new Map());
  const hit = cache.get(address);
  if (hit && hit.until > Date.now()) return hit;
  const id = (await kv.get<string>(["login", await loginKey(address)])).value;
  if (!id) return null;
  const account = (await kv.get<AccountRecord>(["account", id])).value;
  if (!account) throw new Error(`account record ${id} is missing`);
  const found = { id, recipient: account.recipient, until: Date.now() + recipientTtlMs };
  if (cache.size >= recipientCacheSize) cache.delete(cache.keys().next().value!);
  cache.set(address, found);
  return found;
}

/** True when an address has an account here (RCPT checks). */
export async function accountExists(kv: Deno.Kv, address: string): Promise<boolean> {
  return (await localRecipient(kv, address)) !== null;
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
  const rcpt = await localRecipient(kv, address);
  if (!rcpt) {
    throw new ProtocolError("NO", `no mailbox here for ${address}`, {
      smtp: { code: 550, enhanced: "5.1.1" },
    });
  }
  const sealing = sealToRecipient(raw, rcpt.recipient);
  const date = Date.now();
  const journal = registry?.journal;
  if (journal && !journal.closed && journal.healthy) {
    const sealed = await sealing;
    if (stageable(sealed)) {
      // Durable once journaled: the 250 goes out, and the message is indexed after it.
      const entry = await journal.append(
        { account: rcpt.id, blob: await BlobStore.idOf(sealed), size: raw.length, date },
        sealed,
      );
      // The sealed bytes stay in the journal segment, which becomes a pack (packs.ts): no copy
      // of them goes through KV or to a file of their own.
      const indexing = journal.index(
        entry,
        () => indexDelivery(kv, blobs, entry.account, sealed, raw, date, registry, entry),
      );
      // Indexing fell behind the mail: the sender waits for it (a bounded backlog in memory).
      if (journal.backlogBytes > limits.journalBacklogBytes) await indexing;
      return;
    }
  }
  await indexDelivery(kv, blobs, rcpt.id, sealing, raw, date, registry, null);
  if (journal && !journal.healthy) {
    // KV answers again: journaled deliveries waiting for a retry go now.
    journal.healthy = true;
    journal.retryNow();
  }
}

/**
 * Indexes a delivery: straight into an unlocked account's INBOX, otherwise as an arrival
 * record. `journaled` is the journal entry it comes from: its marker and its blob's location
 * ride in the commit, and the blob is neither staged nor written here.
 */
async function indexDelivery(
  kv: Deno.Kv,
  blobs: BlobStore,
  account: string,
  sealing: Uint8Array | Promise<Uint8Array>,
  raw: Uint8Array,
  date: number,
  registry: AccountRegistry | undefined,
  journaled: JournalEntry | null,
): Promise<void> {
  const store = registry?.unlocked(account);
  if (store) {
    // Unlocked: index straight into INBOX with the plaintext in hand, instead of an arrival
    // record that the store would then read back and decrypt again.
    try {
      await store.addDelivered(sealing, raw, date, journaled ?? undefined);
      return;
    } catch (e) {
      // The account locked meanwhile, or its commit failed: an arrival record keeps the message
      // (ingest skips a blob the account already has, so nothing is added twice).
      log.warn("deliver.direct-failed", { account, error: e });
    }
  }
  const sealed = await sealing;
  await storeArrival(kv, blobs, account, sealed, raw.length, date, null, registry, journaled);
}

/**
 * Indexes an entry an earlier run left in the delivery journal (recoverJournal): as an arrival
 * record, which the account moves into INBOX at its next unlock.
 */
export async function indexRecovered(kv: Deno.Kv, blobs: BlobStore, entry: JournalEntry) {
  await storeArrival(
    kv,
    blobs,
    entry.account,
    entry.sealed,
    entry.size,
    entry.date,
    null,
    undefined,
    entry,
  );
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

/**
 * Stores the arrival record (and the item marker) in one commit, with the sealed blob staged in
 * it (staging.ts): one durable commit per delivery, shared with concurrent ones. A blob too
 * large to stage is written as a file first.
 */
async function storeArrival(
  kv: Deno.Kv,
  blobs: BlobStore,
  account: string,
  sealed: Uint8Array,
  size: number,
  date: number,
  itemId: string | null,
  registry?: AccountRegistry,
  journaled: JournalEntry | null = null,
): Promise<boolean> {
  const staging = StagedBlobs.for(kv, blobs);
  const staged = !journaled && staging.shouldStage(sealed);
  const blob = staged || journaled ? await BlobStore.idOf(sealed) : await blobs.put(sealed);
  const stagedSets = staged ? stagedEntries(blob, sealed) : [];
  const arrival: ArrivalRecord = { blob, size, date };
  const key = ["arrival", account, Date.now(), arrivalCounter++, crypto.randomUUID()];
  // Concurrent arrivals share one KV commit (group commit); each still resolves only once durable.
  const ok = await groupCommitFor(kv).commit({
    apply(op) {
      op.set(key, arrival);
      for (const [k, v] of stagedSets) op.set(k, v);
      if (journaled) {
        op.set(journaled.marker, true);
        op.set(packKey(blob), journaled.location);
      }
      if (itemId) {
        op.check({ key: ["edge-item", itemId], versionstamp: null })
          .set(["edge-item", itemId], true, { expireIn: seenItemMs });
      }
    },
    mutations: (itemId ? 2 : 1) + (journaled ? 2 : 0) + stagedSets.length,
    checks: itemId ? 1 : 0,
    bytes: 300 + (staged ? sealed.length + 100 * stagedSets.length : 0),
  });
  if (ok && staged) staging.noteStaged(sealed.length);
  if (!ok) {
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
