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
  type BlobEntry,
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
import {
  type BlobListPlan,
  type BlobLists,
  forgetBlobLists,
  loadBlobLists,
  planBlobLists,
  saveBlobLists,
} from "./backup_lists.ts";
import { type BackupProgress, ObjectUploader } from "./backup_upload.ts";
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

export type { BackupProgress };

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

/** Called with each blob id as the listing finds it, so uploads start before it ends. */
type OnBlob = (blob: string) => void;

async function listCore(kv: Deno.Kv, id: string, onBlob?: OnBlob) {
  const out: { key: Deno.KvKey; value: unknown; versionstamp: string }[] = [];
  const acct = await kv.get<AccountRecord>(["account", id]);
  if (!acct.value) return null;
  out.push(acct);
  for await (const e of kv.list<string>({ prefix: ["login"] })) if (e.value === id) out.push(e);
  for (const p of corePrefixes) {
    for await (const e of kv.list({ prefix: [p, id] })) {
      out.push(e);
      if (onBlob && p === "arrival") onBlob((e.value as { blob: string }).blob);
    }
  }
  return out;
}

/** A fingerprint of the core entries: unchanged means the account did not change. */
async function fingerprintOf(core: { key: Deno.KvKey; versionstamp: string }[]): Promise<string> {
  const text = core.map((e) => JSON.stringify(e.key) + e.versionstamp).join("\n");
  return toHex(await sha256(new TextEncoder().encode(text)));
}

/** The encrypted index entries of every message, by blob id. */
async function listIndex(
  kv: Deno.Kv,
  id: string,
  onBlob?: OnBlob,
): Promise<Map<string, Entry[]>> {
  const byBlob = new Map<string, Entry[]>();
  for (const p of indexPrefixes) {
    for await (const e of kv.list({ prefix: [p, id] })) {
      const blob = e.key[2] as string;
      let list = byBlob.get(blob);
      if (!list) {
        byBlob.set(blob, list = []);
        onBlob?.(blob);
      }
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
async function readAccount(kv: Deno.Kv, id: string, onBlob?: OnBlob) {
  // A busy account (a client's burst, an ingest of arrivals) settles within seconds.
  for (let attempt = 0; attempt < 20; attempt++) {
    const a = await listCore(kv, id, onBlob);
    if (!a) return null;
    const index = await listIndex(kv, id, onBlob);
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
  // Objects go to the host while the accounts are still being read (backup_upload.ts).
  const uploader = new ObjectUploader({
    client,
    blobs: deps.blobs,
    staging,
    signal: deps.signal,
    onProgress,
  });
  const accounts: ManifestAccount[] = [];
  const skipped: string[] = [];
  const accountIds: string[] = [];
  // Written only once the manifest is accepted: what the next run may reuse.
  const caches: [Deno.KvKey, unknown][] = [];
  const drops: Deno.KvKey[] = [];
  const listPlans: [string, BlobListPlan][] = [];
  try {
    for await (const e of kv.list<AccountRecord>({ prefix: ["account"] })) {
      accountIds.push(e.key[1] as string);
    }
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
      // The blob lists the host holds: their blobs are neither stat'ed nor offered again.
      const prevLists = await loadBlobLists(kv, peerId, id);
      const known = prevLists?.entries;
      const offer = (blob: string) => {
        if (!known?.has(blob)) uploader.offerBlob(blob);
      };
      // An expunge removes the blob before its metadata, in the background: a blob missing
      // while its metadata is still there is usually gone a moment later; read again.
      let read: Awaited<ReturnType<typeof readAccount>>;
      const sizes = new Map<string, number | null>();
      let index = new Map<string, IndexObject>();
      for (let attempt = 0;; attempt++) {
        read = await readAccount(kv, id, offer);
        if (!read) break;
        // The index objects travel beside the blobs still being read, not after them.
        index = indexObjects(read);
        for (const [blob, o] of index) {
          if (prevLists?.entries.get(blob)?.index?.id !== o.id) uploader.offerBytes(o.id, o.bytes);
        }
        sizes.clear();
        const ids = [...blobsOf(read.core, read.index)];
        for (const blob of ids) offer(blob);
        await uploader.blobsSized();
        for (const blob of ids) {
          sizes.set(blob, known?.get(blob)?.size ?? uploader.sizes.get(blob) ?? null);
        }
        if (![...sizes.values()].includes(null) || attempt >= 5) break;
        await new Promise((r) => setTimeout(r, 200));
        for (const [blob, size] of sizes) if (size === null) uploader.retryBlob(blob);
      }
      if (!read) {
        if (read === undefined) skipped.push(id);
        continue;
      }
      const built = await buildAccount(
        kv,
        peerId,
        id,
        read,
        sizes,
        index,
        prevLists,
        cached,
        config,
        uploader,
      );
      accounts.push(built.entry);
      caches.push([cacheKey, built.cache], ...built.caches);
      drops.push(...built.drops);
      listPlans.push([id, built.lists]);
    }
    await uploader.finish();
  } catch (e) {
    await uploader.abandon();
    throw e;
  }
  const progress = uploader.progress;
  // A skipped account keeps what the last manifest said about it.
  if (skipped.length && rec.seq) {
    const last = await client.manifest(rec.seq).catch(() => null);
    if (last) {
      const prev = JSON.parse(last.body) as Manifest;
      for (const a of prev.accounts) if (skipped.includes(a.id)) accounts.push(a);
    }
  }
  accounts.sort((a, b) => a.id.localeCompare(b.id));
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
        await forgetBlobLists(kv, peerId);
        throw e;
      }
      const latest = (await client.status()).latestSeq;
      if (latest < seq) throw e;
      seq = latest + 1;
      await send();
    }
  }
  // What the host now holds is what the next run may reuse.
  for (const [id, plan] of listPlans) await saveBlobLists(kv, peerId, id, plan);
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

/**
 * The objects of one account read consistently: its state units and root (sealed), its index
 * objects, its blob lists and catalog, all offered to the uploader; the manifest entry and the
 * reuse records to keep once the host accepts the manifest.
 */
async function buildAccount(
  kv: Deno.Kv,
  peerId: string,
  id: string,
  read: NonNullable<Awaited<ReturnType<typeof readAccount>>>,
  sizes: Map<string, number | null>,
  index: Map<string, IndexObject>,
  prevLists: BlobLists | null,
  cached: AccountCache | null,
  config: Record<string, unknown> | null,
  uploader: ObjectUploader,
) {
  const caches: [Deno.KvKey, unknown][] = [];
  const drops: Deno.KvKey[] = [];
  const record = read.core[0].value as AccountRecord;
  // Immutable groups of state entries become sealed units, sent once; the rest is the root.
  const unitEntries = new Map<string, (Entry & { versionstamp: string })[]>();
  const rootEntries: Entry[] = [];
  for (const e of read.core) {
    if (e.key[0] === "arrival") continue; // in its message's index object
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
    uploader.offerBytes(ref.id, sealed);
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
    uploader.offerBytes(snapRef.id, sealed);
  }
  const wrappedRef = { id: objectIdOf(record.wrapped), size: record.wrapped.length };
  uploader.offerBytes(wrappedRef.id, record.wrapped);
  const current: BlobEntry[] = [];
  let messages = 0;
  let bytes = 0;
  for (const [blob, size] of sizes) {
    if (size === null) {
      // Referenced but not on this disk: nothing to back up; say so rather than stall.
      log.warn("backup.blob-missing", { account: id, blob });
      continue;
    }
    const entry: BlobEntry = { id: blob, size };
    const o = index.get(blob);
    if (o) entry.index = { id: o.id, size: o.bytes.length };
    current.push(entry);
    messages++;
    bytes += size;
  }
  // One small delta per run, folded into the buckets now and then (backup_lists.ts).
  const lists = planBlobLists(prevLists, current);
  for (const o of lists.objects) uploader.offerBytes(o.ref.id, o.bytes);
  const catalog = encodeCatalog({
    buckets: lists.buckets,
    deltas: lists.deltas,
    units: units.map(({ id, size }) => ({ id, size })),
  });
  const catalogRef = { id: objectIdOf(catalog), size: catalog.length };
  uploader.offerBytes(catalogRef.id, catalog);
  const entry: ManifestAccount = {
    id,
    recipient: record.recipient,
    snapshot: snapRef,
    wrapped: wrappedRef,
    blobs: catalogRef,
    messages,
    bytes,
  };
  const cache: AccountCache = { fingerprint: read.fingerprint, plainHash, entry };
  return { entry, cache, caches, drops, lists };
}

type IndexObject = { id: string; bytes: Uint8Array };

/**
 * Each message's index object: its encrypted index entries, with its arrival record while it
 * waits for a login. An index object the blob lists already name is at the host, so the run
 * offers only those whose id changed.
 */
function indexObjects(
  read: NonNullable<Awaited<ReturnType<typeof readAccount>>>,
): Map<string, IndexObject> {
  const indexOf = new Map<string, Entry[]>(read.index);
  for (const e of read.core) {
    if (e.key[0] !== "arrival") continue;
    const blob = (e.value as { blob: string }).blob;
    indexOf.set(blob, [...(indexOf.get(blob) ?? []), { key: e.key, value: e.value }]);
  }
  const out = new Map<string, IndexObject>();
  for (const [blob, entries] of indexOf) {
    const bytes = new TextEncoder().encode(encodeTagged(entries));
    out.set(blob, { id: objectIdOf(bytes), bytes });
  }
  return out;
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
