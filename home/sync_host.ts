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
 * last save loses nothing.
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
  #saving: Promise<void> = Promise.resolve();
  #closed = false;

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

  /** Saves the document: a new generation of chunks, then the pointer to it, then cleanup. */
  save(): Promise<void> {
    clearTimeout(this.#saveTimer);
    this.#saveTimer = undefined;
    this.#saving = this.#saving.then(async () => {
      const gen = toHex(crypto.getRandomValues(new Uint8Array(8)));
      const plain = await gzip(this.doc.save());
      const box = await encryptIndex(this.#store.keys.indexKey, plain, `doc:${gen}`);
      const count = Math.max(1, Math.ceil(box.length / 60_000));
      await setChunked(this.#kv, ["doc", this.#store.id, gen], box);
      const pointer = ["doc", this.#store.id, "current"];
      const old = (await this.#kv.get<{ gen: string }>(pointer)).value;
      await this.#kv.set(pointer, { gen, count });
      if (old) await deletePrefix(this.#kv, ["doc", this.#store.id, old.gen]);
    }).catch((e) => log.error("sync.doc-save-failed", { account: this.#store.id, error: e }));
    return this.#saving;
  }

  #scheduleSave() {
    if (this.#closed || this.#saveTimer) return;
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

  /** Pairs document messages with the store's by (mailbox, blob); fixes every difference. */
  #reconcile() {
    const edits = this.#mailboxEdits();
    const unmatched = new Map<string, string[]>();
    for (const [id, m] of this.doc.messages()) {
      const k = `${m.mailbox}\t${m.blob}`;
      const list = unmatched.get(k) ?? [];
      list.push(id);
      unmatched.set(k, list);
    }
    for (const mb of this.#store.state.mailboxes.values()) {
      for (const uid of mb.uids) {
        const rec = mb.byUid.get(uid)!;
        const id = unmatched.get(`${mb.id}\t${rec.blob}`)?.pop();
        if (id) {
          this.#map(id, { mb: mb.id, uid });
          if (this.doc.message(id)!.flags.join(" ") !== rec.flags.join(" ")) {
            edits.push({ kind: "flags", id, flags: rec.flags });
          }
        } else {
          const fresh = this.#newId(rec.blob);
          this.#map(fresh, { mb: mb.id, uid });
          edits.push({
            kind: "add",
            id: fresh,
            message: {
              mailbox: mb.id,
              flags: rec.flags,
              date: rec.date,
              size: rec.size,
              blob: rec.blob,
            },
          });
        }
      }
    }
    for (const ids of unmatched.values()) for (const id of ids) edits.push({ kind: "remove", id });
    if (edits.length) this.doc.edit(edits, "reconcile");
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
        if (!rec) continue;
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
          const flags = [...new Set(e.flags)].sort();
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
}
