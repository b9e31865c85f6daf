/**
 * The backup host's state (docs/backup.md), in the host box's KV:
 *
 * - `bk-host, peer, P` → {@linkcode PeerRecord}: name, quota, usage, the token hash, the pinned key
 * - `bk-host, pack, P, packId` → the objects of one pack file (ids, offsets, sizes; pack_index.ts),
 *   whose bytes are in {@linkcode ObjectStorage}; `bk-host, objgen, P` changes with them
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
  type BlobDelta,
  type BlobEntry,
  blobListIds,
  decodeBlobDelta,
  decodeBlobList,
  decodeCatalog,
  type Manifest,
  manifestRefs,
  objectIdOf,
  resolveBlobList,
  type SignedManifest,
  verifyManifest,
} from "./format.ts";
import type { ObjectStorage } from "./object_files.ts";
import {
  decodePackEntries,
  encodePackEntries,
  indexKeys,
  type Located,
  ObjectIndex,
  type PackRecord,
} from "./pack_index.ts";

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
  readonly #index: ObjectIndex;

  constructor(
    kv: Deno.Kv,
    objects: ObjectStorage,
    opts: { now?: () => number; graceMs?: number } = {},
  ) {
    this.kv = kv;
    this.#objects = objects;
    this.#index = new ObjectIndex(kv);
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
    const { objects } = await this.#index.load(peer);
    return ids.filter((id) => !objects.has(id));
  }

  /**
   * Stores an object under its content id. Never replaces one: the same id
   * again is accepted as already stored (same bytes, by the id's definition).
   */
  async putObject(peer: string, id: string, bytes: Uint8Array): Promise<{ stored: boolean }> {
    return { stored: (await this.putObjects(peer, [{ id, bytes }])).stored === 1 };
  }

  /**
   * Stores a batch of objects: every id checked against its bytes, the new
   * ones written as one pack (one file and one directory fsync, outside the
   * peer's lock, so two batches in flight share the disk's time), then, under
   * the lock, the quota checked and one KV commit for the pack's record and
   * the usage. An object stored meanwhile by another batch keeps its first copy.
   */
  async putObjects(
    peer: string,
    items: { id: string; bytes: Uint8Array }[],
    framed?: Uint8Array,
  ): Promise<{ stored: number; already: number }> {
    for (const { id, bytes } of items) {
      if (objectIdOf(bytes) !== id) {
        throw new ProtocolError("BAD", `object ${id} does not match its content (SHA-256)`);
      }
    }
    const unique = [...new Map(items.map((i) => [i.id, i.bytes]))].map(([id, bytes]) => ({
      id,
      bytes,
    }));
    const quotaFull = (rec: PeerRecord) =>
      denied(`the backup quota of ${rec.quotaBytes} bytes is full; ask your friend for more`, 507);
    const size = (list: { bytes: Uint8Array }[]) => list.reduce((n, i) => n + i.bytes.length, 0);
    const before = await this.peer(peer);
    if (!before) throw denied("no such backup peer here", 404);
    const { objects } = await this.#index.load(peer);
    let candidates = unique.filter((i) => !objects.has(i.id));
    if (!candidates.length) return { stored: 0, already: items.length };
    if (before.usedBytes + size(candidates) > before.quotaBytes) throw quotaFull(before);
    // The request's framing is the pack's when every object in it is new (a first run).
    let written = await this.#objects.writePack(
      peer,
      candidates,
      framed && candidates.length === items.length ? framed : undefined,
    );
    return await this.#serial(peer, async () => {
      let keepPack = false;
      try {
        const rec = await this.kv.get<PeerRecord>([P, "peer", peer]);
        if (!rec.value) throw denied("no such backup peer here", 404);
        const index = await this.#index.load(peer);
        const fresh = candidates.filter((i) => !index.objects.has(i.id));
        if (!fresh.length) return { stored: 0, already: items.length };
        const adding = size(fresh);
        if (rec.value.usedBytes + adding > rec.value.quotaBytes) throw quotaFull(rec.value);
        if (adding < size(candidates) * 0.9) {
          // Bytes no record names would escape the quota: write the pack again without them.
          await this.#objects.removePack(peer, written.pack);
          candidates = fresh;
          written = await this.#objects.writePack(peer, fresh);
        }
        const offsetOf = new Map(candidates.map((c, i) => [c.id, written.offsets[i]]));
        const now = this.#now();
        const entries = fresh.map(({ id, bytes }) => ({
          id,
          off: offsetOf.get(id)!,
          size: bytes.length,
        }));
        const record: PackRecord = { at: now, entries: encodePackEntries(entries) };
        // The peer record's and the generation's checks make the commit the only writer.
        const res = await this.kv.atomic().check(rec).check(index.gen)
          .set(indexKeys.pack(peer, written.pack), record)
          .set(indexKeys.gen(peer), (index.gen.value ?? 0) + 1)
          .set(rec.key, {
            ...rec.value,
            usedBytes: rec.value.usedBytes + adding,
            objects: rec.value.objects + fresh.length,
            lastContact: now,
          }).commit();
        if (!res.ok) {
          this.#index.forget(peer);
          throw new ProtocolError("NO", "the objects were stored concurrently; retry", {
            http: 409,
          });
        }
        keepPack = true;
        this.#index.committed(peer, index.gen.versionstamp, res.versionstamp, (m) => {
          for (const e of entries) {
            m.set(e.id, { pack: written.pack, off: e.off, size: e.size, at: now });
          }
        });
        return { stored: fresh.length, already: items.length - fresh.length };
      } finally {
        if (!keepPack) await this.#objects.removePack(peer, written.pack);
      }
    });
  }

  /** An object's bytes, or null when this host does not hold it. */
  async getObject(peer: string, id: string): Promise<Uint8Array | null> {
    const at = (await this.#index.load(peer)).objects.get(id);
    return at ? await this.#objects.read(peer, id, at) : null;
  }

  /**
   * Every object a manifest names: its own references, the catalogs' buckets and units, and
   * the buckets' blobs and index objects (what the host can read of them: ids and sizes).
   */
  async #referenced(
    peer: string,
    m: Manifest,
    have: Map<string, Located>,
  ): Promise<string[]> {
    const ids = manifestRefs(m).map((r) => r.id);
    const read = async (id: string) => {
      const at = have.get(id);
      return at ? await this.#objects.read(peer, id, at) : null;
    };
    for (const a of m.accounts) {
      const catalog = await read(a.blobs.id);
      if (!catalog) continue;
      const { buckets, units, deltas } = decodeCatalog(catalog);
      for (const r of [...buckets, ...units, ...deltas]) ids.push(r.id);
      const lists: BlobEntry[][] = [];
      for (const b of buckets) {
        const bucket = await read(b.id);
        if (bucket) lists.push(decodeBlobList(bucket));
      }
      // What the deltas removed is no longer named (a due prune may collect it).
      const changes: BlobDelta[] = [];
      for (const d of deltas) {
        const delta = await read(d.id);
        if (delta) changes.push(decodeBlobDelta(delta));
      }
      ids.push(...blobListIds(resolveBlobList(lists, changes)));
    }
    return ids;
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
      const have = (await this.#index.load(peer)).objects;
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
        const have = (await this.#index.load(peer)).objects;
        for await (const m of this.kv.list<StoredManifest>({ prefix: [P, "man", peer] })) {
          if (m.value.seq < keepFrom) {
            await this.kv.delete(m.key);
            done.manifests++;
            continue;
          }
          const man = JSON.parse(m.value.body) as Manifest;
          for (const id of await this.#referenced(peer, man, have)) keep.add(id);
        }
        const dead = (id: string, at: number) => !keep.has(id) && at < e.value.requested;
        // Records go before bytes: a crash in between leaves unnamed bytes, never a record
        // without its bytes. Each commit moves the usage and the index generation with it.
        const commit = async (change: (op: Deno.AtomicOperation) => void, n: number, b: number) => {
          const cur = await this.kv.get<PeerRecord>([P, "peer", peer]);
          const gen = await this.kv.get<number>(indexKeys.gen(peer));
          if (!cur.value) return false;
          const op = this.kv.atomic().check(cur).check(gen)
            .set(gen.key, (gen.value ?? 0) + 1)
            .set(cur.key, {
              ...cur.value,
              usedBytes: cur.value.usedBytes - b,
              objects: cur.value.objects - n,
            });
          change(op);
          if (!(await op.commit()).ok) return false;
          done.objects += n;
          done.bytes += b;
          return true;
        };
        // Objects stored before packs: a record and a file each.
        for await (const o of this.kv.list<Located>({ prefix: [P, "obj", peer] })) {
          const id = o.key[3] as string;
          if (!dead(id, o.value.at)) continue;
          if (await commit((op) => op.check(o).delete(o.key), 1, o.value.size)) {
            await this.#objects.remove(peer, id);
          }
        }
        // A pack whose objects all went is removed; one with live objects left is written anew
        // with only those (its record replaced in the same commit), then removed.
        for await (const pe of this.kv.list<PackRecord>({ prefix: [P, "pack", peer] })) {
          const pack = pe.key[3] as string;
          const entries = decodePackEntries(pe.value.entries);
          const gone = entries.filter((x) => dead(x.id, pe.value.at));
          if (!gone.length) continue;
          const live = entries.filter((x) => !dead(x.id, pe.value.at));
          const items: { id: string; bytes: Uint8Array }[] = [];
          for (const x of live) {
            const bytes = await this.#objects.read(peer, x.id, { pack, off: x.off, size: x.size });
            if (bytes && bytes.length === x.size && objectIdOf(bytes) === x.id) {
              items.push({ id: x.id, bytes });
            }
          }
          // A pack with a damaged object is kept whole: a drill or a restore names the object.
          if (items.length < live.length) continue;
          const written = items.length ? await this.#objects.writePack(peer, items) : null;
          const ok = await commit(
            (op) => {
              op.check(pe).delete(pe.key);
              if (written) {
                const moved = items.map((x, i) => ({
                  id: x.id,
                  off: written.offsets[i],
                  size: x.bytes.length,
                }));
                const record: PackRecord = { at: pe.value.at, entries: encodePackEntries(moved) };
                op.set(indexKeys.pack(peer, written.pack), record);
              }
            },
            gone.length,
            gone.reduce((n, x) => n + x.size, 0),
          );
          if (ok) await this.#objects.removePack(peer, pack);
          else if (written) await this.#objects.removePack(peer, written.pack);
        }
        this.#index.forget(peer);
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
    return await this.#challenge(rec, m.accounts, publicKey, true);
  }

  /**
   * Starts a restore without the grant (`hearth restore --from URL`): the
   * recovery key's recipient finds the peer whose newest version holds that
   * account (the newest such version when several do; only `peer` when
   * given), and only those accounts get a challenge. No wrapped identity goes
   * out: without the grant's token, nobody may try passwords against them.
   */
  async startRestoreByRecipient(recipients: string[], publicKey: string, peer?: string) {
    let best: { rec: PeerRecord; m: Manifest; received: number } | null = null;
    for (const rec of await this.peers()) {
      if ((peer && rec.id !== peer) || !rec.publicKey || !rec.latestSeq) continue;
      const stored = (await this.kv.get<StoredManifest>([P, "man", rec.id, rec.latestSeq])).value;
      if (!stored) continue;
      const m = JSON.parse(stored.body) as Manifest;
      if (!m.accounts.some((a) => recipients.includes(a.recipient))) continue;
      if (!best || stored.received > best.received) best = { rec, m, received: stored.received };
    }
    if (!best) {
      throw denied(
        "this box keeps no backup of an account with that recovery key; check the URL, or use the grant",
        404,
      );
    }
    const accounts = best.m.accounts.filter((a) => recipients.includes(a.recipient));
    return { peer: best.rec.id, ...await this.#challenge(best.rec, accounts, publicKey, false) };
  }

  async #challenge(
    rec: PeerRecord,
    accounts: Manifest["accounts"],
    publicKey: string,
    withWrapped: boolean,
  ) {
    const session = toHex(crypto.getRandomValues(new Uint8Array(12)));
    const answers: string[] = [];
    const out = [];
    for (const a of accounts) {
      const secret = crypto.getRandomValues(new Uint8Array(32));
      answers.push(toHex(await sha256(secret)));
      const wrapped = withWrapped ? await this.getObject(rec.id, a.wrapped.id) : null;
      out.push({
        id: a.id,
        recipient: a.recipient,
        challenge: toBase64Url(await sealToRecipient(secret, a.recipient)),
        wrapped: wrapped ? toBase64Url(wrapped) : null,
      });
    }
    await this.kv.set([P, "challenge", rec.id, session], { publicKey, answers }, {
      expireIn: 10 * 60_000,
    });
    return { session, home: rec.publicKey!, accounts: out };
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
