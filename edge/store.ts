/**
 * The edge's state in Deno KV: paired homes and their pinned keys, the
 * accounts mail is sealed to, and the sealed items waiting for their home.
 * Nothing here opens a message: items are age files sealed to account keys
 * the edge never holds, and addresses are stored only as address keys
 * (src/mail/address_key.ts).
 *
 * Layout (all under `["edge", …]`):
 * - `pairing, H(token)` → domain (expires), `front, H(token)` → HTTP front name
 * - `home, homeId` → pinned key and domains; `domain, D` → homeId
 * - `account, homeId, accountId` → recipient and address keys; `addr, addressKey` → home, account
 * - `item, homeId, itemId` → an item (sealed bytes inline up to {@linkcode inlineBytes});
 *   `chunk, itemId, n` → the sealed bytes of a larger item, made visible by the item record
 *   written after them. Chunks without an item are collected by {@linkcode EdgeStore.collectOrphans}.
 * - `device, deviceId` → the home and account of a paired device and its public key
 * - `rate, homeId, hour` → outbound recipients counted this hour
 * - `nonce, keyId, nonce` → seen request nonces (expire)
 *
 * Several edge processes may share one KV: every change is an atomic commit
 * with checks, and waiting pulls re-read KV (DESIGN.md, Edge).
 *
 * @example
 * ```ts
 * const store = new EdgeStore(await Deno.openKv("edge.kv"));
 * const token = await store.createPairing("example.org");
 * ```
 */
import { sha256, toBase64Url, toHex } from "../src/encoding.ts";
import { ProtocolError } from "../src/errors.ts";
import { limits } from "../src/limits.ts";
import { addressKey } from "../src/mail/address_key.ts";
import { commitRetrying } from "../src/kv.ts";
import type { EdgeAccount } from "../src/wire/edge_api.ts";
import { Wakeups } from "./long_poll.ts";

/** Sealed bytes kept in the item record itself (KV values are at most 64 KiB). */
export const inlineBytes = 60 * 1024;
/** Bytes per chunk of a larger item. */
const chunkBytes = 60 * 1024;
/** Chunks written per commit (KV caps an atomic operation's size). */
const chunksPerCommit = 10;
/** Item records per group commit, and their total size. */
const groupItems = 16;
const groupBytes = 640 * 1024;

export interface HomeRecord {
  publicKey: string;
  domains: string[];
  created: number;
}

interface AccountRecord {
  recipient: string;
  addressKeys: string[];
}

/** A paired device: whose it is and the key its requests are signed with. */
export interface DeviceRecord {
  home: string;
  account: string;
  publicKey: string;
}

interface AddressRecord {
  home: string;
  account: string;
}

export interface ItemRecord {
  id: string;
  account: string;
  size: number;
  arrived: number;
  sealedSize: number;
  /** Number of chunks; 0 when the bytes are inline. */
  chunks: number;
  inline?: Uint8Array;
}

/** Where a recipient address goes. */
export type RecipientRoute =
  | { kind: "account"; home: string; account: string; recipient: string }
  | { kind: "unknown-user" }
  | { kind: "not-ours" };

export interface HomeStatus {
  homeId: string;
  domains: string[];
  accounts: number;
  waiting: number;
  bytes: number;
  oldest: number | null;
}

interface PendingItem {
  home: string;
  rec: ItemRecord;
  resolve(): void;
  reject(e: unknown): void;
}

async function tokenHash(token: string): Promise<string> {
  return toHex(await sha256(new TextEncoder().encode(`hearth-token:${token}`)));
}

function newToken(): string {
  return toBase64Url(crypto.getRandomValues(new Uint8Array(24)));
}

/** Item ids sort by arrival time, so a home pulls oldest first. */
function newItemId(now: number): string {
  const rand = toHex(crypto.getRandomValues(new Uint8Array(8)));
  return `${now.toString(36).padStart(9, "0")}${rand}`;
}

/** Adds to a small memo, emptying it when full (its entries are cheap to recompute). */
function remember(memo: Map<string, string>, key: string, value: string, max: number) {
  if (memo.has(key)) return;
  if (memo.size >= max) memo.clear();
  memo.set(key, value);
}

function itemTime(id: string): number {
  return parseInt(id.slice(0, 9), 36);
}

export class EdgeStore {
  readonly kv: Deno.Kv;
  readonly now: () => number;
  #pending: PendingItem[] = [];
  #flushing = false;
  #closing = false;
  readonly #wakeups = new Wakeups();
  // SHA-256 (WebCrypto, async) was a tenth of the CPU per inbound message: a front sends
  // every message with one token, and mail comes to few addresses. Bounded; only hashes of
  // known tokens and addresses are kept, and KV is still read every time.
  readonly #frontHashes = new Map<string, string>();
  readonly #addressKeys = new Map<string, string>();

  constructor(kv: Deno.Kv, opts: { now?: () => number } = {}) {
    this.kv = kv;
    this.now = opts.now ?? Date.now;
  }

  /** A one-time token that lets a home box register for `domain`. */
  async createPairing(domain: string): Promise<string> {
    const token = newToken();
    await this.kv.set(["edge", "pairing", await tokenHash(token)], {
      domain: domain.toLowerCase(),
    }, { expireIn: limits.edgePairingMs });
    return token;
  }

  /** Uses a pairing token: pins `publicKey` as a new home serving the token's domain. */
  async registerHome(
    token: string,
    publicKey: string,
  ): Promise<{ homeId: string; domain: string }> {
    const key = ["edge", "pairing", await tokenHash(token)];
    const pairing = await this.kv.get<{ domain: string }>(key);
    if (!pairing.value) {
      throw new ProtocolError("NO", "the pairing token is unknown, used or expired", {
        http: 403,
      });
    }
    const domain = pairing.value.domain;
    const homeId = `home-${toHex(crypto.getRandomValues(new Uint8Array(8)))}`;
    const home: HomeRecord = { publicKey, domains: [domain], created: this.now() };
    // One commit: the token is spent exactly once, even with two edges racing.
    const res = await commitRetrying(() =>
      this.kv.atomic().check(pairing).delete(key)
        .set(["edge", "home", homeId], home)
        .set(["edge", "domain", domain], homeId)
    );
    if (!res.ok) throw new ProtocolError("NO", "the pairing token was just used", { http: 409 });
    return { homeId, domain };
  }

  async home(homeId: string): Promise<HomeRecord | null> {
    return (await this.kv.get<HomeRecord>(["edge", "home", homeId])).value;
  }

  /** The pinned public key of a home, or null. */
  async homeKey(homeId: string): Promise<string | null> {
    return (await this.home(homeId))?.publicKey ?? null;
  }

  /** Records a request nonce; false when it was seen before (a replay). */
  async claimNonce(keyId: string, nonce: string, ttlMs: number): Promise<boolean> {
    const key = ["edge", "nonce", keyId, nonce];
    const res = await commitRetrying(() =>
      this.kv.atomic().check({ key, versionstamp: null }).set(key, 1, { expireIn: ttlMs })
    );
    return res.ok;
  }

  /** Replaces a home's accounts (and the address keys mail is accepted for). */
  async putAccounts(homeId: string, accounts: EdgeAccount[]): Promise<void> {
    const wanted = new Map(accounts.map((a) => [a.id, a]));
    const op = () => this.kv.atomic();
    let batch = op();
    let n = 0;
    const flush = async () => {
      if (n && !(await batch.commit()).ok) throw new Error("account update was refused");
      batch = op();
      n = 0;
    };
    for await (const e of this.kv.list<AccountRecord>({ prefix: ["edge", "account", homeId] })) {
      const id = e.key[3] as string;
      const next = wanted.get(id);
      for (const k of e.value.addressKeys) {
        if (next?.addressKeys.includes(k)) continue;
        const cur = await this.kv.get<AddressRecord>(["edge", "addr", k]);
        if (cur.value?.home === homeId) {
          batch.delete(["edge", "addr", k]);
          if (++n >= 500) await flush();
        }
      }
      if (!next) {
        batch.delete(e.key);
        if (++n >= 500) await flush();
      }
    }
    for (const a of accounts) {
      if (!/^age1[0-9a-z]+$/.test(a.recipient)) {
        throw new ProtocolError("BAD", `account ${a.id} has no valid age recipient`);
      }
      batch.set(["edge", "account", homeId, a.id], {
        recipient: a.recipient,
        addressKeys: a.addressKeys,
      });
      for (const k of a.addressKeys) {
        batch.set(["edge", "addr", k], { home: homeId, account: a.id });
        if (++n >= 500) await flush();
      }
      if (++n >= 500) await flush();
    }
    await flush();
  }

  /** Where mail for `address` goes (RCPT TO check). */
  async route(address: string): Promise<RecipientRoute> {
    const at = address.lastIndexOf("@");
    const domain = address.slice(at + 1).toLowerCase();
    if (at < 1 || !domain) return { kind: "not-ours" };
    const home = (await this.kv.get<string>(["edge", "domain", domain])).value;
    if (!home) return { kind: "not-ours" };
    const key = this.#addressKeys.get(address) ?? await addressKey(address);
    const addr = (await this.kv.get<AddressRecord>(["edge", "addr", key])).value;
    if (!addr || addr.home !== home) return { kind: "unknown-user" };
    remember(this.#addressKeys, address, key, 4096);
    const acct = (await this.kv.get<AccountRecord>(["edge", "account", home, addr.account])).value;
    if (!acct) return { kind: "unknown-user" };
    return { kind: "account", home, account: addr.account, recipient: acct.recipient };
  }

  /**
   * Commits a sealed item; resolves once it is durable (the `250` waits for
   * it). Concurrent commits share one KV commit (group commit).
   */
  async commitSealed(
    home: string,
    account: string,
    sealed: Uint8Array,
    size: number,
  ): Promise<string> {
    const arrived = this.now();
    const id = newItemId(arrived);
    const rec: ItemRecord = {
      id,
      account,
      size,
      arrived,
      sealedSize: sealed.length,
      chunks: 0,
    };
    if (sealed.length <= inlineBytes) {
      rec.inline = sealed;
    } else {
      rec.chunks = Math.ceil(sealed.length / chunkBytes);
      for (let first = 0; first < rec.chunks; first += chunksPerCommit) {
        const op = this.kv.atomic();
        for (let n = first; n < Math.min(rec.chunks, first + chunksPerCommit); n++) {
          op.set(["edge", "chunk", id, n], sealed.subarray(n * chunkBytes, (n + 1) * chunkBytes));
        }
        if (!(await op.commit()).ok) throw new Error("chunk commit was refused");
      }
    }
    await new Promise<void>((resolve, reject) => {
      this.#pending.push({ home, rec, resolve, reject });
      if (!this.#flushing) this.#flush();
    });
    this.#wakeups.wake(home);
    return id;
  }

  async #flush(): Promise<void> {
    this.#flushing = true;
    try {
      while (this.#pending.length) {
        const batch: PendingItem[] = [];
        let bytes = 0;
        while (this.#pending.length && batch.length < groupItems) {
          const next = this.#pending[0];
          const size = (next.rec.inline?.length ?? 0) + 200;
          if (batch.length && bytes + size > groupBytes) break;
          batch.push(this.#pending.shift()!);
          bytes += size;
        }
        try {
          const op = this.kv.atomic();
          for (const p of batch) op.set(["edge", "item", p.home, p.rec.id], p.rec);
          if (!(await op.commit()).ok) throw new Error("item commit was refused");
          for (const p of batch) p.resolve();
        } catch (e) {
          for (const p of batch) p.reject(e);
        }
      }
    } finally {
      this.#flushing = false;
    }
  }

  /** Items waiting for a home, oldest first. */
  async list(home: string, limit: number): Promise<{ items: ItemRecord[]; more: boolean }> {
    const items: ItemRecord[] = [];
    let more = false;
    for await (
      const e of this.kv.list<ItemRecord>({ prefix: ["edge", "item", home] }, {
        limit: limit + 1,
      })
    ) {
      if (items.length === limit) {
        more = true;
        break;
      }
      items.push(e.value);
    }
    return { items, more };
  }

  /** The sealed bytes of one item of a home, or null if it is gone. */
  async sealed(home: string, id: string): Promise<Uint8Array | null> {
    const rec = (await this.kv.get<ItemRecord>(["edge", "item", home, id])).value;
    if (!rec) return null;
    if (rec.inline) return rec.inline;
    const out = new Uint8Array(rec.sealedSize);
    let at = 0;
    for await (const e of this.kv.list<Uint8Array>({ prefix: ["edge", "chunk", id] })) {
      out.set(e.value, at);
      at += e.value.length;
    }
    if (at !== rec.sealedSize) throw new Error(`item ${id} is incomplete`);
    return out;
  }

  /** Deletes items the home has stored; unknown ids (already acked) are fine. */
  async ack(home: string, ids: string[]): Promise<number> {
    let n = 0;
    for (const id of ids) {
      const rec = (await this.kv.get<ItemRecord>(["edge", "item", home, id])).value;
      if (!rec) continue;
      await this.#deleteItem(home, rec);
      n++;
    }
    return n;
  }

  async #deleteItem(home: string, rec: ItemRecord): Promise<void> {
    // The record goes first: chunks left by a crash here are orphans, collected later.
    await this.kv.delete(["edge", "item", home, rec.id]);
    for (let first = 0; first < rec.chunks; first += 100) {
      const op = this.kv.atomic();
      for (let n = first; n < Math.min(rec.chunks, first + 100); n++) {
        op.delete(["edge", "chunk", rec.id, n]);
      }
      await op.commit();
    }
  }

  /**
   * Deletes chunks no item owns that are older than `graceMs` (a crash
   * between chunks and record; younger ones may belong to a commit in
   * progress on another edge process).
   */
  async collectOrphans(graceMs = 60 * 60_000): Promise<number> {
    let removed = 0;
    const owned = new Map<string, boolean>();
    const homes = await this.homeIds();
    for await (const e of this.kv.list({ prefix: ["edge", "chunk"] })) {
      const id = e.key[2] as string;
      if (this.now() - itemTime(id) < graceMs) continue;
      if (!owned.has(id)) {
        let found = false;
        for (const h of homes) {
          if ((await this.kv.get(["edge", "item", h, id])).versionstamp) found = true;
        }
        owned.set(id, found);
      }
      if (!owned.get(id)) {
        await this.kv.delete(e.key);
        removed++;
      }
    }
    return removed;
  }

  /** Deletes items older than the retention time; returns how many. */
  async expire(retentionMs: number = limits.edgeRetentionMs): Promise<number> {
    let n = 0;
    for (const h of await this.homeIds()) {
      for await (const e of this.kv.list<ItemRecord>({ prefix: ["edge", "item", h] })) {
        if (this.now() - e.value.arrived < retentionMs) break;
        await this.#deleteItem(h, e.value);
        n++;
      }
    }
    return n;
  }

  async homeIds(): Promise<string[]> {
    const ids: string[] = [];
    for await (const e of this.kv.list({ prefix: ["edge", "home"] })) ids.push(e.key[2] as string);
    return ids;
  }

  /** What is waiting per home (`hearth edge status`). */
  async status(): Promise<HomeStatus[]> {
    const out: HomeStatus[] = [];
    for await (const e of this.kv.list<HomeRecord>({ prefix: ["edge", "home"] })) {
      const homeId = e.key[2] as string;
      let waiting = 0, bytes = 0, accounts = 0;
      let oldest: number | null = null;
      for await (const i of this.kv.list<ItemRecord>({ prefix: ["edge", "item", homeId] })) {
        waiting++;
        bytes += i.value.sealedSize;
        oldest ??= i.value.arrived;
      }
      for await (const _ of this.kv.list({ prefix: ["edge", "account", homeId] })) accounts++;
      out.push({ homeId, domains: e.value.domains, accounts, waiting, bytes, oldest });
    }
    return out;
  }

  /**
   * Counts `n` against a home's hourly budget; false when it would exceed
   * `perHour`. A fixed window per clock hour, in KV so every edge process
   * shares it.
   */
  async takeRate(home: string, n: number, perHour: number): Promise<boolean> {
    const hour = Math.floor(this.now() / 3600_000);
    const key = ["edge", "rate", home, hour];
    for (let attempt = 0; attempt < 20; attempt++) {
      const cur = await this.kv.get<number>(key);
      const used = cur.value ?? 0;
      if (used + n > perHour) return false;
      const res = await commitRetrying(() =>
        this.kv.atomic().check(cur).set(key, used + n, { expireIn: 2 * 3600_000 })
      );
      if (res.ok) return true;
    }
    throw new Error("the rate counter is too contended");
  }

  /** Registers a device (a paired phone) of one of a home's accounts, with its signing key. */
  async putDevice(home: string, deviceId: string, account: string, publicKey: string) {
    const cur = await this.device(deviceId);
    if (cur && cur.home !== home) {
      throw new ProtocolError("NO", "that device id belongs to another home", { http: 409 });
    }
    if (!(await this.kv.get(["edge", "account", home, account])).versionstamp) {
      throw new ProtocolError("NO", `no account ${account} registered for this home`, {
        http: 404,
      });
    }
    await this.kv.set(["edge", "device", deviceId], { home, account, publicKey });
  }

  async device(deviceId: string): Promise<DeviceRecord | null> {
    return (await this.kv.get<DeviceRecord>(["edge", "device", deviceId])).value;
  }

  async removeDevice(home: string, deviceId: string): Promise<boolean> {
    const cur = await this.kv.get<DeviceRecord>(["edge", "device", deviceId]);
    if (!cur.value || cur.value.home !== home) return false;
    await this.kv.delete(["edge", "device", deviceId]);
    return true;
  }

  /** A bearer token for an HTTP mail front (`POST /v1/inbound`). */
  async createFrontToken(name: string): Promise<string> {
    const token = newToken();
    await this.kv.set(["edge", "front", await tokenHash(token)], { name, created: this.now() });
    return token;
  }

  async frontName(token: string): Promise<string | null> {
    const hash = this.#frontHashes.get(token) ?? await tokenHash(token);
    const rec = await this.kv.get<{ name: string }>(["edge", "front", hash]);
    if (rec.value) remember(this.#frontHashes, token, hash, 64);
    return rec.value?.name ?? null;
  }

  /**
   * Waits until an item for `home` may be waiting or `ms` passed. Commits in
   * this process wake it at once; those of other processes are seen by the
   * caller's periodic re-read.
   */
  waitForMail(home: string, ms: number, signal?: AbortSignal): Promise<void> {
    if (this.#closing) return Promise.resolve();
    return this.#wakeups.wait(home, ms, signal);
  }

  /** True once {@linkcode shutdown} was called: waiting pulls answer at once. */
  get closing(): boolean {
    return this.#closing;
  }

  /** Ends every waiting pull (the HTTP server waits for open requests when it stops). */
  shutdown() {
    this.#closing = true;
    this.#wakeups.wakeAll();
  }
}
