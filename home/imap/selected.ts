/**
 * A session's view of its selected mailbox: its own message sequence numbers
 * (which change only when this session is told of expunges), and the changes
 * other sessions made that it has not yet been told about.
 *
 * RFC 9051 §7.5.1 / RFC 3501 §7.4.1: EXPUNGE must not be sent while
 * answering FETCH, STORE or SEARCH (the non-UID forms), nor when no command is
 * in progress; EXISTS and flag FETCHes may be sent at any command's end.
 */
import { atom, type ImapValue } from "../../src/mime/imap_value.ts";
import type { Mailbox, MessageRecord } from "../store/state.ts";
import type { ChangeEvent } from "../store/account_store.ts";
import type { ResponseWriter } from "./encoder.ts";
import { formatSequenceSet } from "./sequence.ts";

export class SelectedView {
  readonly mailbox: Mailbox;
  readonly readOnly: boolean;
  /** Sequence number - 1 → UID, as this session knows it. */
  uids: number[];
  /** Highest UID this session has been told about (EXISTS). */
  #knownMaxUid: number;
  readonly #expunged = new Set<number>();
  readonly #flagChanged = new Set<number>();
  #added = false;
  /** \Recent UIDs of this session (IMAP4rev1 only; RFC 9051 removed \Recent). */
  readonly recent = new Set<number>();
  /** UIDs saved by SEARCH RETURN (SAVE) (RFC 5182), null when none saved. */
  saved: number[] | null = null;
  /** Set when the mailbox was deleted or renamed away under the session. */
  gone = false;

  /** Whether this session takes \Recent (RFC 3501 §2.3.2): read-write IMAP4rev1 sessions only. */
  readonly #claimsRecent: boolean;

  /** `rev2`: the session enabled IMAP4rev2, which has no \Recent (RFC 9051 Appendix E). */
  constructor(mailbox: Mailbox, readOnly: boolean, rev2 = false) {
    this.mailbox = mailbox;
    this.readOnly = readOnly;
    this.#claimsRecent = !readOnly && !rev2;
    this.uids = mailbox.uids.slice();
    this.#knownMaxUid = this.uids.length ? this.uids[this.uids.length - 1] : 0;
    if (this.#claimsRecent) {
      for (let i = this.uids.length - 1; i >= 0 && this.uids[i] >= mailbox.recentFrom; i--) {
        this.recent.add(this.uids[i]);
      }
      mailbox.recentFrom = mailbox.rec.uidNext;
    }
  }

  get exists(): number {
    return this.uids.length;
  }

  /** The record of a message this session knows; undefined if it was expunged meanwhile. */
  record(uid: number): MessageRecord | undefined {
    return this.mailbox.byUid.get(uid);
  }

  /** Sequence number of a UID in this session's view, or 0. */
  seqOf(uid: number): number {
    let lo = 0, hi = this.uids.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const v = this.uids[mid];
      if (v === uid) return mid + 1;
      if (v < uid) lo = mid + 1;
      else hi = mid - 1;
    }
    return 0;
  }

  /** Takes note of committed changes; they are reported at the next {@linkcode flush}. */
  note(events: ChangeEvent[], self: number) {
    for (const e of events) {
      if (e.kind === "mailboxes") {
        continue;
      }
      if (e.mb !== this.mailbox.id) continue;
      if (e.kind === "add") this.#added = true;
      else if (e.kind === "expunge") { for (const u of e.uids) this.#expunged.add(u); }
      else if (e.kind === "flags" && e.origin !== self) this.#flagChanged.add(e.uid);
    }
  }

  /** Reports a flag change made by this session itself (STORE .SILENT excluded). */
  markFlagChanged(uid: number) {
    this.#flagChanged.add(uid);
  }

  /** The current flags of a message were just sent: its pending flag change is told. */
  flagsReported(uid: number) {
    if (this.#flagChanged.size) this.#flagChanged.delete(uid);
  }

  /**
   * Writes what changed since the last flush. `allowExpunge` is false while
   * answering FETCH, STORE and SEARCH. With QRESYNC enabled, expunges are
   * reported as VANISHED (RFC 7162 §3.2.10).
   */
  flush(
    w: ResponseWriter,
    opts: { allowExpunge: boolean; qresync: boolean; condstore: boolean; rev2: boolean },
  ) {
    if (opts.allowExpunge && this.#expunged.size) {
      const gone: number[] = [];
      const seqs: number[] = [];
      for (let i = 0; i < this.uids.length; i++) {
        if (this.#expunged.has(this.uids[i])) {
          gone.push(this.uids[i]);
          seqs.push(i + 1);
        }
      }
      this.#expunged.clear();
      if (gone.length) {
        const set = new Set(gone);
        this.uids = this.uids.filter((u) => !set.has(u));
        for (const u of gone) {
          this.recent.delete(u);
          this.#flagChanged.delete(u);
        }
        if (opts.qresync) w.untagged(`VANISHED ${formatSequenceSet(gone)}`);
        // Highest first, so that each number is still valid when the client reads it.
        else for (let i = seqs.length - 1; i >= 0; i--) w.untagged(`${seqs[i]} EXPUNGE`);
      }
    }
    if (this.#added) {
      this.#added = false;
      const before = this.uids.length;
      const all = this.mailbox.uids;
      // New UIDs are always above everything known: scan from the end.
      let i = all.length;
      while (i > 0 && all[i - 1] > this.#knownMaxUid) i--;
      for (let j = i; j < all.length; j++) {
        this.uids.push(all[j]);
        if (this.#claimsRecent && all[j] >= this.mailbox.recentFrom) this.recent.add(all[j]);
      }
      if (all.length) this.#knownMaxUid = Math.max(this.#knownMaxUid, all[all.length - 1]);
      if (this.#claimsRecent) this.mailbox.recentFrom = this.mailbox.rec.uidNext;
      if (this.uids.length !== before) {
        w.untagged(`${this.uids.length} EXISTS`);
        if (!opts.rev2) w.untagged(`${this.recent.size} RECENT`);
      }
    }
    if (this.#flagChanged.size) {
      const uids = [...this.#flagChanged].sort((a, b) => a - b);
      this.#flagChanged.clear();
      for (const uid of uids) {
        const seq = this.seqOf(uid);
        const rec = this.record(uid);
        if (!seq || !rec) continue;
        const items: ImapValue[] = [];
        // RFC 7162 §3.2.4: with QRESYNC, untagged FETCH carries the UID.
        if (opts.qresync) items.push(atom("UID"), uid);
        items.push(atom("FLAGS"), this.flagAtoms(rec, opts.rev2));
        if (opts.condstore) items.push(atom("MODSEQ"), [rec.modseq]);
        w.untagged(`${seq} FETCH`, items);
      }
    }
  }

  /** FLAGS of a message as the text inside `FLAGS (…)`, with \Recent for IMAP4rev1 sessions. */
  flagText(rec: MessageRecord, rev2 = false): string {
    const text = rec.flags.join(" ");
    if (rev2 || this.recent.size === 0 || !this.recent.has(rec.uid)) return text;
    return text ? `${text} \\Recent` : "\\Recent";
  }

  /** FLAGS of a message as atoms, with \Recent for IMAP4rev1 sessions. */
  flagAtoms(rec: MessageRecord, rev2 = false): { atom: string }[] {
    const out = rec.flags.map((f) => atom(f));
    if (!rev2 && this.recent.has(rec.uid)) out.push(atom("\\Recent"));
    return out;
  }
}
