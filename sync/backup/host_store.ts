/**
 * The backup host's state (docs/backup.md), in the host box's KV:
 *
 * - `bk-host, peer, P` → {@linkcode PeerRecord}: name, quota, usage, the token hash, the pinned key
 * - `bk-host, obj, P, id` → size and arrival time of a stored object (bytes in {@linkcode ObjectStorage})
 * - `bk-host, man, P, seq` → a signed manifest, every version kept until a due prune
 * - `bk-host, prune, P` → the pending prune and when it takes effect
 * - `bk-host, reader, P, keyId` → a restore session's read-only key (expires)
 * - `bk-host, nonce, …`, `bk-host, challenge, …` → replay protection, restore challenges (expire)
 *
 * Write-only: nothing here deletes or replaces an object or a manifest on a
 * peer's request, except {@linkcode BackupHostStore.applyDuePrunes} once a
 * prune's grace period is over.
 */
import { sealToRecipient } from "../../src/crypto/age.ts";
import { fromBase64Url, sha256, toBase64Url, toHex } from "../../src/encoding.ts";
import { ProtocolError } from "../../src/errors.ts";
import { commitRetrying } from "../../src/kv.ts";
import { limits } from "../../src/limits.ts";
import {
  blobListIds,
  decodeBlobList,
  decodeCatalog,
  type Manifest,
  manifestRefs,
  objectIdOf,
  type SignedManifest,
  verifyManifest,
} from "./format.ts";
import type { ObjectStorage } from "./object_files.ts";

export interface PeerRecord {
  id: string;
  name: string;
  quotaBytes: number;
  tokenHash: string;
  /** The peer's Ed25519 key, pinned at its first contact; null before. */
  publicKey: string | null;
  created: number;
  lastContact: number | null;
  usedBytes: number;
  objects: number;
  latestSeq: number;
}

export interface PendingPrune {
  /** Manifests below this sequence number go, and objects only they name. */
  keepFrom: number;
  requested: number;
  effectiveAt: number;
}

interface StoredManifest extends SignedManifest {
  seq: number;
  created: number;
  received: number;
}

const P = "bk-host";
const contactEveryMs = 60_000;

function denied(text: string, http = 403): ProtocolError {
  return new ProtocolError("NO", text, { http });
}

async function tokenHash(token: string): Promise<string> {
  return toHex(await sha256(new TextEncoder().encode(token)));
}

/** Parses a quota such as `20GB`, `500MiB` or `1TB` into bytes; RangeError otherwise. */
export function parseQuota(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)?$/i.exec(text.trim());
  if (!m) throw new RangeError(`"${text}" is not a size like 20GB or 500MiB`);
  const unit = (m[2] ?? "B").toUpperCase();
  const mult: Record<string, number> = {
    B: 1,
    KB: 1e3,
    MB: 1e6,
    GB: 1e9,
    TB: 1e12,
    KIB: 1024,
    MIB: 1024 ** 2,
    GIB: 1024 ** 3,
    TIB: 1024 ** 4,
  };
  return Math.floor(Number(m[1]) * mult[unit]);
}

export class BackupHostStore {
  readonly kv: Deno.Kv;
  readonly #objects: ObjectStorage;
  readonly #now: () => number;
  readonly #graceMs: number;
  /** One writer per peer in this process: usage and object records stay consistent. */
  readonly #locks = new Map<string, Promise<unknown>>();

  constructor(
    kv: Deno.Kv,
    objects: ObjectStorage,
    opts: { now?: () => number; graceMs?: number } = {},
  ) {
    this.kv = kv;
    this.#objects = objects;
    this.#now = opts.now ?? Date.now;
    this.#graceMs = opts.graceMs ?? limits.backupPruneGraceMs;
  }

  #serial<T>(peer: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(peer) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => {});
    this.#locks.set(peer, tail);
    tail.then(() => this.#locks.get(peer) === tail && this.#locks.delete(peer));
    return run;
  }

  /** Makes a peer slot and its one-time token (`hearth friend allow`). */
  async allow(name: string, quotaBytes: number): Promise<{ peer: string; token: string }> {
    const peer = `p-${toHex(crypto.getRandomValues(new Uint8Array(8)))}`;
    const token = toBase64Url(crypto.getRandomValues(new Uint8Array(24)));
    const rec: PeerRecord = {
      id: peer,
      name,
      quotaBytes,
      tokenHash: await tokenHash(token),
      publicKey: null,
      created: this.#now(),
      lastContact: null,
      usedBytes: 0,
      objects: 0,
      latestSeq: 0,
    };
    await this.kv.set([P, "peer", peer], rec);
    return { peer, token };
  }

  async peer(peer: string): Promise<PeerRecord | null> {
    return (await this.kv.get<PeerRecord>([P, "peer", peer])).value;
  }

  async peers(): Promise<(PeerRecord & { prune: PendingPrune | null })[]> {
    const out = [];
    for await (const e of this.kv.list<PeerRecord>({ prefix: [P, "peer"] })) {
      out.push({ ...e.value, prune: await this.pendingPrune(e.value.id) });
    }
    return out;
  }

  /** The key a request's key id stands for: the pinned peer key, or a live restore reader. */
  async keyFor(peer: string, keyId: string, read: boolean): Promise<string | null> {
    if (keyId === peer) return (await this.peer(peer))?.publicKey ?? null;
    if (!read) return null;
    return (await this.kv.get<{ publicKey: string }>([P, "reader", peer, keyId])).value
      ?.publicKey ?? null;
  }

  async claimNonce(keyId: string, nonce: string, ttlMs: number): Promise<boolean> {
    const key = [P, "nonce", keyId, nonce];
    const res = await commitRetrying(() =>
      this.kv.atomic().check({ key, versionstamp: null }).set(key, 1, { expireIn: ttlMs })
    );
    return res.ok;
  }

  /** Notes a peer's contact (at most once a minute: `hearth friend list` shows it). */
  async touch(peer: string): Promise<void> {
    const e = await this.kv.get<PeerRecord>([P, "peer", peer]);
    if (!e.value || (e.value.lastContact ?? 0) > this.#now() - contactEveryMs) return;
    await this.kv.atomic().check(e).set(e.key, { ...e.value, lastContact: this.#now() }).commit();
  }

  /** First contact: the grant's token pins the key that signed the request. */
  async pin(peer: string, token: string, publicKey: string): Promise<void> {
    const e = await this.kv.get<PeerRecord>([P, "peer", peer]);
    if (!e.value) throw denied("no such backup peer here; ask your friend for a new grant", 404);
    if (e.value.tokenHash !== await tokenHash(token)) throw denied("the grant token is wrong");
    if (e.value.publicKey === publicKey) return;
    if (e.value.publicKey) {
      throw denied("this grant is already in use by another key; ask your friend for a new grant");
    }
    const res = await this.kv.atomic().check(e).set(e.key, {
      ...e.value,
      publicKey,
      lastContact: this.#now(),
    }).commit();
    if (!res.ok) throw denied("the grant was used at the same moment; try again", 409);
  }

  /** The ids among `ids` this host does not hold for the peer. */
  async missing(peer: string, ids: string[]): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < ids.length; i += 10) {
      const batch = ids.slice(i, i + 10);
      const got = await this.kv.getMany(batch.map((id) => [P, "obj", peer, id]));
      got.forEach((g, j) => g.value === null && out.push(batch[j]));
    }
    return out;
  }

  /**
   * Stores an object under its content id. Never replaces one: the same id
   * again is accepted as already stored (same bytes, by the id's definition).
   */
  async putObject(peer: string, id: string, bytes: Uint8Array): Promise<{ stored: boolean }> {
    return { stored: (await this.putObjects(peer, [{ id, bytes }])).stored === 1 };
  }

  /**
   * Stores a batch of objects: every id checked against its bytes, the quota
   * checked for the new ones, the files written with shared directory fsyncs,
   * then one KV commit for their records and the usage.
   */
  putObjects(
    peer: string,
    items: { id: string; bytes: Uint8Array }[],
  ): Promise<{ stored: number; already: number }> {
    for (const { id, bytes } of items) {
      if (objectIdOf(bytes) !== id) {
        return Promise.reject(
          new ProtocolError("BAD", `object ${id} does not match its content (SHA-256)`),
        );
      }
    }
    return this.#serial(peer, async () => {
      const fresh = new Map<string, Uint8Array>();
      for (let i = 0; i < items.length; i += 10) {
        const batch = items.slice(i, i + 10);
        const got = await this.kv.getMany(batch.map((x) => [P, "obj", peer, x.id]));
        got.forEach((g, j) => g.value === null && fresh.set(batch[j].id, batch[j].bytes));
      }
      if (!fresh.size) return { stored: 0, already: items.length };
      const rec = await this.kv.get<PeerRecord>([P, "peer", peer]);
      if (!rec.value) throw denied("no such backup peer here", 404);
      const adding = [...fresh.values()].reduce((n, b) => n + b.length, 0);
      if (rec.value.usedBytes + adding > rec.value.quotaBytes) {
        throw denied(
          `the backup quota of ${rec.value.quotaBytes} bytes is full; ask your friend for more`,
          507,
        );
      }
      await this.#objects.writeMany(peer, [...fresh].map(([id, bytes]) => ({ id, bytes })));
      const now = this.#now();
      const op = this.kv.atomic().check(rec);
      for (const [id, bytes] of fresh) {
        // The peer record's check covers these: every object record is written with it.
        op.set([P, "obj", peer, id], { size: bytes.length, at: now });
      }
      op.set(rec.key, {
        ...rec.value,
        usedBytes: rec.value.usedBytes + adding,
        objects: rec.value.objects + fresh.size,
        lastContact: now,
      });
      const res = await commitRetrying(() => op);
      if (!res.ok) {
        throw new ProtocolError("NO", "the objects were stored concurrently; retry", {
          http: 409,
        });
      }
      return { stored: fresh.size, already: items.length - fresh.size };
    });
  }

  /** An object's bytes, or null when this host does not hold it. */
  async getObject(peer: string, id: string): Promise<Uint8Array | null> {
    if (!(await this.kv.get([P, "obj", peer, id])).value) return null;
    return await this.#objects.read(peer, id);
  }

  /**
   * Every object a manifest names: its own references, the catalogs' buckets and units, and
   * the buckets' blobs and index objects (what the host can read of them: ids and sizes).
   */
  async #referenced(peer: string, m: Manifest, have?: Set<string>): Promise<string[]> {
    const ids = manifestRefs(m).map((r) => r.id);
    const read = (id: string) =>
      !have || have.has(id) ? this.#objects.read(peer, id) : Promise.resolve(null);
    for (const a of m.accounts) {
      const catalog = await read(a.blobs.id);
      if (!catalog) continue;
      const { buckets, units } = decodeCatalog(catalog);
      for (const r of [...buckets, ...units]) ids.push(r.id);
      for (const b of buckets) {
        const bucket = await read(b.id);
        if (bucket) ids.push(...blobListIds(decodeBlobList(bucket)));
      }
    }
    return ids;
  }

  async #objectSet(peer: string): Promise<Set<string>> {
    const have = new Set<string>();
    for await (const e of this.kv.list({ prefix: [P, "obj", peer] })) have.add(e.key[3] as string);
    return have;
  }

  /**
   * Accepts a new manifest version: signed by the pinned key, numbered above
   * every version held, and naming only objects already stored.
   */
  putManifest(peer: string, signed: SignedManifest): Promise<Manifest> {
    return this.#serial(peer, async () => {
      const rec = await this.kv.get<PeerRecord>([P, "peer", peer]);
      if (!rec.value?.publicKey) throw denied("this peer has not made first contact", 403);
      if (new TextEncoder().encode(signed.body ?? "").length > limits.backupManifestBytes) {
        throw new ProtocolError("BAD", "the manifest is too large", { http: 413 });
      }
      const m = await verifyManifest(signed, rec.value.publicKey);
      if (m.seq <= rec.value.latestSeq) {
        throw denied(
          `manifest ${m.seq} is not newer than ${rec.value.latestSeq}, which is kept`,
          409,
        );
      }
      const have = await this.#objectSet(peer);
      const absent = (await this.#referenced(peer, m, have)).filter((id) => !have.has(id))
        .map((id) => ({ id }));
      if (absent.length) {
        throw new ProtocolError(
          "NO",
          `the manifest names ${absent.length} objects this host does not hold (first ${
            absent[0].id
          })`,
          { http: 409 },
        );
      }
      const stored: StoredManifest = {
        ...signed,
        seq: m.seq,
        created: m.created,
        received: this.#now(),
      };
      const res = await this.kv.atomic().check(rec)
        .check({ key: [P, "man", peer, m.seq], versionstamp: null })
        .set([P, "man", peer, m.seq], stored)
        .set(rec.key, { ...rec.value, latestSeq: m.seq, lastContact: this.#now() })
        .commit();
      if (!res.ok) throw denied("a manifest was stored concurrently; retry", 409);
      return m;
    });
  }

  async manifests(peer: string): Promise<{ seq: number; created: number; received: number }[]> {
    const out = [];
    for await (const e of this.kv.list<StoredManifest>({ prefix: [P, "man", peer] })) {
      out.push({ seq: e.value.seq, created: e.value.created, received: e.value.received });
    }
    return out;
  }

  async manifest(peer: string, seq: number): Promise<SignedManifest | null> {
    const v = (await this.kv.get<StoredManifest>([P, "man", peer, seq])).value;
    return v ? { body: v.body, signature: v.signature } : null;
  }

  async pendingPrune(peer: string): Promise<PendingPrune | null> {
    return (await this.kv.get<PendingPrune>([P, "prune", peer])).value;
  }

  /**
   * Records a prune signed by the peer's key. It takes effect after the grace
   * period; a later request starts its own grace period (never a shorter one).
   */
  async requestPrune(peer: string, keepFrom: number): Promise<PendingPrune> {
    const rec = await this.peer(peer);
    if (!rec) throw denied("no such backup peer here", 404);
    const now = this.#now();
    const prune: PendingPrune = {
      keepFrom: Math.min(keepFrom, rec.latestSeq),
      requested: now,
      effectiveAt: now + this.#graceMs,
    };
    await this.kv.set([P, "prune", peer], prune);
    return prune;
  }

  /**
   * Carries out prunes whose grace period is over: manifests below `keepFrom`
   * (never the newest), then objects no kept manifest names that arrived
   * before the request (later ones may belong to a manifest in progress).
   */
  async applyDuePrunes(): Promise<{ manifests: number; objects: number; bytes: number }> {
    const done = { manifests: 0, objects: 0, bytes: 0 };
    for await (const e of this.kv.list<PendingPrune>({ prefix: [P, "prune"] })) {
      const peer = e.key[2] as string;
      if (e.value.effectiveAt > this.#now()) continue;
      await this.#serial(peer, async () => {
        const rec = await this.peer(peer);
        if (!rec) return;
        const keepFrom = Math.min(e.value.keepFrom, rec.latestSeq);
        const keep = new Set<string>();
        for await (const m of this.kv.list<StoredManifest>({ prefix: [P, "man", peer] })) {
          if (m.value.seq < keepFrom) {
            await this.kv.delete(m.key);
            done.manifests++;
            continue;
          }
          const man = JSON.parse(m.value.body) as Manifest;
          for (const id of await this.#referenced(peer, man)) keep.add(id);
        }
        for await (
          const o of this.kv.list<{ size: number; at: number }>({
            prefix: [P, "obj", peer],
          })
        ) {
          const id = o.key[3] as string;
          if (keep.has(id) || o.value.at >= e.value.requested) continue;
          await this.#objects.remove(peer, id);
          const cur = await this.kv.get<PeerRecord>([P, "peer", peer]);
          if (!cur.value) break;
          await this.kv.atomic().check(cur).delete(o.key).set(cur.key, {
            ...cur.value,
            usedBytes: cur.value.usedBytes - o.value.size,
            objects: cur.value.objects - 1,
          }).commit();
          done.objects++;
          done.bytes += o.value.size;
        }
        await this.kv.atomic().check(e).delete(e.key).commit();
      });
    }
    return done;
  }

  /**
   * Starts a restore on a new machine: the grant's token, then a challenge
   * per account sealed to its recipient, which only its identity opens. The
   * wrapped identities go out too, so a password can stand in for the
   * recovery key. Returns what the restorer needs to answer.
   */
  async startRestore(peer: string, token: string, publicKey: string) {
    const rec = await this.peer(peer);
    if (!rec) throw denied("no such backup peer here; check the grant", 404);
    if (rec.tokenHash !== await tokenHash(token)) throw denied("the grant token is wrong");
    if (!rec.publicKey || !rec.latestSeq) throw denied("this peer has no backup yet", 404);
    const latest = await this.manifest(peer, rec.latestSeq);
    const m = JSON.parse(latest!.body) as Manifest;
    const session = toHex(crypto.getRandomValues(new Uint8Array(12)));
    const answers: string[] = [];
    const accounts = [];
    for (const a of m.accounts) {
      const secret = crypto.getRandomValues(new Uint8Array(32));
      answers.push(toHex(await sha256(secret)));
      const wrapped = await this.#objects.read(peer, a.wrapped.id);
      accounts.push({
        id: a.id,
        recipient: a.recipient,
        challenge: toBase64Url(await sealToRecipient(secret, a.recipient)),
        wrapped: wrapped ? toBase64Url(wrapped) : null,
      });
    }
    await this.kv.set([P, "challenge", peer, session], { publicKey, answers }, {
      expireIn: 10 * 60_000,
    });
    return { session, home: rec.publicKey, accounts };
  }

  /** The key a restore session will sign with, while its challenge is open. */
  async challengeKey(peer: string, session: string): Promise<string | null> {
    return (await this.kv.get<{ publicKey: string }>([P, "challenge", peer, session])).value
      ?.publicKey ?? null;
  }

  /** An opened challenge makes the session's key a reader of the peer's backup for a day. */
  async finishRestore(peer: string, session: string, answer: string): Promise<string> {
    const c = await this.kv.get<{ publicKey: string; answers: string[] }>([
      P,
      "challenge",
      peer,
      session,
    ]);
    if (!c.value) throw denied("the restore session expired; start again", 404);
    const hash = toHex(await sha256(fromBase64Url(answer)));
    if (!c.value.answers.includes(hash)) throw denied("the challenge answer is wrong");
    const keyId = `r-${session}`;
    await this.kv.atomic().delete(c.key)
      .set([P, "reader", peer, keyId], { publicKey: c.value.publicKey }, {
        expireIn: 24 * 60 * 60_000,
      }).commit();
    return keyId;
  }
}
