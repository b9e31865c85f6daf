/**
 * `hearth import`: copies every folder of an IMAP account, with flags,
 * keywords and internal dates, into an unlocked Hearth account. Decisions in
 * docs/import.md.
 *
 * Messages are written straight into the account's store in batches: sealed
 * and fsynced in parallel, then indexed by one {@linkcode AccountStore.mutate}
 * whose commit also records the folder's resume point (UIDVALIDITY and the
 * highest UID copied). A batch is therefore either wholly imported and
 * recorded, or not at all: an interrupted import resumes without duplicates.
 *
 * @example
 * ```ts
 * const summary = await importAccount({ client, folders, store, progress: { tty: false, everyMs: 2000 } });
 * console.log(summary.messages);
 * ```
 */
import type { ImapFlow } from "imapflow";
import { AccountStore } from "../store/account_store.ts";
import { freshUidValidity, newMailboxRecord } from "../store/accounts.ts";
import type { MailboxRecord } from "../store/state.ts";
import { sha256, toHex } from "../../src/encoding.ts";
import { normaliseLineEndings } from "../../src/mail/line_endings.ts";
import { limits } from "../../src/limits.ts";
import { UsageError } from "../../src/errors.ts";
import { mappedUses, type SourceFolder } from "./source.ts";
import { ImportProgress, type ProgressOptions } from "./progress.ts";

/** Messages per batch (one index commit) and bytes fetched per batch, at most. */
const batchMessages = 200;
const batchBytes = 8 * 1024 * 1024;

/** The resume point of one source folder, stored under a keyed hash of its name. */
export interface ResumeRecord {
  uidValidity: number;
  lastUid: number;
}

/** What one folder holds (dry run) or what was copied from it. */
export interface FolderCount {
  path: string;
  target: string;
  specialUse: string | null;
  /** Messages (and their bytes) left to copy, or copied. */
  messages: number;
  bytes: number;
  /** Messages copied by an earlier, interrupted run (skipped by UID). */
  already: number;
  /** Messages skipped as already present after a UIDVALIDITY change, or unimportable. */
  skipped: number;
}

export interface ImportSummary {
  folders: FolderCount[];
  messages: number;
  bytes: number;
  already: number;
  skipped: number;
  seconds: number;
}

interface Plan {
  folder: SourceFolder;
  uidValidity: number;
  /** UIDs (with sizes) above the resume point, ascending. */
  todo: { uid: number; size: number }[];
  /** The resume point was for another UIDVALIDITY: re-import, skipping what is there. */
  changed: boolean;
  already: number;
  key: Deno.KvKey | null;
}

/** Where the import writes; absent for a dry run. */
export interface ImportTarget {
  store: AccountStore;
  kv: Deno.Kv;
  /** Identifies the source account in resume records (`host:port/user`). */
  sourceId: string;
}

export interface ImportRun {
  client: ImapFlow;
  folders: SourceFolder[];
  target?: ImportTarget;
  progress: ProgressOptions;
}

/**
 * The KV key of a folder's resume point: a hash keyed with the account
 * identity, so nothing on disk names the source or its folders (DESIGN.md:
 * folder names are not readable at rest), and nobody without the key can
 * test a guessed name against it.
 */
export async function resumeKey(
  store: AccountStore,
  sourceId: string,
  path: string,
): Promise<Deno.KvKey> {
  const text = `hearth-import\0${store.keys.identity}\0${sourceId}\0${path}`;
  return ["import", store.id, toHex(await sha256(new TextEncoder().encode(text)))];
}

const systemFlags = new Map(
  ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"].map((f) => [f.toLowerCase(), f]),
);

/**
 * The flags Hearth stores for a source message: the RFC 9051 §2.3.2 system
 * flags in canonical case and every valid keyword; \Recent (session state)
 * and unknown system flags are dropped.
 */
export function importedFlags(flags: Iterable<string>): string[] {
  const out = new Set<string>();
  for (const f of flags) {
    if (f.startsWith("\\")) {
      const sys = systemFlags.get(f.toLowerCase());
      if (sys) out.add(sys);
    } else if (/^[\x21-\x7e]+$/.test(f) && !/[(){%*"\\\]]/.test(f)) out.add(f);
  }
  return [...out];
}

/** Reads what each folder has to copy (and, with a target, where the last run stopped). */
async function planFolders(
  client: ImapFlow,
  folders: SourceFolder[],
  target?: ImportTarget,
): Promise<Plan[]> {
  const plans: Plan[] = [];
  for (const folder of folders) {
    const box = await client.mailboxOpen(folder.path, { readOnly: true });
    const uidValidity = Number(box.uidValidity);
    const key = target ? await resumeKey(target.store, target.sourceId, folder.path) : null;
    const resume = key ? (await target!.kv.get<ResumeRecord>(key)).value : null;
    const after = resume && resume.uidValidity === uidValidity ? resume.lastUid : 0;
    let all: { uid: number; size: number }[] = [];
    if (box.exists > 0) {
      const listed = await client.fetchAll("1:*", { uid: true, size: true });
      all = listed.map((m) => ({ uid: m.uid, size: m.size ?? 0 })).sort((a, b) => a.uid - b.uid);
    }
    const todo = all.filter((m) => m.uid > after);
    plans.push({
      folder,
      uidValidity,
      todo,
      changed: resume !== null && resume.uidValidity !== uidValidity,
      already: all.length - todo.length,
      key,
    });
  }
  return plans;
}

/** Counts what an import would copy, writing nothing. */
export async function countSource(
  client: ImapFlow,
  folders: SourceFolder[],
  target?: ImportTarget,
): Promise<ImportSummary> {
  const started = performance.now();
  const plans = await planFolders(client, folders, target);
  return summarise(plans.map((p) => countOf(p, p.todo.length, sum(p.todo), 0)), started);
}

function countOf(p: Plan, messages: number, bytes: number, skipped: number): FolderCount {
  return {
    path: p.folder.path,
    target: p.folder.target,
    specialUse: p.folder.specialUse,
    messages,
    bytes,
    already: p.already,
    skipped,
  };
}

function sum(list: { size: number }[]): number {
  return list.reduce((n, m) => n + m.size, 0);
}

function summarise(folders: FolderCount[], started: number): ImportSummary {
  return {
    folders,
    messages: folders.reduce((n, f) => n + f.messages, 0),
    bytes: folders.reduce((n, f) => n + f.bytes, 0),
    already: folders.reduce((n, f) => n + f.already, 0),
    skipped: folders.reduce((n, f) => n + f.skipped, 0),
    seconds: (performance.now() - started) / 1000,
  };
}

/** Copies every folder; returns what was copied. */
export async function importAccount(run: ImportRun & { target: ImportTarget }): Promise<
  ImportSummary
> {
  const started = performance.now();
  const { client, target } = run;
  const plans = await planFolders(client, run.folders, target);
  const targets = await ensureTargetFolders(target.store, run.folders);
  const progress = new ImportProgress(
    {
      messages: plans.reduce((n, p) => n + p.todo.length, 0),
      bytes: plans.reduce((n, p) => n + sum(p.todo), 0),
    },
    run.progress,
  );
  const counts: FolderCount[] = [];
  try {
    for (const plan of plans) {
      counts.push(
        await importFolder(client, target.store, plan, targets.get(plan.folder.path)!, progress),
      );
    }
  } finally {
    progress.finish();
  }
  return summarise(counts, started);
}

/**
 * Finds or creates the Hearth folder of every source folder: a special-use
 * folder goes to Hearth's folder with that use, anything else to the folder
 * of the same name (created with its missing superiors, as CREATE does).
 */
async function ensureTargetFolders(
  store: AccountStore,
  folders: SourceFolder[],
): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const used = new Set([...store.state.mailboxes.values()].map((m) => m.rec.uidValidity));
  const byUse = (use: string) =>
    [...store.state.mailboxes.values()].find((m) => m.rec.specialUse === use);
  const creating = new Map<string, MailboxRecord>();
  for (const f of folders) {
    const special = f.specialUse && mappedUses.has(f.specialUse) ? byUse(f.specialUse) : undefined;
    if (special) {
      f.target = special.name;
      continue;
    }
    const parts = f.target.split("/");
    for (let i = 1; i <= parts.length; i++) {
      const name = parts.slice(0, i).join("/");
      if (store.state.byName(name) || creating.has(name)) continue;
      const use = i === parts.length && f.specialUse && mappedUses.has(f.specialUse)
        ? f.specialUse
        : null;
      creating.set(name, await newMailboxRecord(store, name, use, freshUidValidity({ used })));
    }
  }
  if (creating.size) {
    if (store.state.mailboxes.size + creating.size > limits.mailboxesPerAccount) {
      throw new UsageError(
        `the source has more folders than a Hearth account may hold (${limits.mailboxesPerAccount})`,
      );
    }
    await store.mutate((tx) => {
      for (const [name, rec] of creating) {
        if (tx.state.byName(name)) continue;
        tx.push({ op: "mbox", rec: { ...rec, highestModSeq: tx.nextModSeq() } });
      }
    });
  }
  for (const f of folders) {
    const mb = store.state.byName(f.target);
    if (!mb) throw new Error(`the folder ${f.target} could not be created`);
    out.set(f.path, mb.id);
  }
  return out;
}

interface Fetched {
  uid: number;
  raw: Uint8Array;
  flags: string[];
  date: number;
}

async function fetchBatch(
  client: ImapFlow,
  batch: { uid: number }[],
): Promise<Fetched[]> {
  const want = new Set(batch.map((m) => m.uid));
  const range = `${batch[0].uid}:${batch[batch.length - 1].uid}`;
  const got = await client.fetchAll(range, {
    uid: true,
    flags: true,
    internalDate: true,
    source: true,
  }, {
    uid: true,
  });
  const out: Fetched[] = [];
  for (const m of got) {
    if (!want.has(m.uid) || !m.source) continue; // arrived since the plan, or expunged meanwhile
    const date = m.internalDate ? new Date(m.internalDate).getTime() : NaN;
    out.push({
      uid: m.uid,
      raw: normaliseLineEndings(
        new Uint8Array(m.source.buffer, m.source.byteOffset, m.source.length),
      ),
      flags: importedFlags(m.flags ?? []),
      date: Number.isFinite(date) ? date : Date.now(),
    });
  }
  return out.sort((a, b) => a.uid - b.uid);
}

/** Splits a folder's work into batches bounded by message count and bytes. */
function batchesOf(todo: { uid: number; size: number }[]): { uid: number; size: number }[][] {
  const out: { uid: number; size: number }[][] = [];
  let cur: { uid: number; size: number }[] = [];
  let bytes = 0;
  for (const m of todo) {
    if (cur.length && (cur.length >= batchMessages || bytes + m.size > batchBytes)) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(m);
    bytes += m.size;
  }
  if (cur.length) out.push(cur);
  return out;
}

async function importFolder(
  client: ImapFlow,
  store: AccountStore,
  plan: Plan,
  mailboxId: string,
  progress: ImportProgress,
): Promise<FolderCount> {
  let messages = 0;
  let bytes = 0;
  let skipped = 0;
  if (!plan.todo.length) return countOf(plan, 0, 0, 0);
  await client.mailboxOpen(plan.folder.path, { readOnly: true });
  // After a UIDVALIDITY change the UIDs mean nothing: what is already in the Hearth folder
  // (same internal date and size) is not copied again.
  const present = new Map<string, number>();
  if (plan.changed) {
    for (const m of store.state.mailboxes.get(mailboxId)?.byUid.values() ?? []) {
      const k = `${m.date}:${m.size}`;
      present.set(k, (present.get(k) ?? 0) + 1);
    }
  }
  const batches = batchesOf(plan.todo);
  // The next batch is fetched while this one is sealed and written.
  let next: Promise<Fetched[]> | null = fetchBatch(client, batches[0]);
  for (let i = 0; i < batches.length; i++) {
    const fetched = await next!;
    next = i + 1 < batches.length ? fetchBatch(client, batches[i + 1]) : null;
    next?.catch(() => {}); // awaited on the next turn; a failure there is reported then
    const keep = fetched.filter((m) => {
      if (m.raw.length === 0 || m.raw.length > limits.messageBytes) return false;
      const k = `${m.date}:${m.raw.length}`;
      const n = present.get(k);
      if (n) {
        present.set(k, n - 1);
        return false;
      }
      return true;
    });
    skipped += fetched.length - keep.length;
    const prepared = keep.length ? await store.prepareMany(keep.map((m) => m.raw)) : [];
    const lastUid = batches[i][batches[i].length - 1].uid;
    await store.mutate((tx) => {
      const mb = tx.state.mailboxes.get(mailboxId);
      if (!mb) {
        throw new UsageError(`the folder ${plan.folder.target} was deleted during the import`);
      }
      prepared.forEach((p, j) => {
        tx.push({
          op: "add",
          mb: mailboxId,
          msg: AccountStore.newRecord(
            mb.rec.uidNext,
            p,
            keep[j].flags,
            keep[j].date,
            tx.nextModSeq(),
          ),
        });
      });
      tx.setWithCommit(
        plan.key!,
        { uidValidity: plan.uidValidity, lastUid } satisfies ResumeRecord,
      );
    });
    const n = keep.reduce((s, m) => s + m.raw.length, 0);
    messages += keep.length;
    bytes += n;
    progress.add(batches[i].length, sum(batches[i]));
  }
  return countOf(plan, messages, bytes, skipped);
}
