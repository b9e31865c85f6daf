/**
 * `hearth restore --from GRANT_OR_URL`: rebuilds a home box on an empty data
 * directory from a friend's box (docs/backup.md). The grant's token opens a
 * restore session (with only the URL, the recovery key's recipient finds the
 * backup); a challenge sealed to each account's recipient proves the
 * recovery key (or the password, through the wrapped identity); then every
 * manifest signature and every object's digest is checked, the blobs are
 * written back and each account's KV entries are restored exactly, so
 * UIDVALIDITY, UIDs, flags and modseqs are the same and IMAP clients do not
 * resynchronise. Everything is written into a directory beside the target,
 * renamed into place at the end: a failed restore leaves nothing half-written.
 *
 * @example
 * ```ts
 * const report = await restoreFromBackup({ dataDir, grant, recoveryKeys: [key] });
 * ```
 */
import { generateSigningKey } from "../src/crypto/device.ts";
import { openSealed, recipientOf, unwrapIdentity } from "../src/crypto/age.ts";
import { fromBase64Url, toBase64Url, toHex } from "../src/encoding.ts";
import { UsageError } from "../src/errors.ts";
import { type HearthConfig, loadConfig, saveConfig } from "../src/config.ts";
import { BackupClient, type RestoreStart } from "../sync/backup/client.ts";
import { backupClientFor, isRelayUrl } from "../sync/backup/relay.ts";
import {
  type BlobDelta,
  type BlobEntry,
  decodeBlobDelta,
  decodeBlobList,
  decodeCatalog,
  type Manifest,
  objectIdOf,
  type ObjectRef,
  parseGrant,
  resolveBlobList,
  verifyManifest,
} from "../sync/backup/format.ts";
import { type AccountSnapshot, decodeTagged, gunzip, unitOf } from "./backup.ts";
import { initDataDir } from "./box.ts";
import { BlobStore } from "./store/blobs.ts";
import type { AccountRecord } from "./store/accounts.ts";

/** Messages per read request: their blobs and index objects fill about one 8 MiB answer. */
const restoreBatchMessages = 250;

/** A restore that cannot go on, with what is wrong (a damaged object, a rollback…). */
export class RestoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RestoreError";
  }
}

export interface RestoreOptions {
  dataDir: string;
  /**
   * A grant (`URL#PEER.TOKEN`) from `hearth friend allow` or `hearth backup status`, or only
   * the friend's box URL (optionally `URL#PEER`): then the recovery keys find the backup.
   */
  grant: string;
  /** Account identities (`AGE-SECRET-KEY-1…`): each opens the account it belongs to. */
  recoveryKeys?: string[];
  /** An account password: opens every account whose wrapped identity it unwraps. */
  password?: string;
  /** The newest manifest number known (e.g. from `hearth backup status`); an older one is a rollback. */
  minSeq?: number;
  /** The home key the manifests must be signed with, when known; default the key the host pinned. */
  homeKey?: string;
  /** Configuration overrides for the restored box (ports in tests). */
  overrides?: Partial<HearthConfig>;
  onProgress?: (done: number, total: number, bytes: number) => void;
  fetch?: typeof fetch;
}

export interface RestoreReport {
  seq: number;
  home: string;
  manifestsVerified: number;
  accounts: { id: string; messages: number; bytes: number }[];
  /** Accounts in the backup that no given key opened. */
  skipped: string[];
}

/** A grant, or a bare URL (`https://friend:8081`, `…#p-PEER`): what `--from` accepts. */
export function parseRestoreSource(text: string): { url: string; peer?: string; token?: string } {
  try {
    return parseGrant(text);
  } catch { /* not a grant: a URL? */ }
  const m = /^((?:relay\+)?https?:\/\/[^#\s]+?)\/*(?:#(p-[0-9a-f]{16}))?$/.exec(text.trim());
  if (!m) {
    throw new UsageError(
      'not a backup grant or URL (expected "https://friend.example:8081" or the grant from ' +
        '"hearth friend allow")',
    );
  }
  return m[2] ? { url: m[1], peer: m[2] } : { url: m[1] };
}

async function isEmptyDataDir(dir: string): Promise<boolean> {
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.name === "config.json" || e.name === "home.kv" || e.name === "blobs") return false;
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return true;
}

async function fetchVerified(
  client: BackupClient,
  ref: ObjectRef,
  what: string,
): Promise<Uint8Array> {
  let bytes: Uint8Array;
  try {
    bytes = await client.getObject(ref.id);
  } catch (e) {
    throw new RestoreError(
      `${what} (object ${ref.id}) could not be fetched: ${(e as Error).message}`,
    );
  }
  if (objectIdOf(bytes) !== ref.id || bytes.length !== ref.size) {
    throw new RestoreError(
      `${what} (object ${ref.id}) is damaged on the backup host: its digest or size does not match`,
    );
  }
  return bytes;
}

/**
 * Fetches objects in one request and checks each; what the answer left out
 * (too large for one answer, or missing) is fetched alone, which names a
 * missing object.
 */
async function fetchManyVerified(
  client: BackupClient,
  refs: [ObjectRef, string][],
): Promise<Map<string, Uint8Array>> {
  const got = await client.getObjects(refs.map(([r]) => r.id)).catch(() =>
    new Map<string, Uint8Array>()
  );
  const out = new Map<string, Uint8Array>();
  for (const [ref, what] of refs) {
    const bytes = got.get(ref.id);
    if (!bytes) {
      out.set(ref.id, await fetchVerified(client, ref, what));
      continue;
    }
    if (objectIdOf(bytes) !== ref.id || bytes.length !== ref.size) {
      throw new RestoreError(
        `${what} (object ${ref.id}) is damaged on the backup host: its digest or size does not match`,
      );
    }
    out.set(ref.id, bytes);
  }
  return out;
}

/** A fresh directory beside `dataDir` (same file system, so a rename moves it into place). */
function workDirFor(dataDir: string): string {
  const target = dataDir.replace(/\/+$/, "") || "/";
  const slash = target.lastIndexOf("/");
  const parent = slash > 0 ? target.slice(0, slash) : slash === 0 ? "" : ".";
  const suffix = toHex(crypto.getRandomValues(new Uint8Array(6)));
  return `${parent}/.${target.slice(slash + 1)}.restoring-${suffix}`;
}

/**
 * Moves a finished restore into place: a rename when the target does not exist or is empty;
 * otherwise (it holds other files, say the recovery key) each entry is moved in beside them,
 * `config.json` last, so the directory is a Hearth box only once it is whole.
 */
async function moveIntoPlace(work: string, target: string) {
  const present: string[] = [];
  try {
    for await (const e of Deno.readDir(target)) present.push(e.name);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    await Deno.rename(work, target);
    return await syncDir(target.replace(/\/[^/]*\/*$/, "") || ".");
  }
  if (!present.length) {
    await Deno.remove(target);
    await Deno.rename(work, target);
    return await syncDir(target.replace(/\/[^/]*\/*$/, "") || ".");
  }
  const ours: string[] = [];
  for await (const e of Deno.readDir(work)) ours.push(e.name);
  const clash = ours.filter((n) => present.includes(n));
  if (clash.length) {
    throw new UsageError(
      `${target} already holds ${clash.join(", ")}; restore into an empty or new directory`,
    );
  }
  ours.sort((a, b) => Number(a === "config.json") - Number(b === "config.json"));
  for (const name of ours) await Deno.rename(`${work}/${name}`, `${target}/${name}`);
  await Deno.remove(work);
  await syncDir(target);
}

async function syncDir(dir: string) {
  const d = await Deno.open(dir, { read: true }).catch(() => null);
  try {
    await d?.sync();
  } catch { /* best effort: some file systems refuse to sync a directory */ }
  d?.close();
}

/** Writes entries in commits under KV's limits. */
async function writeEntries(kv: Deno.Kv, entries: { key: Deno.KvKey; value: unknown }[]) {
  let op = kv.atomic();
  let n = 0;
  let bytes = 0;
  for (const e of entries) {
    const size = e.value instanceof Uint8Array
      ? e.value.length
      : JSON.stringify(e.value ?? null).length;
    if (n && (n >= 300 || bytes + size > 500_000)) {
      if (!(await op.commit()).ok) throw new RestoreError("a KV commit failed while restoring");
      op = kv.atomic();
      n = 0;
      bytes = 0;
    }
    op.set(e.key, e.value);
    n++;
    bytes += size;
  }
  if (n && !(await op.commit()).ok) throw new RestoreError("a KV commit failed while restoring");
}

export async function restoreFromBackup(opts: RestoreOptions): Promise<RestoreReport> {
  if (!(await isEmptyDataDir(opts.dataDir))) {
    throw new UsageError(
      `${opts.dataDir} is not empty; restore into a new data directory (--data)`,
    );
  }
  const from = parseRestoreSource(opts.grant);
  // Identities: the recovery keys given, and (below) what the password unwraps.
  const identities = new Map<string, string>();
  for (const key of opts.recoveryKeys ?? []) {
    try {
      identities.set(await recipientOf(key), key.trim());
    } catch {
      throw new UsageError("a recovery key is not an age identity (AGE-SECRET-KEY-1…)");
    }
  }
  const sessionKey = await generateSigningKey();
  let client: BackupClient;
  let start: RestoreStart;
  if (from.token) {
    client = backupClientFor(from.url, from.peer!, from.token, sessionKey, { fetch: opts.fetch });
    start = await client.startRestore(from.token);
  } else {
    if (isRelayUrl(from.url)) {
      throw new UsageError(
        "a backup kept through the edge relay is restored with the grant (URL#PEER.TOKEN, shown " +
          'by "hearth backup status" and "hearth friend allow"): the URL alone cannot claim the relay',
      );
    }
    if (!identities.size) {
      throw new UsageError(
        "with only the backup host's URL, give the recovery key (--recovery-key-file); " +
          "a restore with the password needs the grant (URL#PEER.TOKEN, shown by " +
          '"hearth backup status" and "hearth friend allow")',
      );
    }
    ({ client, start } = await BackupClient.startRestoreByKey(
      from.url,
      sessionKey,
      [...identities.keys()],
      { peer: from.peer, fetch: opts.fetch },
    ));
  }
  const home = opts.homeKey ?? start.home;
  if (start.home !== home) {
    throw new RestoreError(`the backup host pinned key ${start.home}, not the expected ${home}`);
  }
  if (opts.password) {
    for (const a of start.accounts) {
      if (identities.has(a.recipient) || !a.wrapped) continue;
      const id = await unwrapIdentity(fromBase64Url(a.wrapped), opts.password);
      if (id && await recipientOf(id) === a.recipient) identities.set(a.recipient, id);
    }
  }
  const opened = start.accounts.find((a) => identities.has(a.recipient));
  if (!opened) {
    throw new UsageError(
      "none of the given recovery keys or the password opens an account in this backup",
    );
  }
  const secret = await openSealed(
    fromBase64Url(opened.challenge),
    identities.get(opened.recipient)!,
  );
  await client.finishRestore(start.session, toBase64Url(secret));

  // Every manifest version is checked; the newest is restored unless it is older than known.
  const list = await client.manifests();
  let latest: Manifest | null = null;
  for (const { seq } of list.manifests) {
    const m = await verifyManifest(await client.manifest(seq), home).catch((e) => {
      throw new RestoreError(`manifest ${seq} is not valid: ${(e as Error).message}`);
    });
    if (m.seq !== seq) throw new RestoreError(`manifest ${seq} says it is number ${m.seq}`);
    if (!latest || m.seq > latest.seq) latest = m;
  }
  if (!latest) throw new RestoreError("the backup host holds no manifest for this peer");
  if (opts.minSeq !== undefined && latest.seq < opts.minSeq) {
    throw new RestoreError(
      `the newest manifest on the backup host is ${latest.seq}, older than ${opts.minSeq} seen before: ` +
        "the host is serving a rolled-back backup; refusing to restore it",
    );
  }

  // Everything is fetched and checked before the data directory is created.
  const restored: { id: string; messages: number; bytes: number }[] = [];
  const skipped: string[] = [];
  const plans: { snapshot: AccountSnapshot; blobs: BlobEntry[] }[] = [];
  for (const a of latest.accounts) {
    const identity = identities.get(a.recipient);
    if (!identity) {
      skipped.push(a.id);
      continue;
    }
    const sealed = await fetchVerified(client, a.snapshot, `the snapshot of account ${a.id}`);
    let snapshot: AccountSnapshot;
    try {
      snapshot = decodeTagged(
        new TextDecoder().decode(await gunzip(await openSealed(sealed, identity))),
      );
    } catch (e) {
      throw new RestoreError(
        `the snapshot of account ${a.id} does not open: ${(e as Error).message}`,
      );
    }
    const record = snapshot.entries.find((e) => e.key[0] === "account")?.value as
      | AccountRecord
      | undefined;
    if (snapshot.account !== a.id || record?.recipient !== a.recipient) {
      throw new RestoreError(`the snapshot of account ${a.id} belongs to another account`);
    }
    const own = (e: { key: Deno.KvKey; value: unknown }) =>
      e.key[0] === "login" ? e.value === a.id : (e.key[0] === "account" ||
        ["st", "doc"].includes(e.key[0] as string)) && e.key[1] === a.id;
    if (!snapshot.entries.every(own)) {
      throw new RestoreError(`the snapshot of account ${a.id} names keys of something else`);
    }
    const catalog = decodeCatalog(
      await fetchVerified(client, a.blobs, `the catalog of account ${a.id}`),
    );
    // The state units the root names must be the ones the catalog lists (the host keeps those).
    const listed = new Set(catalog.units.map((u) => u.id));
    const entries = [...snapshot.entries];
    for (const unit of snapshot.units ?? []) {
      if (!listed.has(unit.id)) {
        throw new RestoreError(`the catalog of account ${a.id} does not list unit ${unit.name}`);
      }
      const bytes = await fetchVerified(client, unit, `state unit ${unit.name} of ${a.id}`);
      let unitEntries: { key: Deno.KvKey; value: unknown }[];
      try {
        unitEntries = decodeTagged(
          new TextDecoder().decode(await gunzip(await openSealed(bytes, identity))),
        );
      } catch (e) {
        throw new RestoreError(
          `state unit ${unit.name} of account ${a.id} does not open: ${(e as Error).message}`,
        );
      }
      if (!unitEntries.every((e) => unitOf(e.key) === unit.name && e.key[1] === a.id)) {
        throw new RestoreError(`state unit ${unit.name} of account ${a.id} names other keys`);
      }
      entries.push(...unitEntries);
    }
    const lists: BlobEntry[][] = [];
    for (const b of catalog.buckets) {
      lists.push(decodeBlobList(await fetchVerified(client, b, `a blob list of account ${a.id}`)));
    }
    const deltas: BlobDelta[] = [];
    for (const d of catalog.deltas) {
      deltas.push(
        decodeBlobDelta(await fetchVerified(client, d, `a blob list delta of account ${a.id}`)),
      );
    }
    plans.push({ snapshot: { ...snapshot, entries }, blobs: resolveBlobList(lists, deltas) });
  }
  const first = plans[0].snapshot;
  const saved = (first.config ?? {}) as Partial<HearthConfig>;
  // Everything is written into a directory beside the target, moved into place only when the
  // whole restore succeeded: a restore that fails half way leaves no half-written box.
  const work = workDirFor(opts.dataDir);
  await Deno.mkdir(work, { recursive: true, mode: 0o700 });
  let kv: Deno.Kv | null = null;
  try {
    const config = await loadConfig(work, { ...saved, ...opts.overrides });
    await saveConfig(config);
    await initDataDir(config);
    const blobs = new BlobStore(`${work}/blobs`);
    kv = await Deno.openKv(`${work}/home.kv`);
    const db = kv;
    const total = plans.reduce((n, p) => n + p.blobs.length, 0);
    let done = 0;
    let bytes = 0;
    for (const plan of plans) {
      const indexEntries: { key: Deno.KvKey; value: unknown }[] = [];
      // Batches of messages (blob and index objects in one request), two in flight; about
      // one answer's worth (8 MiB) each, as the host leaves out what does not fit.
      const batches: BlobEntry[][] = [];
      for (let i = 0; i < plan.blobs.length; i += restoreBatchMessages) {
        batches.push(plan.blobs.slice(i, i + restoreBatchMessages));
      }
      let next = 0;
      let failed = false;
      const worker = async () => {
        while (next < batches.length && !failed) {
          const batch = batches[next++];
          const refs: [ObjectRef, string][] = [];
          for (const b of batch) {
            refs.push([b, "a message"]);
            if (b.index) refs.push([b.index, `the index of message ${b.id}`]);
          }
          const got = await fetchManyVerified(client, refs);
          for (const b of batch) {
            if (!b.index) continue;
            const entries = decodeTagged<{ key: Deno.KvKey; value: unknown }[]>(
              new TextDecoder().decode(got.get(b.index.id)!),
            );
            // Only this account's entries of this message: a forged object cannot write elsewhere.
            for (const e of entries) {
              const mine = e.key[1] === plan.snapshot.account && (
                ["meta", "text"].includes(e.key[0] as string)
                  ? e.key[2] === b.id
                  : e.key[0] === "arrival" && (e.value as { blob?: string })?.blob === b.id
              );
              if (!mine) {
                throw new RestoreError(`the index of message ${b.id} names other keys`);
              }
            }
            indexEntries.push(...entries);
          }
          await blobs.putMany(batch.map((b) => ({ id: b.id, sealed: got.get(b.id)! })));
          done += batch.length;
          bytes += batch.reduce((n, b) => n + b.size, 0);
          opts.onProgress?.(done, total, bytes);
        }
      };
      // Both workers stop before the directory is removed on a failure.
      const settled = await Promise.allSettled(
        Array.from({ length: Math.min(2, batches.length) }, () =>
          worker().catch((e) => {
            failed = true;
            throw e;
          })),
      );
      const failure = settled.find((r) => r.status === "rejected");
      if (failure) throw (failure as PromiseRejectedResult).reason;
      // The index goes last: a restore cut short leaves blobs without records (collected), never
      // records without blobs.
      await writeEntries(db, indexEntries);
      await writeEntries(db, plan.snapshot.entries);
      restored.push({
        id: plan.snapshot.account,
        messages: plan.blobs.length,
        bytes: plan.blobs.reduce((n, b) => n + b.size, 0),
      });
    }
    await db.set(["backup", "seen", home], latest.seq);
    db.close();
    kv = null;
    await moveIntoPlace(work, opts.dataDir);
  } catch (e) {
    kv?.close();
    await Deno.remove(work, { recursive: true }).catch(() => {});
    throw e;
  }
  return {
    seq: latest.seq,
    home,
    manifestsVerified: list.manifests.length,
    accounts: restored,
    skipped,
  };
}
