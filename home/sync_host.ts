/**
 * The home box's side of an account document (docs/sync.md): it follows the
 * account store's committed changes into the Automerge document, applies
 * edits merged from a phone back to the IMAP state (so IDLE clients see them
 * as untagged FETCH/EXPUNGE), and keeps the document encrypted in KV.
 *
 * Recording is idempotent: each change event is turned into the document
 * state it implies, and only differences become Automerge operations. A
 * phone's edit applied at home therefore comes back as an event that changes
 * nothing — no echo, no origin bookkeeping.
 *
 * The document is derived state: the IMAP index is authoritative. At open,
 * the saved document is reconciled with the store, so a crash that lost the
 * last save loses nothing. Two rules keep that true when phones take part:
 * a phone's changes are merged and applied to the store under one lock that
 * saves wait for ({@linkcode DocHost.merge}), so a saved document never holds a
 * phone's change the store lacks (reconciling would undo it); and the home
 * saves before it sends its own changes to a phone ({@linkcode DocHost.saveIfChanged}),
 * so a phone never holds a home change that a crash could take from the home.
 *
 * @example
 * ```ts
 * const host = await DocHost.open(kv, store);
 * const peer = new SyncPeer(host.doc, savedState);
 * // … after receiving frames: await host.applyRemote(host.doc.editsSince(headsBefore));
 * await host.close();
 * ```
 */
import { decryptIndex, encryptIndex } from "../src/crypto/index_key.ts";
import { toHex } from "../src/encoding.ts";
import { log } from "../src/log.ts";
import { AccountDoc, type DocEdit } from "../sync/doc.ts";
import type { AccountStore, ChangeEvent } from "./store/account_store.ts";
import type { MessageRecord } from "./store/state.ts";
import { deletePrefix, getChunked, gunzip, gzip, setChunked } from "./store/chunks.ts";

/** How long after a change the document is saved. */
const saveDelayMs = 1_000;

interface Place {
  mb: string;
  uid: number;
}

export class DocHost {
  readonly doc: AccountDoc;
  readonly #kv: Deno.Kv;
  readonly #store: AccountStore;
  /** Where each document message is in the IMAP state, and back. */
  readonly #place = new Map<string, Place>();
  readonly #idAt = new Map<string, Map<number, string>>();
  readonly #unsubscribe: () => void;
  readonly #listeners = new Set<() => void>();
  #saveTimer: ReturnType<typeof setTimeout> | undefined;
  /** Saves and merges, one at a time. */
  #saving: Promise<unknown> = Promise.resolve();
  /** The heads of the last saved document. */
  #savedHeads = "";
  #closed = false;
  #discarded = false;

  private constructor(kv: Deno.Kv, store: AccountStore, doc: AccountDoc) {
    this.#kv = kv;
    this.#store = store;
    this.doc = doc;
    this.#unsubscribe = store.subscribe((events) => this.#record(events));
  }

  /** Loads (or builds) the account's document and brings it up to date with the store. */
  static async open(kv: Deno.Kv, store: AccountStore): Promise<DocHost> {
    const doc = (await DocHost.#load(kv, store)) ?? AccountDoc.create();
    const host = new DocHost(kv, store, doc);
    host.#reconcile();
    await host.save();
    return host;
  }

  static async #load(kv: Deno.Kv, store: AccountStore): Promise<AccountDoc | null> {
    const current = (await kv.get<{ gen: string; count: number }>(["doc", store.id, "current"]))
      .value;
    if (!current) return null;
    const box = await getChunked(kv, ["doc", store.id, current.gen], current.count);
    try {
      if (!box) throw new Error("chunks are missing");
      const plain = await decryptIndex(store.keys.indexKey, box, `doc:${current.gen}`);
      return AccountDoc.load(await gunzip(plain));
    } catch (e) {
      log.error("sync.doc-unreadable", { account: store.id, error: e });
      return null;
    }
  }

  /** Saves the document (errors are logged). */
  save(): Promise<void> {
    clearTimeout(this.#saveTimer);
    this.#saveTimer = undefined;
    return this.#exclusive(() => this.#write()).catch((e) =>
      log.error("sync.doc-save-failed", { account: this.#store.id, error: e })
    );
  }

  /**
   * Saves now if the document changed since the last save, and throws if saving fails: the
   * home calls it before sending its own changes to a phone.
   */
  saveIfChanged(): Promise<void> {
    return this.#exclusive(async () => {
      if (this.doc.heads().join(",") !== this.#savedHeads) await this.#write();
    });
  }

  /**
   * Runs `fn` (merging a phone's changes and applying them to the store) while no save runs,
   * so no save sees the merged document before the store has the changes.
   */
  merge<T>(fn: () => Promise<T>): Promise<T> {
    return this.#exclusive(fn);
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#saving.then(fn);
    this.#saving = run.catch(() => {});
    return run;
  }

  /** Writes a new generation of chunks, then the pointer to it, then removes the old one. */
  async #write() {
    if (this.#discarded) return;
    const heads = this.doc.heads().join(",");
    const gen = toHex(crypto.getRandomValues(new Uint8Array(8)));
    const plain = await gzip(this.doc.save());
    const box = await encryptIndex(this.#store.keys.indexKey, plain, `doc:${gen}`);
    const count = Math.max(1, Math.ceil(box.length / 60_000));
    await setChunked(this.#kv, ["doc", this.#store.id, gen], box);
    const pointer = ["doc", this.#store.id, "current"];
    const old = (await this.#kv.get<{ gen: string }>(pointer)).value;
    await this.#kv.set(pointer, { gen, count });
    this.#savedHeads = heads;
    if (old) await deletePrefix(this.#kv, ["doc", this.#store.id, old.gen]);
  }

  #scheduleSave() {
    if (this.#closed || this.#discarded || this.#saveTimer) return;
    this.#saveTimer = setTimeout(() => this.save(), saveDelayMs);
  }

  #map(id: string, place: Place) {
    this.#place.set(id, place);
    let m = this.#idAt.get(place.mb);
    if (!m) this.#idAt.set(place.mb, m = new Map());
    m.set(place.uid, id);
  }

  #unmap(place: Place): string | undefined {
    const id = this.#idAt.get(place.mb)?.get(place.uid);
    if (id === undefined) return undefined;
    this.#idAt.get(place.mb)!.delete(place.uid);
    this.#place.delete(id);
    return id;
  }

  /** A document id for a new message: its blob id, unless a copy already uses it. */
  #newId(blob: string): string {
    if (!this.#place.has(blob) && !this.doc.message(blob)) return blob;
    return toHex(crypto.getRandomValues(new Uint8Array(32)));
  }

  #mailboxEdits(): DocEdit[] {
    const edits: DocEdit[] = [];
    const inDoc = this.doc.mailboxes();
    for (const mb of this.#store.state.mailboxes.values()) {
      const have = inDoc.get(mb.id);
      if (!have || have.name !== mb.name || have.use !== mb.rec.specialUse) {
        edits.push({ kind: "mailbox", id: mb.id, name: mb.name, use: mb.rec.specialUse });
      }
    }
    for (const id of inDoc.keys()) {
      if (!this.#store.state.mailboxes.has(id)) edits.push({ kind: "mailbox-delete", id });
    }
    return edits;
  }

  /**
   * Pairs document messages with the store's, fixes every difference. Pairs by (mailbox, blob)
   * first, then by blob alone: a move whose record a crash took stays a move of the same
   * document message, so a phone's concurrent change to that message is kept (as a remove
   * and an add under a new id, it was lost).
   */
  #reconcile() {
    const edits = this.#mailboxEdits();
    const byPlace = new Map<string, string[]>();
    for (const [id, m] of this.doc.messages()) {
      const k = `${m.mailbox}\t${m.blob}`;
      byPlace.set(k, [...(byPlace.get(k) ?? []), id]);
    }
    const homeless: [string, number, MessageRecord][] = [];
    for (const mb of this.#store.state.mailboxes.values()) {
      for (const uid of mb.uids) {
        const rec = mb.byUid.get(uid)!;
        const id = byPlace.get(`${mb.id}\t${rec.blob}`)?.pop();
        if (id) this.#pair(id, mb.id, uid, rec, edits);
        else homeless.push([mb.id, uid, rec]);
      }
    }
    const byBlob = new Map<string, string[]>();
    for (const ids of byPlace.values()) {
      for (const id of ids) {
        const blob = this.doc.message(id)!.blob;
        byBlob.set(blob, [...(byBlob.get(blob) ?? []), id]);
      }
    }
    for (const [mb, uid, rec] of homeless) {
      const id = byBlob.get(rec.blob)?.pop();
      if (id) {
        edits.push({ kind: "move", id, mailbox: mb });
        this.#pair(id, mb, uid, rec, edits);
        continue;
      }
      const fresh = this.#newId(rec.blob);
      this.#map(fresh, { mb, uid });
      edits.push({
        kind: "add",
        id: fresh,
        message: { mailbox: mb, flags: rec.flags, date: rec.date, size: rec.size, blob: rec.blob },
      });
    }
    for (const ids of byBlob.values()) for (const id of ids) edits.push({ kind: "remove", id });
    if (edits.length) this.doc.edit(edits, "reconcile");
  }

  #pair(id: string, mb: string, uid: number, rec: MessageRecord, edits: DocEdit[]) {
    this.#map(id, { mb, uid });
    if (this.doc.message(id)!.flags.join(" ") !== rec.flags.join(" ")) {
      edits.push({ kind: "flags", id, flags: rec.flags });
    }
  }

  /** Turns one commit's events into document edits (see the module comment). */
  #record(events: ChangeEvent[]) {
    if (this.#closed) return;
    const state = this.#store.state;
    const edits: DocEdit[] = [];
    // Expunged in this commit, by blob: an add of the same blob elsewhere is a move.
    const gone = new Map<string, string[]>();
    for (const e of events) {
      if (e.kind !== "expunge") continue;
      for (const uid of e.uids) {
        const id = this.#unmap({ mb: e.mb, uid });
        if (!id) continue;
        const blob = this.doc.message(id)?.blob ?? id;
        gone.set(blob, [...(gone.get(blob) ?? []), id]);
      }
    }
    for (const e of events) {
      if (e.kind === "mailboxes") {
        edits.push(...this.#mailboxEdits());
      } else if (e.kind === "add") {
        const rec = state.mailboxes.get(e.mb)?.byUid.get(e.uid);
        // Already named: an arrival that committed while the document opened is in the state
        // reconciling read, and its event comes after (a second id would make a duplicate).
        if (!rec || this.#idAt.get(e.mb)?.has(e.uid)) continue;
        const moved = gone.get(rec.blob)?.pop();
        if (moved) {
          this.#map(moved, { mb: e.mb, uid: e.uid });
          edits.push({ kind: "move", id: moved, mailbox: e.mb });
          edits.push({ kind: "flags", id: moved, flags: rec.flags });
          continue;
        }
        const id = this.#newId(rec.blob);
        this.#map(id, { mb: e.mb, uid: e.uid });
        edits.push({
          kind: "add",
          id,
          message: {
            mailbox: e.mb,
            flags: rec.flags,
            date: rec.date,
            size: rec.size,
            blob: rec.blob,
          },
        });
      } else if (e.kind === "flags") {
        const id = this.#idAt.get(e.mb)?.get(e.uid);
        const rec = state.mailboxes.get(e.mb)?.byUid.get(e.uid);
        if (id && rec) edits.push({ kind: "flags", id, flags: rec.flags });
      }
    }
    for (const ids of gone.values()) for (const id of ids) edits.push({ kind: "remove", id });
    const changed = edits.filter((e) => this.#differs(e));
    if (changed.length) {
      this.doc.edit(changed);
      this.#scheduleSave();
      for (const l of this.#listeners) l();
    }
  }

  /** Whether an edit would change the document (recording must not echo a phone's edit). */
  #differs(e: DocEdit): boolean {
    if (e.kind === "mailbox" || e.kind === "mailbox-delete") return true;
    const cur = this.doc.message(e.id);
    switch (e.kind) {
      case "add":
        return !cur;
      case "remove":
        return cur !== null;
      case "move":
        return cur !== null && cur.mailbox !== e.mailbox;
      case "flags":
        return cur !== null && cur.flags.join(" ") !== [...e.flags].sort().join(" ");
    }
  }

  /**
   * Applies edits merged from a phone to the IMAP state: flags get a new
   * MODSEQ, a move becomes a new UID in the target plus an expunge, a remove
   * an expunge. Edits the home cannot carry out (a phone cannot create
   * messages or mailboxes yet) are logged and skipped.
   */
  async applyRemote(edits: DocEdit[]): Promise<void> {
    if (!edits.length) return;
    await this.#store.mutate((tx) => {
      for (const e of edits) {
        if (e.kind !== "flags" && e.kind !== "move" && e.kind !== "remove") {
          log.warn("sync.edit-skipped", { kind: e.kind });
          continue;
        }
        const at = this.#place.get(e.id);
        const mb = at && tx.state.mailboxes.get(at.mb);
        const rec = at && mb?.byUid.get(at.uid);
        if (!at || !mb || !rec) continue;
        if (e.kind === "flags") {
          // What the phone changed, applied to the flags as they are now: an IMAP STORE
          // committed since the merge is kept (a whole list would overwrite it).
          const set = new Set(e.was ? rec.flags : e.flags);
          if (e.was) {
            for (const f of e.was) if (!e.flags.includes(f)) set.delete(f);
            for (const f of e.flags) if (!e.was.includes(f)) set.add(f);
          }
          const flags = [...set].sort();
          if (flags.join(" ") === rec.flags.join(" ")) continue;
          tx.push({ op: "flags", mb: mb.id, changes: [[rec.uid, tx.nextModSeq(), flags]] });
        } else if (e.kind === "move") {
          const target = tx.state.mailboxes.get(e.mailbox);
          if (!target || target.id === mb.id) continue;
          const current = this.doc.message(e.id);
          tx.push({
            op: "add",
            mb: target.id,
            msg: {
              ...rec,
              uid: target.rec.uidNext,
              flags: current ? current.flags : rec.flags.slice(),
              modseq: tx.nextModSeq(),
              saved: Date.now(),
            },
          });
          tx.push({ op: "expunge", mb: mb.id, uids: [rec.uid], modseq: tx.nextModSeq() });
        } else {
          tx.push({ op: "expunge", mb: mb.id, uids: [rec.uid], modseq: tx.nextModSeq() });
        }
      }
    });
  }

  /** Calls `listener` after the home recorded changes of its own (phones have news). */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.#unsubscribe();
    this.#closed = true;
    await this.save();
  }

  /**
   * Forgets this in-memory document without saving it: after a merged change could not be
   * applied to the store, the document holds what the store lacks. The next open starts from
   * the last save and the store; the phone's envelope is delivered again.
   */
  discard(): void {
    this.#unsubscribe();
    this.#closed = true;
    this.#discarded = true;
    clearTimeout(this.#saveTimer);
  }
}
