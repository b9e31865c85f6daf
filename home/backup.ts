/**
 * Replication of the home box to friends' boxes (docs/backup.md): the sealed
 * blobs exactly as stored; per message its encrypted index entries; per
 * account its mailbox state (UIDVALIDITY, UIDs, flags, modseqs) and account
 * document as units age-sealed to the account's recipient (so the home seals
 * them while the account is locked, and only the owner opens them), a sealed
 * root, bucketed blob lists and a catalog; and the password-wrapped identity;
 * all named by manifests signed with the home key. Incremental: immutable
 * pieces are sent once, the host says which objects it lacks, only those
 * move. A run that stops half way resumes there, and the manifest goes last.
 *
 * @example
 * ```ts
 * await addBackupPeer(dataDir, kv, grantText);
 * const loop = startBackupLoop({ dataDir, kv, blobs });
 * await loop.stop();
 * ```
 */
import { gzip } from "../src/compress.ts";
import { sealToRecipient } from "../src/crypto/age.ts";
import { fromBase64Url, sha256, toBase64Url, toHex } from "../src/encoding.ts";
import { UsageError } from "../src/errors.ts";
import { limits } from "../src/limits.ts";
import { log } from "../src/log.ts";
import { readSavedConfig } from "../src/config.ts";
import { BackupHostError } from "../sync/backup/client.ts";
import { backupClientFor } from "../sync/backup/relay.ts";
import {
  batchBytes,
  batchObjects,
  type BlobEntry,
  encodeBlobList,
  encodeCatalog,
  type Manifest,
  type ManifestAccount,
  objectIdOf,
  type ObjectRef,
  parseGrant,
  signManifest,
} from "../sync/backup/format.ts";
import { homeSigningKey } from "./edge_link.ts";
import type { AccountRecord, AccountRegistry } from "./store/accounts.ts";
import { drillPeer, lastDrill } from "./backup_drill.ts";
import type { BlobStore } from "./store/blobs.ts";
import { StagedBlobs } from "./store/staging.ts";

/** A friend's box this home replicates to, in `["backup", "peer", peer]`. */
export interface BackupPeerRecord {
  url: string;
  peer: string;
  /** The grant's token: kept so `hearth backup status` can show the grant a restore needs. */
  token: string;
  added: number;
  /** The newest manifest the host accepted. */
  seq: number;
  /** SHA-256 of the accounts of that manifest: an unchanged home sends no new version. */
  lastAccountsHash: string | null;
  lastRun: number | null;
  lastSuccess: number | null;
  lastError: string | null;
  lastBytes: number;
  lastObjects: number;
}

/** Progress of one replication run. */
export interface BackupProgress {
  objects: number;
  totalObjects: number;
  bytes: number;
  totalBytes: number;
  elapsedMs: number;
}

export interface BackupRunResult {
  peer: string;
  seq: number;
  /** False when nothing changed since the last manifest. */
  newManifest: boolean;
  objects: number;
  bytes: number;
  accounts: number;
  /** Accounts left out of this run (changing under it, or a blob missing); retried next run. */
  skipped: string[];
}

/**
 * Per-account KV prefixes sealed into the snapshot: the mailbox state (flags and UIDs are in clear
 * at home), the document, the arrivals. Per-message `meta` and `text` entries are already
 * AES-GCM encrypted with the index key: they travel as one object per message, which never
 * changes, so an incremental run moves only new messages' index objects.
 */
const corePrefixes = ["st", "doc", "arrival"];
const indexPrefixes = ["meta", "text"];

type Entry = { key: Deno.KvKey; value: unknown };

/** KV keys and values as JSON: byte arrays and bigints tagged. */
export function encodeTagged(value: unknown): string {
  return JSON.stringify(value, (_k, v) => {
    if (v instanceof Uint8Array) return { $u8: toBase64Url(v) };
    if (typeof v === "bigint") return { $big: v.toString() };
    return v;
  });
}

/** The inverse of {@linkcode encodeTagged}. */
export function decodeTagged<T>(text: string): T {
  return JSON.parse(text, (_k, v) => {
    if (v && typeof v === "object" && !Array.isArray(v)) {
      if (typeof v.$u8 === "string" && Object.keys(v).length === 1) return fromBase64Url(v.$u8);
      if (typeof v.$big === "string" && Object.keys(v).length === 1) return BigInt(v.$big);
    }
    return v;
  });
}

export { gunzip } from "../src/compress.ts";

/** What one account's snapshot holds (before gzip and sealing). */
export interface AccountSnapshot {
  v: 2;
  account: string;
  /** The box's saved configuration (no secrets), so a restore recreates the same box. */
  config: Record<string, unknown> | null;
  /** The entries that change in place: the account record, its login, the heads and pointers. */
  entries: { key: Deno.KvKey; value: unknown }[];
  /** The sealed units holding the rest of the state, by name (see {@linkcode unitOf}). */
  units: { name: string; id: string; size: number }[];
}

/**
 * The immutable group a state entry belongs to, sealed and sent once: a snapshot generation, a
 * log entry, a document generation. Null for entries that change in place (they go in the root).
 */
export function unitOf(key: Deno.KvKey): string | null {
  if (key[0] === "st" && key[2] === "snap") return `snap:${String(key[3])}`;
  if (key[0] === "st" && key[2] === "log") return `log:${String(key[3])}`;
  if (key[0] === "doc" && key[2] !== "current") return `doc:${String(key[2])}`;
  return null;
}

async function listCore(kv: Deno.Kv, id: string) {
  const out: { key: Deno.KvKey; value: unknown; versionstamp: string }[] = [];
  const acct = await kv.get<AccountRecord>(["account", id]);
  if (!acct.value) return null;
  out.push(acct);
  for await (const e of kv.list<string>({ prefix: ["login"] })) if (e.value === id) out.push(e);
  for (const p of corePrefixes) {
    for await (const e of kv.list({ prefix: [p, id] })) out.push(e);
  }
  return out;
}

/** A fingerprint of the core entries: unchanged means the account did not change. */
async function fingerprintOf(core: { key: Deno.KvKey; versionstamp: string }[]): Promise<string> {
  const text = core.map((e) => JSON.stringify(e.key) + e.versionstamp).join("\n");
  return toHex(await sha256(new TextEncoder().encode(text)));
}

/** The encrypted index entries of every message, by blob id. */
async function listIndex(kv: Deno.Kv, id: string): Promise<Map<string, Entry[]>> {
  const byBlob = new Map<string, Entry[]>();
  for (const p of indexPrefixes) {
    for await (const e of kv.list({ prefix: [p, id] })) {
      const blob = e.key[2] as string;
      let list = byBlob.get(blob);
      if (!list) byBlob.set(blob, list = []);
      list.push({ key: e.key, value: e.value });
    }
  }
  return byBlob;
}

/**
 * Reads an account as one consistent set: the core entries before and after
 * the index entries, accepted only when the core did not change in between
 * (every add or expunge of a message changes the state log).
 */
async function readAccount(kv: Deno.Kv, id: string) {
  // A busy account (a client's burst, an ingest of arrivals) settles within seconds.
  for (let attempt = 0; attempt < 20; attempt++) {
    const a = await listCore(kv, id);
    if (!a) return null;
    const index = await listIndex(kv, id);
    const b = await listCore(kv, id);
    if (!b) return null;
    const fingerprint = await fingerprintOf(a);
    if (fingerprint === await fingerprintOf(b)) return { core: a, index, fingerprint };
    await new Promise((r) => setTimeout(r, Math.min(500, 50 * (attempt + 1))));
  }
  return undefined;
}

/** The blob ids an account references: its metadata and its waiting arrivals (as blobs.ts counts). */
function blobsOf(core: Entry[], index: Map<string, Entry[]>): Set<string> {
  const ids = new Set<string>(index.keys());
  for (const e of core) if (e.key[0] === "arrival") ids.add((e.value as { blob: string }).blob);
  return ids;
}

export interface BackupDeps {
  dataDir: string;
  kv: Deno.Kv;
  blobs: BlobStore;
  fetch?: typeof fetch;
  /** Stops a run between objects (the box is shutting down); its manifest is not sent. */
  signal?: AbortSignal;
  /** Unlocked accounts: a restore drill opens one sampled message with its key. */
  registry?: AccountRegistry;
}

export async function backupPeers(kv: Deno.Kv): Promise<BackupPeerRecord[]> {
  const out: BackupPeerRecord[] = [];
  for await (const e of kv.list<BackupPeerRecord>({ prefix: ["backup", "peer"] })) {
    out.push(e.value);
  }
  return out;
}

/** `hearth backup add-peer GRANT`: first contact with the friend's box, which pins the home key. */
export async function addBackupPeer(
  dataDir: string,
  kv: Deno.Kv,
  grantText: string,
  fetchFn?: typeof fetch,
): Promise<{ peer: BackupPeerRecord; quotaBytes: number }> {
  let grant;
  try {
    grant = parseGrant(grantText);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const key = await homeSigningKey(dataDir);
  const client = backupClientFor(grant.url, grant.peer, grant.token, key, { fetch: fetchFn });
  const hello = await client.hello(grant.token);
  const rec: BackupPeerRecord = {
    url: grant.url,
    peer: grant.peer,
    token: grant.token,
    added: Date.now(),
    seq: hello.latestSeq,
    lastAccountsHash: null,
    lastRun: null,
    lastSuccess: null,
    lastError: null,
    lastBytes: 0,
    lastObjects: 0,
  };
  const existing = (await kv.get<BackupPeerRecord>(["backup", "peer", grant.peer])).value;
  await kv.set(
    ["backup", "peer", grant.peer],
    existing ? { ...existing, ...rec, added: existing.added } : rec,
  );
  return { peer: rec, quotaBytes: hello.quotaBytes };
}

/**
 * Per peer and account, what the last accepted manifest said. A sealed
 * snapshot is random each time: it is reused while its plaintext is the same.
 */
interface AccountCache {
  fingerprint: string;
  plainHash: string;
  entry: ManifestAccount;
}

/** A sealed unit already sent to a peer: reused while its entries' versionstamps are the same. */
interface UnitCache {
  stamp: string;
  ref: ObjectRef;
}

/**
 * One replication run to one peer: builds the manifest, sends the objects
 * the host lacks (in batches, two in flight), then the signed manifest.
 */
export async function replicateToPeer(
  deps: BackupDeps,
  peerId: string,
  onProgress?: (p: BackupProgress) => void,
): Promise<BackupRunResult> {
  const { kv } = deps;
  const rec = (await kv.get<BackupPeerRecord>(["backup", "peer", peerId])).value;
  if (!rec) throw new UsageError(`no backup peer ${peerId}; see "hearth backup status"`);
  const key = await homeSigningKey(deps.dataDir);
  const client = backupClientFor(rec.url, rec.peer, rec.token, key, { fetch: deps.fetch });
  const staging = StagedBlobs.for(kv, deps.blobs);
  const config = await readSavedConfig(deps.dataDir);
  const started = Date.now();
  // Objects this run may send: id → how to get its bytes.
  const pending = new Map<string, { size: number; bytes: () => Promise<Uint8Array> }>();
  const accounts: ManifestAccount[] = [];
  const skipped: string[] = [];
  const accountIds: string[] = [];
  for await (const e of kv.list<AccountRecord>({ prefix: ["account"] })) {
    accountIds.push(e.key[1] as string);
  }
  // Written only once the manifest is accepted: what the next run may reuse.
  const caches: [Deno.KvKey, unknown][] = [];
  const drops: Deno.KvKey[] = [];
  for (const id of accountIds) {
    const cacheKey = ["backup", "acct", peerId, id];
    const cached = (await kv.get<AccountCache>(cacheKey)).value;
    if (cached) {
      // Unchanged since the last accepted manifest: nothing to read or send.
      const core = await listCore(kv, id);
      if (core && await fingerprintOf(core) === cached.fingerprint) {
        accounts.push(cached.entry);
        continue;
      }
    }
    // An expunge removes the blob before its metadata, in the background: a blob missing
    // while its metadata is still there is usually gone a moment later; read again.
    let read: Awaited<ReturnType<typeof readAccount>>;
    const sizes = new Map<string, number | null>();
    for (let attempt = 0;; attempt++) {
      read = await readAccount(kv, id);
      if (!read) break;
      sizes.clear();
      const ids = [...blobsOf(read.core, read.index)];
      for (const blob of ids) sizes.set(blob, null);
      // Several stats at once: the first run of a large mailbox stats every blob.
      let next = 0;
      const stat = async () => {
        while (next < ids.length) {
          const blob = ids[next++];
          sizes.set(blob, await blobSize(deps.blobs, staging, blob));
        }
      };
      await Promise.all(Array.from({ length: Math.min(16, ids.length) }, stat));
      if (![...sizes.values()].includes(null) || attempt >= 5) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    if (!read) {
      if (read === undefined) skipped.push(id);
      continue;
    }
    const record = read.core[0].value as AccountRecord;
    // Immutable groups of state entries become sealed units, sent once; the rest is the root.
    const unitEntries = new Map<string, (Entry & { versionstamp: string })[]>();
    const rootEntries: Entry[] = [];
    const indexOf = new Map<string, Entry[]>(read.index);
    for (const e of read.core) {
      if (e.key[0] === "arrival") {
        // An arrival record belongs with its message, in its index object.
        const blob = (e.value as { blob: string }).blob;
        indexOf.set(blob, [...(indexOf.get(blob) ?? []), { key: e.key, value: e.value }]);
        continue;
      }
      const name = unitOf(e.key);
      if (!name) {
        rootEntries.push({ key: e.key, value: e.value });
        continue;
      }
      let list = unitEntries.get(name);
      if (!list) unitEntries.set(name, list = []);
      list.push(e);
    }
    const unitCache = new Map<string, UnitCache>();
    for await (const e of kv.list<UnitCache>({ prefix: ["backup", "unit", peerId, id] })) {
      unitCache.set(e.key[4] as string, e.value);
    }
    const units: { name: string; id: string; size: number }[] = [];
    for (const [name, entries] of unitEntries) {
      const stamp = await fingerprintOf(entries);
      const hit = unitCache.get(name);
      if (hit?.stamp === stamp) {
        units.push({ name, ...hit.ref });
        continue;
      }
      const plain = new TextEncoder().encode(
        encodeTagged(entries.map(({ key, value }) => ({ key, value }))),
      );
      const sealed = await sealToRecipient(await gzip(plain), record.recipient);
      const ref = { id: objectIdOf(sealed), size: sealed.length };
      pending.set(ref.id, { size: sealed.length, bytes: () => Promise.resolve(sealed) });
      units.push({ name, ...ref });
      caches.push([["backup", "unit", peerId, id, name], { stamp, ref }]);
    }
    for (const name of unitCache.keys()) {
      if (!unitEntries.has(name)) drops.push(["backup", "unit", peerId, id, name]);
    }
    units.sort((a, b) => a.name.localeCompare(b.name));
    const snapshot: AccountSnapshot = { v: 2, account: id, config, entries: rootEntries, units };
    const plain = new TextEncoder().encode(encodeTagged(snapshot));
    const plainHash = toHex(await sha256(plain));
    let snapRef: ObjectRef;
    if (cached?.plainHash === plainHash) {
      snapRef = cached.entry.snapshot;
    } else {
      const sealed = await sealToRecipient(await gzip(plain), record.recipient);
      snapRef = { id: objectIdOf(sealed), size: sealed.length };
      pending.set(snapRef.id, { size: sealed.length, bytes: () => Promise.resolve(sealed) });
    }
    const wrappedRef = { id: objectIdOf(record.wrapped), size: record.wrapped.length };
    pending.set(wrappedRef.id, {
      size: record.wrapped.length,
      bytes: () => Promise.resolve(record.wrapped),
    });
    const buckets = new Map<string, BlobEntry[]>();
    let messages = 0;
    let bytes = 0;
    for (const [blob, size] of sizes) {
      if (size === null) {
        // Referenced but not on this disk: nothing to back up; say so rather than stall.
        log.warn("backup.blob-missing", { account: id, blob });
        continue;
      }
      const entry: BlobEntry = { id: blob, size };
      const indexEntries = indexOf.get(blob);
      if (indexEntries) {
        const index = new TextEncoder().encode(encodeTagged(indexEntries));
        entry.index = { id: objectIdOf(index), size: index.length };
        pending.set(entry.index.id, { size: index.length, bytes: () => Promise.resolve(index) });
      }
      const bucket = buckets.get(blob.slice(0, 2)) ?? [];
      bucket.push(entry);
      buckets.set(blob.slice(0, 2), bucket);
      messages++;
      bytes += size;
      // Not hashed here: the host checks every object's digest, and a refusal is explained below.
      pending.set(blob, { size, bytes: () => staging.get(blob) });
    }
    const bucketRefs: ObjectRef[] = [];
    for (const entries of buckets.values()) {
      const list = encodeBlobList(entries);
      const ref = { id: objectIdOf(list), size: list.length };
      pending.set(ref.id, { size: list.length, bytes: () => Promise.resolve(list) });
      bucketRefs.push(ref);
    }
    const catalog = encodeCatalog({
      buckets: bucketRefs,
      units: units.map(({ id, size }) => ({ id, size })),
    });
    const catalogRef = { id: objectIdOf(catalog), size: catalog.length };
    pending.set(catalogRef.id, { size: catalog.length, bytes: () => Promise.resolve(catalog) });
    const entry: ManifestAccount = {
      id,
      recipient: record.recipient,
      snapshot: snapRef,
      wrapped: wrappedRef,
      blobs: catalogRef,
      messages,
      bytes,
    };
    accounts.push(entry);
    caches.push([cacheKey, { fingerprint: read.fingerprint, plainHash, entry }]);
  }
  // A skipped account keeps what the last manifest said about it.
  if (skipped.length && rec.seq) {
    const last = await client.manifest(rec.seq).catch(() => null);
    if (last) {
      const prev = JSON.parse(last.body) as Manifest;
      for (const a of prev.accounts) if (skipped.includes(a.id)) accounts.push(a);
    }
  }
  accounts.sort((a, b) => a.id.localeCompare(b.id));
  const missing = await client.missing([...pending.keys()]);
  const totalBytes = missing.reduce((n, id) => n + pending.get(id)!.size, 0);
  const progress: BackupProgress = {
    objects: 0,
    totalObjects: missing.length,
    bytes: 0,
    totalBytes,
    elapsedMs: 0,
  };
  // Batches of objects per request (one KV commit and shared fsyncs on the host), two in flight.
  const batches: string[][] = [];
  let batch: string[] = [];
  let batchSize = 0;
  for (const id of missing) {
    const size = pending.get(id)!.size;
    if (batch.length && (batch.length >= batchObjects || batchSize + size > batchBytes)) {
      batches.push(batch);
      batch = [];
      batchSize = 0;
    }
    batch.push(id);
    batchSize += size;
  }
  if (batch.length) batches.push(batch);
  let next = 0;
  const worker = async () => {
    // One request buffer per batch in flight, reused: a buffer per batch was garbage the
    // collector let pile up (array buffers +250 MB at the peak of a 224 MB run).
    const scratch = new Uint8Array(batchBytes + 36 * batchObjects);
    while (next < batches.length && !deps.signal?.aborted) {
      const ids = batches[next++];
      const items = await Promise.all(
        ids.map(async (id) => ({ id, bytes: await pending.get(id)!.bytes() })),
      );
      await client.putObjects(items, scratch).catch((e) => {
        if (!(e instanceof BackupHostError) || e.status !== 400) throw e;
        const bad = items.find((i) => objectIdOf(i.bytes) !== i.id);
        throw bad
          ? new Error(`blob ${bad.id} is damaged on this disk (its digest does not match)`)
          : e;
      });
      progress.objects += ids.length;
      progress.bytes += items.reduce((n, i) => n + i.bytes.length, 0);
      progress.elapsedMs = Date.now() - started;
      onProgress?.(progress);
    }
  };
  await Promise.all(Array.from({ length: Math.min(2, batches.length) }, worker));
  if (deps.signal?.aborted) throw new Error("stopped; the next run resumes where this one ended");
  const accountsHash = toHex(await sha256(new TextEncoder().encode(JSON.stringify(accounts))));
  let seq = rec.seq;
  const newManifest = accountsHash !== rec.lastAccountsHash;
  if (newManifest) {
    seq = rec.seq + 1;
    const send = async () => {
      const manifest: Manifest = { v: 1, home: key.publicKey, seq, created: Date.now(), accounts };
      await client.putManifest(await signManifest(key, manifest));
    };
    try {
      await send();
    } catch (e) {
      // The host holds a newer version than this box recorded (another run, or a home KV
      // restored from an older copy): number this one after it.
      if (!(e instanceof BackupHostError) || e.status !== 409) throw e;
      if (/does not hold/.test(e.message)) {
        // What this box reused is gone from the host (a restored host, a lost disk): forget the
        // reuse records, so the next run builds and sends everything the host lacks.
        for await (const c of kv.list({ prefix: ["backup", "acct", peerId] })) {
          await kv.delete(c.key);
        }
        for await (const c of kv.list({ prefix: ["backup", "unit", peerId] })) {
          await kv.delete(c.key);
        }
        throw e;
      }
      const latest = (await client.status()).latestSeq;
      if (latest < seq) throw e;
      seq = latest + 1;
      await send();
    }
  }
  // What the host now holds is what the next run may reuse.
  for (const [k, v] of caches) await kv.set(k, v);
  for (const k of drops) await kv.delete(k);
  const now = Date.now();
  const cur = (await kv.get<BackupPeerRecord>(["backup", "peer", peerId])).value ?? rec;
  await kv.set(["backup", "peer", peerId], {
    ...cur,
    seq,
    lastAccountsHash: accountsHash,
    lastRun: now,
    lastSuccess: now,
    lastError: null,
    lastBytes: progress.bytes,
    lastObjects: progress.objects,
  });
  return {
    peer: peerId,
    seq,
    newManifest,
    objects: progress.objects,
    bytes: progress.bytes,
    accounts: accounts.length,
    skipped,
  };
}

async function blobSize(
  blobs: BlobStore,
  staging: StagedBlobs,
  id: string,
): Promise<number | null> {
  try {
    return (await Deno.stat(blobs.pathOf(id))).size;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  try {
    return (await staging.get(id)).length;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/** Records a failed run, so `hearth backup status` and `hearth doctor` can show it. */
async function recordFailure(kv: Deno.Kv, peerId: string, error: string) {
  const cur = (await kv.get<BackupPeerRecord>(["backup", "peer", peerId])).value;
  if (cur) {
    await kv.set(["backup", "peer", peerId], { ...cur, lastRun: Date.now(), lastError: error });
  }
}

/** Replicates to every peer; failures are recorded per peer and do not stop the others. */
export async function replicateAll(
  deps: BackupDeps,
  onProgress?: (peer: string, p: BackupProgress) => void,
): Promise<(BackupRunResult | { peer: string; error: string })[]> {
  const out: (BackupRunResult | { peer: string; error: string })[] = [];
  for (const p of await backupPeers(deps.kv)) {
    try {
      out.push(await replicateToPeer(deps, p.peer, (x) => onProgress?.(p.peer, x)));
    } catch (e) {
      const error = (e as Error).message;
      await recordFailure(deps.kv, p.peer, error);
      out.push({ peer: p.peer, error });
    }
  }
  return out;
}

export interface RunningBackup {
  /** Runs soon (after a change, or from a test). */
  kick(): void;
  /** Resolves when the current run, if any, is over. */
  idle(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The replication loop of a running home box: every `limits.backupIntervalMs`
 * (and shortly after start), with exponential backoff while a peer fails.
 */
export function startBackupLoop(
  deps: BackupDeps,
  opts: { intervalMs?: number; firstDelayMs?: number; drillIntervalMs?: number } = {},
): RunningBackup {
  const interval = opts.intervalMs ?? limits.backupIntervalMs;
  const drillInterval = opts.drillIntervalMs ?? limits.backupDrillIntervalMs;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running: Promise<void> = Promise.resolve();
  let failures = 0;
  const abort = new AbortController();
  const runDeps = { ...deps, signal: abort.signal };
  const schedule = (ms: number) => {
    if (stopped) return;
    clearTimeout(timer);
    timer = setTimeout(run, ms);
  };
  const run = () => {
    running = running.then(async () => {
      if (stopped) return;
      const results = await replicateAll(runDeps).catch((e) => [{ peer: "*", error: String(e) }]);
      const failed = results.filter((r) => "error" in r);
      for (const r of results) {
        if ("error" in r) log.warn("backup.failed", { peer: r.peer, error: r.error });
        else if (r.objects) {
          log.info("backup.replicated", {
            peer: r.peer,
            seq: r.seq,
            objects: r.objects,
            bytes: r.bytes,
          });
        }
      }
      // Restore drills, once per drill interval per peer, after a replication.
      for (const p of await backupPeers(deps.kv).catch(() => [])) {
        if (stopped) break;
        const last = await lastDrill(deps.kv, p.peer);
        if (p.seq && (!last || Date.now() - last.at >= drillInterval)) {
          const r = await drillPeer(runDeps, p.peer).catch((e) => ({
            ok: false,
            error: String(e),
          }));
          if (!r.ok) log.warn("backup.drill-failed", { peer: p.peer, error: r.error });
        }
      }
      failures = failed.length ? failures + 1 : 0;
      schedule(failures ? Math.min(interval, 5_000 * 2 ** Math.min(failures, 10)) : interval);
    });
  };
  schedule(opts.firstDelayMs ?? 10_000);
  return {
    kick: () => schedule(0),
    idle: () => running,
    async stop() {
      stopped = true;
      abort.abort();
      clearTimeout(timer);
      await running;
    },
  };
}

/** One line of progress: count, bytes, rate, time left. */
export function formatProgress(p: BackupProgress): string {
  const mb = (n: number) => (n / 1e6).toFixed(1);
  const rate = p.elapsedMs ? p.bytes / (p.elapsedMs / 1000) : 0;
  const left = rate ? Math.ceil((p.totalBytes - p.bytes) / rate) : 0;
  return `${p.objects}/${p.totalObjects} objects, ${mb(p.bytes)} of ${mb(p.totalBytes)} MB, ${
    mb(rate)
  } MB/s, ${left} s left`;
}
