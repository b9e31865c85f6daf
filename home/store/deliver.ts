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
  const blob = await blobs.put(sealed);
  const arrival: ArrivalRecord = { blob, size: raw.length, date: Date.now() };
  const key = ["arrival", id, Date.now(), arrivalCounter++, crypto.randomUUID()];
  const res = await kv.atomic().set(key, arrival).commit();
  if (!res.ok) throw new Error("arrival commit was refused");
  const store = registry?.unlocked(id);
  if (store) {
    store.ingestArrivals().catch((e) => log.error("deliver.ingest-failed", { error: e }));
  }
}
