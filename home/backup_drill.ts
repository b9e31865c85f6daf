/**
 * Restore drills (docs/backup.md): the home box regularly fetches a random
 * sample back from each backup peer and checks what a restore would check:
 * the newest manifest is at least the version this box sent (no rollback)
 * and signed by this box's key, and each sampled object matches its digest
 * and size. When an account is unlocked, one sampled message is opened with
 * its key. The result is kept per peer (`hearth backup status`); a failure is
 * put in every account's INBOX, once a day per peer. `{ all: true }` checks
 * every object instead of a sample (`hearth backup drill --all`).
 *
 * @example
 * ```ts
 * const result = await drillPeer({ dataDir, kv, blobs }, peerId);
 * const full = await drillPeer({ dataDir, kv, blobs }, peerId, { all: true });
 * ```
 */
import { openSealed, sealToRecipient } from "../src/crypto/age.ts";
import { backupClientFor } from "../sync/backup/relay.ts";
import {
  batchObjects,
  decodeBlobDelta,
  decodeBlobList,
  decodeCatalog,
  type Manifest,
  objectIdOf,
  type ObjectRef,
  resolveBlobList,
  verifyManifest,
} from "../sync/backup/format.ts";
import type { BackupDeps, BackupPeerRecord } from "./backup.ts";
import { homeSigningKey } from "./edge_link.ts";
import type { AccountRecord, AccountRegistry } from "./store/accounts.ts";
import { deliverSealed } from "./store/deliver.ts";

export interface DrillResult {
  at: number;
  ok: boolean;
  seq: number;
  checked: number;
  bytes: number;
  /** Whether a sampled message was opened with its account key (the account was unlocked). */
  opened: boolean;
  error: string | null;
}

export interface DrillOptions {
  /** Messages sampled per account (default 8). */
  sample?: number;
  /** Check every object the newest version names, not a sample. */
  all?: boolean;
}

export interface DrillDeps extends BackupDeps {
  /** Unlocked accounts' keys, to open one sampled message. */
  registry?: AccountRegistry;
  random?: () => number;
}

function sample<T>(items: T[], n: number, random: () => number): T[] {
  const copy = items.slice();
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [copy[i], copy[j]] = [copy[j], copy[i]];
  }
  return copy.slice(0, n);
}

/** Runs one drill against one peer, records it, and reports a failure to the accounts. */
export async function drillPeer(
  deps: DrillDeps,
  peerId: string,
  opts: DrillOptions = {},
): Promise<DrillResult> {
  const { kv } = deps;
  const random = deps.random ?? Math.random;
  const size = opts.sample ?? 8;
  const pick = <T>(items: T[], n: number) => opts.all ? items : sample(items, n, random);
  const rec = (await kv.get<BackupPeerRecord>(["backup", "peer", peerId])).value;
  if (!rec) throw new Error(`no backup peer ${peerId}`);
  const key = await homeSigningKey(deps.dataDir);
  const client = backupClientFor(rec.url, rec.peer, rec.token, key, { fetch: deps.fetch });
  const result: DrillResult = {
    at: Date.now(),
    ok: false,
    seq: 0,
    checked: 0,
    bytes: 0,
    opened: false,
    error: null,
  };
  const verified = (ref: ObjectRef, what: string, bytes: Uint8Array) => {
    if (objectIdOf(bytes) !== ref.id || bytes.length !== ref.size) {
      throw new Error(
        `${what} (object ${ref.id}) is damaged on the backup host: its digest or size does not match`,
      );
    }
    result.checked++;
    result.bytes += bytes.length;
    return bytes;
  };
  const check = async (ref: ObjectRef, what: string) => {
    const bytes = await client.getObject(ref.id).catch((e) => {
      throw new Error(`${what} (object ${ref.id}) could not be fetched: ${(e as Error).message}`);
    });
    return verified(ref, what, bytes);
  };
  /** Several objects per request; what an answer leaves out is fetched alone (which names it). */
  const checkMany = async (refs: [ObjectRef, string][]) => {
    const out = new Map<string, Uint8Array>();
    for (let i = 0; i < refs.length; i += batchObjects) {
      const part = refs.slice(i, i + batchObjects);
      const got = await client.getObjects(part.map(([r]) => r.id));
      for (const [ref, what] of part) {
        const bytes = got.get(ref.id);
        out.set(ref.id, bytes ? verified(ref, what, bytes) : await check(ref, what));
      }
    }
    return out;
  };
  try {
    const list = await client.manifests();
    const newest = Math.max(0, ...list.manifests.map((m) => m.seq));
    if (newest < rec.seq) {
      throw new Error(
        `the backup host's newest manifest is version ${newest}, older than version ${rec.seq} this box sent (a rollback)`,
      );
    }
    if (!newest) throw new Error("the backup host holds no version yet");
    const m: Manifest = await verifyManifest(await client.manifest(newest), key.publicKey)
      .catch((e) => {
        throw new Error(`manifest ${newest} on the backup host is not valid: ${e.message}`);
      });
    if (m.seq !== newest) {
      throw new Error(
        `the backup host serves manifest ${m.seq} as version ${newest} (an old manifest)`,
      );
    }
    result.seq = m.seq;
    for (const a of m.accounts) {
      await check(a.snapshot, `the snapshot of account ${a.id}`);
      await check(a.wrapped, `the wrapped key of account ${a.id}`);
      const catalog = decodeCatalog(await check(a.blobs, `the catalog of account ${a.id}`));
      await checkMany(pick(catalog.units, 2).map((u) => [u, `a state unit of account ${a.id}`]));
      const lists = pick(catalog.buckets, 4);
      const listBytes = await checkMany(lists.map((b) => [b, `a blob list of account ${a.id}`]));
      // Every delta (a few small objects): what they removed is not sampled, what they added is.
      const deltaBytes = await checkMany(
        catalog.deltas.map((d) => [d, `a blob list delta of account ${a.id}`]),
      );
      const blobs = resolveBlobList(
        lists.map((b) => decodeBlobList(listBytes.get(b.id)!)),
        catalog.deltas.map((d) => decodeBlobDelta(deltaBytes.get(d.id)!)),
      );
      const picked = pick(blobs, size);
      const got = await checkMany(picked.flatMap((b): [ObjectRef, string][] => [
        [b, `message ${b.id} of account ${a.id}`],
        ...(b.index ? [[b.index, `the index of message ${b.id}`] as [ObjectRef, string]] : []),
      ]));
      const identity = deps.registry?.unlocked(a.id)?.keys.identity;
      for (const b of picked) {
        const sealed = got.get(b.id)!;
        if (identity && !result.opened) {
          await openSealed(sealed, identity).catch(() => {
            throw new Error(`message ${b.id} of account ${a.id} does not open with its key`);
          });
          result.opened = true;
        }
      }
    }
    result.ok = true;
  } catch (e) {
    result.error = (e as Error).message;
  }
  await kv.set(["backup", "drill", peerId], result);
  if (!result.ok) await reportFailure(deps, rec, result);
  return result;
}

/** The last drill of a peer, if any. */
export async function lastDrill(kv: Deno.Kv, peerId: string): Promise<DrillResult | null> {
  return (await kv.get<DrillResult>(["backup", "drill", peerId])).value;
}

/** A message to every account's INBOX: sealed to its key, stored once per peer and day. */
async function reportFailure(deps: DrillDeps, peer: BackupPeerRecord, r: DrillResult) {
  const day = new Date(r.at).toISOString().slice(0, 10);
  const text = [
    "From: Hearth <postmaster@localhost>",
    "Subject: Backup check failed",
    `Date: ${new Date(r.at).toUTCString()}`,
    `Message-ID: <backup-drill-${peer.peer}-${day}@hearth>`,
    "Content-Type: text/plain; charset=utf-8",
    "",
    `Your home box checked its backup at ${peer.url} and found a problem:`,
    "",
    `  ${r.error}`,
    "",
    'Run "hearth backup status" and "hearth backup run"; if it persists, ask your friend to check',
    "their box, or add another backup peer.",
    "",
  ].join("\r\n");
  const raw = new TextEncoder().encode(text);
  for await (const e of deps.kv.list<AccountRecord>({ prefix: ["account"] })) {
    await deliverSealed(deps.kv, deps.blobs, {
      account: e.value.id,
      sealed: await sealToRecipient(raw, e.value.recipient),
      size: raw.length,
      date: r.at,
      itemId: `backup-drill-${peer.peer}-${day}-${e.value.id}`,
    }, deps.registry).catch(() => {});
  }
}
