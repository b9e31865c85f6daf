/**
 * What a phone's mail needs from the home box (docs/sync.md), beside the
 * account document: summaries of the messages it lists (sender, subject,
 * date, snippet), sealed bodies on request, and the Sent copies of mail the
 * phone sent. Only the home can make summaries of mail it already holds: it
 * has the account identity while unlocked.
 *
 * @example
 * ```ts
 * const { entries, heads } = await newSummaries(store, host.doc, lastHeads);
 * const batch = await encodeSummaries(entries);
 * ```
 */
import { limits } from "../src/limits.ts";
import { log } from "../src/log.ts";
import type { AccountDoc, DocMessage } from "../sync/doc.ts";
import { summarize, type Summary } from "../sync/summary.ts";
import { AccountStore } from "./store/account_store.ts";
import { BlobStore } from "./store/blobs.ts";

/** Flags a phone may set on its Sent copy. */
const phoneFlags = new Set(["\\Seen", "\\Answered", "\\Flagged"]);

/** Messages summarised at once (each opens its sealed blob). */
const parallel = 8;

/** The newest `perMailbox` messages of each mailbox, as blob ids, newest first. */
function newestPerMailbox(messages: Iterable<DocMessage>, perMailbox: number): string[] {
  const byBox = new Map<string, DocMessage[]>();
  for (const m of messages) {
    const list = byBox.get(m.mailbox) ?? [];
    list.push(m);
    byBox.set(m.mailbox, list);
  }
  const out = new Set<string>();
  for (const list of byBox.values()) {
    list.sort((a, b) => b.date - a.date);
    for (const m of list.slice(0, perMailbox)) out.add(m.blob);
  }
  return [...out];
}

/**
 * Summaries a phone lacks after the document moved on from `since` (the
 * heads of the last summaries sent to it): the messages added since then,
 * the newest {@linkcode limits.phoneSummariesPerMailbox} per mailbox. With
 * no `since` (a new phone), or heads this document no longer knows, the
 * newest of every mailbox. Older ones are asked for on demand.
 */
export async function newSummaries(
  store: AccountStore,
  doc: AccountDoc,
  since: string[] | null,
): Promise<{ entries: [string, Summary][]; heads: string[] }> {
  const heads = doc.heads();
  const perMailbox = limits.phoneSummariesPerMailbox;
  let blobs: string[];
  let added: DocMessage[] | null = null;
  if (since) {
    try {
      added = doc.editsSince(since).flatMap((e) => e.kind === "add" ? [e.message] : []);
    } catch {
      added = null; // heads unknown here (a rebuilt document): start again
    }
  }
  if (added) blobs = newestPerMailbox(added, perMailbox);
  else {blobs = newestPerMailbox(
      (function* () {
        for (const [, m] of doc.messages()) yield m;
      })(),
      perMailbox,
    );}
  return { entries: await summariesOf(store, blobs), heads };
}

/** Summaries of the account's messages with these blob ids (others are skipped). */
export async function summariesOf(
  store: AccountStore,
  blobs: string[],
): Promise<[string, Summary][]> {
  const out: [string, Summary][] = [];
  const want = [...new Set(blobs)].filter((b) => store.state.blobRefs.has(b));
  for (let i = 0; i < want.length; i += parallel) {
    await Promise.all(
      want.slice(i, i + parallel).map(async (blob) => {
        try {
          out.push([blob, summarize(await store.message(blob))]);
        } catch (e) {
          // Expunged meanwhile, or a damaged blob: the phone lists it without a summary.
          log.warn("phone.summary-failed", { blob, error: (e as Error).message });
        }
      }),
    );
  }
  return out;
}

/** A message's sealed bytes as stored, or an empty array when the account has no such blob. */
export async function sealedBlob(store: AccountStore, blob: string): Promise<Uint8Array> {
  if (!store.state.blobRefs.has(blob)) return new Uint8Array();
  try {
    return await store.sealed(blob);
  } catch (e) {
    log.warn("phone.blob-unreadable", { blob, error: (e as Error).message });
    return new Uint8Array();
  }
}

/**
 * Stores a phone's copy of mail it sent in the account's mailbox with this
 * special use (RFC 6154; `\Sent`), once: a copy whose sealed bytes the
 * account already holds is not stored again (a resent envelope). Returns
 * false when it was not stored.
 */
export async function appendFromPhone(
  store: AccountStore,
  m: { use: string; flags: string[]; date: number; sealed: Uint8Array },
): Promise<boolean> {
  if (m.use !== "\\Sent") return false;
  const find = () =>
    [...store.state.mailboxes.values()].find((mb) => mb.rec.specialUse === m.use) ??
      store.state.byName("Sent");
  if (!find()) {
    log.warn("phone.no-sent-mailbox", { account: store.id });
    return false;
  }
  const blob = await BlobStore.idOf(m.sealed);
  if (store.state.blobRefs.has(blob)) return false;
  // Opening proves the copy is sealed to this account; the bytes are kept as they are.
  const prepared = await store.prepareSealed(m.sealed);
  const flags = m.flags.filter((f) => phoneFlags.has(f));
  return await store.mutate((tx) => {
    const target = find();
    if (!target || tx.state.blobRefs.has(prepared.blob)) return false;
    tx.push({
      op: "add",
      mb: target.id,
      msg: AccountStore.newRecord(
        target.rec.uidNext,
        prepared,
        flags,
        Number.isFinite(m.date) && m.date > 0 ? m.date : Date.now(),
        tx.nextModSeq(),
      ),
    });
    return true;
  });
}
