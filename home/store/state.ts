/**
 * The in-memory mailbox state of one account: every mailbox with its UID map,
 * flags, modseqs and expunge records. It is loaded once per account (from a
 * packed snapshot plus an append-only change log, see change_log.ts) and
 * shared by all sessions of the account. Only the account writer changes it,
 * by applying {@linkcode Op}s, which are also what the change log records.
 */

/** One message in one mailbox. */
export interface MessageRecord {
  uid: number;
  /** Blob id (and meta key) of the sealed message. */
  blob: string;
  /** System flags (`\Seen`…) and keywords, sorted. */
  flags: string[];
  modseq: number;
  size: number;
  /** INTERNALDATE, ms since the epoch. */
  date: number;
  /** SAVEDATE (RFC 8514), ms since the epoch. */
  saved: number;
}

export interface MailboxRecord {
  id: string;
  /** Encrypted name (index key, context "mailbox-name"). */
  nameEnc: Uint8Array;
  uidValidity: number;
  uidNext: number;
  highestModSeq: number;
  /** RFC 6154 attribute such as `\Sent`, if any. */
  specialUse: string | null;
  subscribed: boolean;
}

/** A change, as applied to memory and recorded in the change log. */
export type Op =
  | { op: "mbox"; rec: MailboxRecord }
  | { op: "mboxdel"; id: string; modseq: number }
  | { op: "add"; mb: string; msg: MessageRecord }
  | { op: "flags"; mb: string; changes: [uid: number, modseq: number, flags: string[]][] }
  | { op: "expunge"; mb: string; uids: number[]; modseq: number };

/** A mailbox with its messages. */
export class Mailbox {
  rec: MailboxRecord;
  /** Decrypted name, kept only in memory while the account is unlocked. */
  name: string;
  /** UIDs in ascending order: index + 1 is the message sequence number for a fresh SELECT. */
  uids: number[] = [];
  readonly byUid = new Map<number, MessageRecord>();
  /** Expunged UIDs with the modseq of their expunge, in modseq order (RFC 7162 §3.2.10 VANISHED). */
  expunged: [uid: number, modseq: number][] = [];
  /** In memory only: UIDs at or above this are \Recent for the next session that SELECTs. */
  recentFrom = 0;

  constructor(rec: MailboxRecord, name: string) {
    this.rec = rec;
    this.name = name;
  }

  get id(): string {
    return this.rec.id;
  }

  /** Total octets of all messages (STATUS SIZE, RFC 8438). */
  size(): number {
    let n = 0;
    for (const m of this.byUid.values()) n += m.size;
    return n;
  }
}

/** Everything of one account that lives in memory. */
export class AccountState {
  /** The highest modseq used anywhere in the account: modseqs are account-wide and never reused. */
  modseq = 0;
  readonly mailboxes = new Map<string, Mailbox>();
  /** How many messages reference each blob, across mailboxes (COPY shares blobs). */
  readonly blobRefs = new Map<string, number>();

  /** Applies one op. Names of new mailboxes come from `nameOf`, which decrypts. */
  apply(op: Op, nameOf: (rec: MailboxRecord) => string): void {
    switch (op.op) {
      case "mbox": {
        const mb = this.mailboxes.get(op.rec.id);
        if (mb) {
          mb.rec = op.rec;
          mb.name = nameOf(op.rec);
        } else {
          const created = new Mailbox(op.rec, nameOf(op.rec));
          created.recentFrom = op.rec.uidNext;
          this.mailboxes.set(op.rec.id, created);
        }
        this.#bump(op.rec.highestModSeq);
        break;
      }
      case "mboxdel": {
        const mb = this.mailboxes.get(op.id);
        if (!mb) break;
        for (const m of mb.byUid.values()) this.#unref(m.blob);
        this.mailboxes.delete(op.id);
        this.#bump(op.modseq);
        break;
      }
      case "add": {
        const mb = this.mailboxes.get(op.mb);
        if (!mb) break;
        if (mb.byUid.has(op.msg.uid)) break;
        const last = mb.uids.length ? mb.uids[mb.uids.length - 1] : 0;
        mb.byUid.set(op.msg.uid, op.msg);
        if (op.msg.uid > last) mb.uids.push(op.msg.uid);
        else {
          mb.uids.push(op.msg.uid);
          mb.uids.sort((a, b) => a - b);
        }
        mb.rec.uidNext = Math.max(mb.rec.uidNext, op.msg.uid + 1);
        mb.rec.highestModSeq = Math.max(mb.rec.highestModSeq, op.msg.modseq);
        this.blobRefs.set(op.msg.blob, (this.blobRefs.get(op.msg.blob) ?? 0) + 1);
        this.#bump(op.msg.modseq);
        break;
      }
      case "flags": {
        const mb = this.mailboxes.get(op.mb);
        if (!mb) break;
        for (const [uid, modseq, flags] of op.changes) {
          const m = mb.byUid.get(uid);
          if (!m) continue;
          m.flags = flags;
          m.modseq = modseq;
          mb.rec.highestModSeq = Math.max(mb.rec.highestModSeq, modseq);
          this.#bump(modseq);
        }
        break;
      }
      case "expunge": {
        const mb = this.mailboxes.get(op.mb);
        if (!mb) break;
        const gone = new Set<number>();
        for (const uid of op.uids) {
          // Replayed snapshots carry expunge records of UIDs long gone: record them all.
          mb.expunged.push([uid, op.modseq]);
          const m = mb.byUid.get(uid);
          if (!m) continue;
          mb.byUid.delete(uid);
          this.#unref(m.blob);
          gone.add(uid);
        }
        if (gone.size) mb.uids = mb.uids.filter((u) => !gone.has(u));
        mb.rec.highestModSeq = Math.max(mb.rec.highestModSeq, op.modseq);
        this.#bump(op.modseq);
        break;
      }
    }
  }

  #bump(modseq: number) {
    if (modseq > this.modseq) this.modseq = modseq;
  }

  #unref(blob: string) {
    const n = (this.blobRefs.get(blob) ?? 1) - 1;
    if (n <= 0) this.blobRefs.delete(blob);
    else this.blobRefs.set(blob, n);
  }

  /** The mailbox with this name (INBOX matched case-insensitively by the caller's normalisation). */
  byName(name: string): Mailbox | undefined {
    for (const mb of this.mailboxes.values()) if (mb.name === name) return mb;
    return undefined;
  }

  /** Every op needed to rebuild this state from nothing: the snapshot. */
  *snapshotOps(): Generator<Op> {
    for (const mb of this.mailboxes.values()) {
      yield { op: "mbox", rec: { ...mb.rec } };
      for (const uid of mb.uids) yield { op: "add", mb: mb.id, msg: mb.byUid.get(uid)! };
      // Expunge records keep QRESYNC exact across snapshots; they are replayed as no-op expunges.
      const byModseq = new Map<number, number[]>();
      for (const [uid, ms] of mb.expunged) {
        const list = byModseq.get(ms) ?? [];
        list.push(uid);
        byModseq.set(ms, list);
      }
      for (const [ms, uids] of byModseq) yield { op: "expunge", mb: mb.id, uids, modseq: ms };
    }
  }
}
