/**
 * Accounts: creation, login, and the registry of unlocked accounts.
 *
 * An account's age identity is stored only wrapped under its password
 * (scrypt). A login unwraps it; the {@linkcode AccountStore} it opens stays in
 * memory while the account has sessions and for `limits.unlockedIdleMs`
 * after, then the identity is dropped. Logins are looked up by a hash of the
 * address, so no address is written in clear.
 */
import { limits } from "../../src/limits.ts";
import {
  generateAccountKey,
  recipientOf,
  unwrapIdentity,
  wrapIdentity,
} from "../../src/crypto/age.ts";
import { deriveIndexKey, encryptIndex } from "../../src/crypto/index_key.ts";
import { addressKey, normaliseAddress } from "../../src/mail/address_key.ts";
import { sha256, toHex } from "../../src/encoding.ts";
import { UsageError } from "../../src/errors.ts";
import { log } from "../../src/log.ts";
import type { BlobStore } from "./blobs.ts";
import { AccountStore, type AccountStoreOptions } from "./account_store.ts";
import type { DeliveryJournal } from "./journal.ts";
import { type SpillOptions, StagedBlobs } from "./staging.ts";
import type { MailboxRecord } from "./state.ts";

export interface AccountRecord {
  id: string;
  recipient: string;
  /** The identity, age-encrypted under the password. */
  wrapped: Uint8Array;
  /** The identity, age-encrypted to the recovery key is not needed: the recovery key IS the identity. */
  created: number;
  /** The address, encrypted with the index key. */
  addressEnc: Uint8Array;
}

/** The folders every new account gets, with their RFC 6154 attributes. */
export const defaultMailboxes: [name: string, specialUse: string | null][] = [
  ["INBOX", null],
  ["Sent", "\\Sent"],
  ["Drafts", "\\Drafts"],
  ["Trash", "\\Trash"],
  ["Junk", "\\Junk"],
  ["Archive", "\\Archive"],
];

export { normaliseAddress };

/** The key logins are looked up by (the edge checks recipients by the same key). */
export function loginKey(address: string): Promise<string> {
  return addressKey(address);
}

const addressPattern = /^[^\s@"(),:;<>[\]\\]+@[a-z0-9.-]+$/i;

/** A new mailbox record with a fresh UIDVALIDITY. */
export async function newMailboxRecord(
  store: AccountStore,
  name: string,
  specialUse: string | null,
  uidValidity: number,
): Promise<MailboxRecord> {
  const id = crypto.randomUUID();
  store.nameRecord(id, name);
  return {
    id,
    nameEnc: await store.encryptName(name),
    uidValidity,
    uidNext: 1,
    highestModSeq: 0,
    specialUse,
    subscribed: true,
  };
}

let lastUidValidity = 0;

/**
 * A UIDVALIDITY greater than any issued before (RFC 9051 §2.3.1.1: a mailbox
 * deleted and created again under the same name must get a new one): seconds
 * since 2020, and never less than one more than the last value this process
 * issued, so two mailboxes made in the same second still differ. A restart
 * takes longer than a second, so values keep growing across restarts.
 */
export function freshUidValidity(state: { used: Set<number> }): number {
  let v = Math.max(1, Math.floor((Date.now() - Date.UTC(2020, 0, 1)) / 1000), lastUidValidity + 1);
  for (const u of state.used) if (u >= v) v = u + 1;
  state.used.add(v);
  lastUidValidity = v;
  return v;
}

/**
 * Creates an account and returns its recovery key (the age identity), which
 * is shown once and never stored in clear.
 */
export async function createAccount(
  kv: Deno.Kv,
  blobs: BlobStore,
  address: string,
  password: string,
  scryptLogN: number,
): Promise<{ id: string; recoveryKey: string; recipient: string }> {
  if (!addressPattern.test(address)) {
    throw new UsageError(`"${address}" is not an email address like me@example.org`);
  }
  if (password.length < 8) throw new UsageError("the password must be at least 8 characters long");
  const login = await loginKey(address);
  if ((await kv.get(["login", login])).value) {
    throw new UsageError(`an account for ${address} already exists`);
  }
  const { identity, recipient } = await generateAccountKey();
  const indexKey = await deriveIndexKey(identity);
  const id = crypto.randomUUID();
  const record: AccountRecord = {
    id,
    recipient,
    wrapped: await wrapIdentity(identity, password, scryptLogN),
    created: Date.now(),
    addressEnc: await encryptIndex(indexKey, new TextEncoder().encode(address), "address"),
  };
  const res = await kv.atomic()
    .check({ key: ["login", login], versionstamp: null })
    .set(["account", id], record)
    .set(["login", login], id)
    .commit();
  if (!res.ok) throw new UsageError(`an account for ${address} already exists`);
  const store = await AccountStore.open(kv, blobs, id, { identity, recipient, indexKey });
  const used = new Set<number>();
  const recs: MailboxRecord[] = [];
  for (const [name, use] of defaultMailboxes) {
    recs.push(await newMailboxRecord(store, name, use, freshUidValidity({ used })));
  }
  await store.mutate((tx) => {
    for (const rec of recs) {
      tx.push({ op: "mbox", rec: { ...rec, highestModSeq: tx.nextModSeq() } });
    }
  });
  await store.close();
  return { id, recoveryKey: identity, recipient };
}

/** Replaces the password wrapping of an account's identity. */
export async function setPassword(
  kv: Deno.Kv,
  address: string,
  identity: string,
  newPassword: string,
  scryptLogN: number,
) {
  if (newPassword.length < 8) {
    throw new UsageError("the password must be at least 8 characters long");
  }
  const id = (await kv.get<string>(["login", await loginKey(address)])).value;
  if (!id) throw new UsageError(`there is no account for ${address}`);
  const rec = (await kv.get<AccountRecord>(["account", id])).value;
  if (!rec) throw new UsageError(`the account record of ${address} is missing`);
  const wrapped = await wrapIdentity(identity, newPassword, scryptLogN);
  await kv.set(["account", id], { ...rec, wrapped });
}

/** Finds the identity of an account from its password or its recovery key. */
export async function identityFor(
  kv: Deno.Kv,
  address: string,
  secret: string,
): Promise<string | null> {
  const id = (await kv.get<string>(["login", await loginKey(address)])).value;
  if (!id) return null;
  const rec = (await kv.get<AccountRecord>(["account", id])).value;
  if (!rec) return null;
  if (secret.startsWith("AGE-SECRET-KEY-1")) {
    const { recipientOf } = await import("../../src/crypto/age.ts");
    return (await recipientOf(secret).catch(() => null)) === rec.recipient ? secret.trim() : null;
  }
  return await unwrapIdentity(rec.wrapped, secret);
}

interface Unlocked {
  store: AccountStore;
  sessions: number;
  idleTimer?: ReturnType<typeof setTimeout>;
  /**
   * Verifies later logins without scrypt while unlocked: SHA-256(salt || password), memory
   * only; empty when unlocked by identity, until the first password login.
   */
  salt: Uint8Array;
  verifier: string;
  /** SHA-256 of the password-wrapped identity the verifier belongs to: a new password changes it. */
  wrappedHash: string;
}

/** Why a login failed, for the protocol layer. */
export type LoginFailure = "invalid" | "throttled";

/** Tuning of a registry; tests shorten the idle time. */
export interface AccountRegistryOptions {
  /** How long an account stays unlocked after its last session ends. */
  idleMs?: number;
  /** Passed to every account store the registry opens. */
  store?: AccountStoreOptions;
  /** Tuning of the spiller of staged blobs, which runs while the registry is open. */
  spill?: SpillOptions;
}

/**
 * The unlocked accounts of a running home box, shared by every session.
 */
export class AccountRegistry {
  readonly #kv: Deno.Kv;
  readonly #blobs: BlobStore;
  readonly #open = new Map<string, Unlocked>();
  readonly #opening = new Map<string, Promise<Unlocked | null>>();
  readonly #failures = new Map<string, number[]>();
  /** Stores being closed by the idle lock: a new unlock waits, so one account never has two writers. */
  readonly #closing = new Map<string, Promise<void>>();
  readonly #idleMs: number;
  readonly #storeOptions: AccountStoreOptions;
  readonly #unlockListeners = new Set<(id: string) => void>();
  readonly #staging: StagedBlobs;
  /**
   * The box's delivery journal (journal.ts): MX deliveries are durable in it before their `250`
   * and indexed after. Null in one-shot commands, which index before they return.
   */
  journal: DeliveryJournal | null = null;

  constructor(kv: Deno.Kv, blobs: BlobStore, opts: AccountRegistryOptions = {}) {
    this.#kv = kv;
    this.#blobs = blobs;
    this.#idleMs = opts.idleMs ?? limits.unlockedIdleMs;
    this.#storeOptions = opts.store ?? {};
    // The registry lives as long as the box (or `hearth import`): it runs the spiller, which
    // first moves what an earlier run left staged (docs/store.md).
    this.#staging = StagedBlobs.for(kv, blobs);
    this.#staging.start(opts.spill);
  }

  get kv(): Deno.Kv {
    return this.#kv;
  }

  #throttled(key: string, now: number): boolean {
    const list = (this.#failures.get(key) ?? []).filter((t) =>
      now - t < limits.authFailureWindowMs
    );
    if (list.length) this.#failures.set(key, list);
    else this.#failures.delete(key);
    return list.length >= limits.authFailuresPerWindow;
  }

  #fail(keys: string[], now: number) {
    for (const k of keys) {
      const list = this.#failures.get(k) ?? [];
      list.push(now);
      this.#failures.set(k, list);
    }
  }

  async #verifier(salt: Uint8Array, password: string): Promise<string> {
    const pw = new TextEncoder().encode(password);
    const buf = new Uint8Array(salt.length + pw.length);
    buf.set(salt);
    buf.set(pw, salt.length);
    return toHex(await sha256(buf));
  }

  /**
   * Logs in: returns the account's store (opened or shared) and counts a
   * session, or why it failed. Call {@linkcode release} when the session ends.
   */
  async login(
    address: string,
    password: string,
    clientIp: string,
  ): Promise<{ store: AccountStore } | { failure: LoginFailure }> {
    const now = Date.now();
    const login = await loginKey(address);
    const keys = [`acct:${login}`, `ip:${clientIp}`];
    if (keys.some((k) => this.#throttled(k, now))) return { failure: "throttled" };
    const id = (await this.#kv.get<string>(["login", login])).value;
    if (!id) {
      this.#fail(keys, now);
      return { failure: "invalid" };
    }
    // One unlock per account at a time; concurrent logins share it. A login
    // that shared an attempt made with another (wrong) password tries its own.
    for (let attempt = 0; attempt < 3; attempt++) {
      const open = this.#open.get(id);
      if (open) {
        // `hearth user passwd` may have run since the unlock: then the old password must stop
        // working at once, and the new one is checked against the record with scrypt.
        const rec = (await this.#kv.get<AccountRecord>(["account", id])).value;
        if (!rec) break;
        const wrappedHash = toHex(await sha256(rec.wrapped));
        if (wrappedHash !== open.wrappedHash) {
          if (!(await unwrapIdentity(rec.wrapped, password))) break;
          open.salt = crypto.getRandomValues(new Uint8Array(16));
          open.verifier = await this.#verifier(open.salt, password);
          open.wrappedHash = wrappedHash;
        }
        if (!open.verifier) {
          // Unlocked with the identity (a phone lent it after a restart): no password seen yet.
          if (!(await unwrapIdentity(rec.wrapped, password))) break;
          open.salt = crypto.getRandomValues(new Uint8Array(16));
          open.verifier = await this.#verifier(open.salt, password);
        }
        if (await this.#verifier(open.salt, password) !== open.verifier) break;
        if (this.#open.get(id) !== open) continue; // locked while we hashed
        this.#retain(open);
        return { store: open.store };
      }
      let opening = this.#opening.get(id);
      const mine = !opening;
      if (!opening) {
        opening = this.#unlock(id, password);
        this.#opening.set(id, opening);
        opening.finally(() => this.#opening.delete(id)).catch(() => {});
      }
      const unlocked = await opening;
      // Unlocked by identity meanwhile: the open branch above checks this password.
      if (unlocked && !unlocked.verifier) continue;
      if (unlocked) {
        if (await this.#verifier(unlocked.salt, password) !== unlocked.verifier) break;
        if (this.#open.get(id) !== unlocked) continue;
        this.#retain(unlocked);
        return { store: unlocked.store };
      }
      if (mine) break;
    }
    this.#fail(keys, now);
    return { failure: "invalid" };
  }

  async #unlock(id: string, password: string): Promise<Unlocked | null> {
    const rec = (await this.#kv.get<AccountRecord>(["account", id])).value;
    if (!rec) return null;
    const identity = await unwrapIdentity(rec.wrapped, password);
    if (!identity) return null;
    await this.#closing.get(id);
    const store = await AccountStore.open(this.#kv, this.#blobs, id, {
      identity,
      recipient: rec.recipient,
      indexKey: await deriveIndexKey(identity),
    }, this.#storeOptions);
    const salt = crypto.getRandomValues(new Uint8Array(16));
    const unlocked: Unlocked = {
      store,
      sessions: 0,
      salt,
      verifier: await this.#verifier(salt, password),
      wrappedHash: toHex(await sha256(rec.wrapped)),
    };
    // Nothing of this account can be written before it is published below: a safe moment to
    // drop crash leftovers.
    await store.collectOrphanedMetadata().catch((e) =>
      log.warn("store.orphan-collection-failed", { error: e })
    );
    this.#open.set(id, unlocked);
    for (const l of this.#unlockListeners) l(id);
    log.info("account.unlocked", { account: id });
    return unlocked;
  }

  #retain(u: Unlocked) {
    u.sessions++;
    if (u.idleTimer !== undefined) {
      clearTimeout(u.idleTimer);
      u.idleTimer = undefined;
    }
  }

  /** Ends a session's hold on an account; the last one starts the idle timer. */
  release(store: AccountStore) {
    const u = this.#open.get(store.id);
    if (!u) return;
    u.sessions = Math.max(0, u.sessions - 1);
    if (u.sessions === 0) {
      u.idleTimer = setTimeout(() => this.#lock(store.id), this.#idleMs);
      Deno.unrefTimer(u.idleTimer as unknown as number);
    }
  }

  /** Calls `listener` with an account's id whenever it is unlocked (the phone service). */
  onUnlock(listener: (id: string) => void): () => void {
    this.#unlockListeners.add(listener);
    return () => this.#unlockListeners.delete(listener);
  }

  /**
   * Holds an account that is unlocked now, like a session (the phone service keeps the
   * accounts of paired phones open); null when it is locked. Release it like a login.
   */
  hold(id: string): AccountStore | null {
    const u = this.#open.get(id);
    if (!u) return null;
    this.#retain(u);
    return u.store;
  }

  /**
   * Unlocks an account with its identity instead of its password (a paired phone lends it to
   * a restarted home box, docs/sync.md) and holds it. Null when the identity is not the
   * account's.
   */
  async holdWithIdentity(id: string, identity: string): Promise<AccountStore | null> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const held = this.hold(id);
      if (held) return held;
      const pending = this.#opening.get(id);
      if (pending) {
        await pending;
        continue;
      }
      // Registered as the account's one unlock in progress, so a login at the same moment
      // shares this store instead of opening a second writer.
      const opening = this.#unlockWithIdentity(id, identity);
      this.#opening.set(id, opening);
      opening.finally(() => this.#opening.delete(id)).catch(() => {});
      const u = await opening;
      if (!u) return null;
      this.#retain(u);
      return u.store;
    }
    return null;
  }

  async #unlockWithIdentity(id: string, identity: string): Promise<Unlocked | null> {
    const rec = (await this.#kv.get<AccountRecord>(["account", id])).value;
    if (!rec) return null;
    try {
      if ((await recipientOf(identity)) !== rec.recipient) return null;
    } catch {
      return null;
    }
    await this.#closing.get(id);
    const store = await AccountStore.open(this.#kv, this.#blobs, id, {
      identity,
      recipient: rec.recipient,
      indexKey: await deriveIndexKey(identity),
    }, this.#storeOptions);
    const unlocked: Unlocked = {
      store,
      sessions: 0,
      salt: new Uint8Array(),
      verifier: "",
      wrappedHash: toHex(await sha256(rec.wrapped)),
    };
    this.#open.set(id, unlocked);
    for (const l of this.#unlockListeners) l(id);
    log.info("account.unlocked", { account: id, by: "identity" });
    return unlocked;
  }

  /** An unlocked account's store, if it is unlocked now (for local delivery without a password). */
  unlocked(id: string): AccountStore | undefined {
    return this.#open.get(id)?.store;
  }

  async #lock(id: string) {
    const u = this.#open.get(id);
    if (!u || u.sessions > 0) return;
    this.#open.delete(id);
    const closing = u.store.close();
    this.#closing.set(id, closing);
    try {
      await closing;
    } finally {
      if (this.#closing.get(id) === closing) this.#closing.delete(id);
    }
    log.info("account.locked", { account: id });
  }

  /** Locks every account (shutdown), then spills the staged blobs. */
  async close() {
    for (const [id, u] of this.#open) {
      if (u.idleTimer !== undefined) clearTimeout(u.idleTimer);
      await u.store.close();
      this.#open.delete(id);
    }
    await Promise.all(this.#closing.values());
    await this.#staging.stop();
  }
}
