/**
 * The account document: an Automerge CRDT holding an account's mailbox state
 * (DESIGN.md, Sync and the phone). The home box records every mutation in
 * it; phones edit their replica (flags, moves) and the two merge through the
 * Automerge sync protocol, carried in sealed envelopes.
 *
 * Shape (kept small per change at 100,000 messages):
 *
 * ```
 * { mailboxes: { [mailboxId]: { name, use } },
 *   msgs: { [bucket]: { [messageId]: { "%": "mailbox\tdate\tsize\tblob", [flag]: true } } } }
 * ```
 *
 * - Messages are bucketed by the first two characters of their id, so one
 *   change touches one small map rather than a 100,000-key one.
 * - Scalars are immutable strings (no per-character CRDT history); a
 *   message's fixed fields are packed into one (`%` cannot be an IMAP flag,
 *   RFC 9051 §9 atom-specials), which halves the cost of adding a message.
 * - Flags are the message map's other keys, a map of booleans: a phone
 *   setting `\Seen` and an IMAP client setting `\Flagged` on the same message
 *   both survive the merge. (A nested flags map would be created by both
 *   sides at once for a message without flags, and one side's would lose.)
 * - Edits are applied in batches of at most {@linkcode editsPerChange}: a
 *   document whose whole history is one change is resent whole by the sync
 *   protocol, however little the peer lacks.
 * - IMAP UIDs and MODSEQs are not here: the home box assigns them.
 *
 * @example
 * ```ts
 * const doc = AccountDoc.create();
 * doc.edit([{ kind: "mailbox", id: "inbox", name: "INBOX", use: null },
 *           { kind: "add", id: "a1b2", message: { mailbox: "inbox", flags: [], date, size, blob } }]);
 * const bytes = doc.save();
 * ```
 */
import * as A from "@automerge/automerge";

/** Edits per Automerge change when a batch is recorded. */
export const editsPerChange = 500;

/** A message as the document holds it. */
export interface DocMessage {
  mailbox: string;
  flags: string[];
  /** Internal date, ms since the epoch. */
  date: number;
  size: number;
  /** The sealed blob's id (content address). */
  blob: string;
}

export interface DocMailbox {
  name: string;
  /** RFC 6154 special use (`\Sent` …) or null. */
  use: string | null;
}

/** One change to the mailbox state, as recorded or as merged from a peer. */
export type DocEdit =
  | { kind: "mailbox"; id: string; name: string; use: string | null }
  | { kind: "mailbox-delete"; id: string }
  | { kind: "add"; id: string; message: DocMessage }
  /** `was`: the flags before, when the edit was read from the history (see editsSince). */
  | { kind: "flags"; id: string; flags: string[]; was?: string[] }
  | { kind: "move"; id: string; mailbox: string }
  | { kind: "remove"; id: string };

type Str = A.ImmutableString;

/** `%` holds the packed fields; every other key is a flag set to true. */
type MessageShape = Record<string, Str | boolean>;
const packedKey = "%";

interface Shape {
  mailboxes: Record<string, { name: Str; use: Str | null }>;
  msgs: Record<string, Record<string, MessageShape>>;
}

const str = (v: string | number) => new A.ImmutableString(String(v));

/** The bucket of a message id (ids are random hex or base64url, so buckets fill evenly). */
export function bucketOf(id: string): string {
  if (id.length < 2) throw new RangeError("message ids have at least two characters");
  return id.slice(0, 2);
}

function pack(m: Omit<DocMessage, "flags">): Str {
  return str([m.mailbox, m.date, m.size, m.blob].join("\t"));
}

/**
 * The text of a scalar a peer wrote, or null when it is not text. A paired
 * peer can write any shape into the document: readers skip what does not fit
 * rather than throw (a malformed entry threw TypeError on every read; fuzzing).
 */
function textOf(v: unknown): string | null {
  if (typeof v === "string") return v;
  return v instanceof A.ImmutableString ? v.val : null;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function toMessage(m: MessageShape): DocMessage | null {
  const packed = isRecord(m) ? textOf(m[packedKey]) : null;
  if (packed === null) return null;
  const [mailbox, date, size, blob] = packed.split("\t");
  return {
    mailbox,
    flags: Object.keys(m).filter((f) => f !== packedKey && m[f] === true).sort(),
    date: Number(date),
    size: Number(size),
    blob,
  };
}

function applyEdit(d: Shape, e: DocEdit) {
  switch (e.kind) {
    case "mailbox":
      d.mailboxes[e.id] = { name: str(e.name), use: e.use === null ? null : str(e.use) };
      return;
    case "mailbox-delete":
      delete d.mailboxes[e.id];
      return;
    case "add": {
      const b = bucketOf(e.id);
      if (!d.msgs[b]) d.msgs[b] = {};
      const m: MessageShape = { [packedKey]: pack(e.message) };
      for (const f of e.message.flags) m[f] = true;
      d.msgs[b][e.id] = m;
      return;
    }
    case "flags": {
      const m = d.msgs[bucketOf(e.id)]?.[e.id];
      if (!m) return;
      const want = new Set(e.flags);
      // Only keys that change are touched, so a concurrent edit of another flag survives.
      for (const f of Object.keys(m)) if (f !== packedKey && !want.has(f)) delete m[f];
      for (const f of want) if (m[f] !== true && f !== packedKey) m[f] = true;
      return;
    }
    case "move": {
      const m = d.msgs[bucketOf(e.id)]?.[e.id];
      if (!m) return;
      const cur = toMessage(m);
      if (cur && cur.mailbox !== e.mailbox) m[packedKey] = pack({ ...cur, mailbox: e.mailbox });
      return;
    }
    case "remove": {
      const bucket = d.msgs[bucketOf(e.id)];
      if (bucket?.[e.id]) delete bucket[e.id];
      return;
    }
  }
}

export class AccountDoc {
  #doc: A.Doc<Shape>;

  private constructor(doc: A.Doc<Shape>) {
    this.#doc = doc;
  }

  /** A new, empty document. `actor` (hex) names this replica in the history. */
  static create(actor?: string): AccountDoc {
    const empty = A.init<Shape>(actor ? { actor } : undefined);
    return new AccountDoc(A.change(empty, { time: 0 }, (d) => {
      d.mailboxes = {};
      d.msgs = {};
    }));
  }

  /**
   * A replica for a new peer: no history at all, so that its first sync
   * fetches the whole document from the peer that has it.
   */
  static empty(actor?: string): AccountDoc {
    return new AccountDoc(A.init<Shape>(actor ? { actor } : undefined));
  }

  static load(bytes: Uint8Array, actor?: string): AccountDoc {
    return new AccountDoc(A.load<Shape>(bytes, actor ? { actor } : undefined));
  }

  save(): Uint8Array {
    return A.save(this.#doc);
  }

  /** The Automerge document (for the sync protocol). */
  get automerge(): A.Doc<Shape> {
    return this.#doc;
  }

  set automerge(doc: A.Doc<Shape>) {
    this.#doc = doc;
  }

  heads(): string[] {
    return A.getHeads(this.#doc);
  }

  /** Records edits, {@linkcode editsPerChange} per Automerge change. */
  edit(edits: DocEdit[], message?: string): void {
    for (let i = 0; i < edits.length; i += editsPerChange) {
      const batch = edits.slice(i, i + editsPerChange);
      this.#doc = A.change(this.#doc, message ? { message } : {}, (d) => {
        if (!d.mailboxes) d.mailboxes = {};
        if (!d.msgs) d.msgs = {};
        for (const e of batch) applyEdit(d, e);
      });
    }
  }

  message(id: string): DocMessage | null {
    const bucket: unknown = this.#doc.msgs?.[bucketOf(id)];
    const m = isRecord(bucket) ? bucket[id] as MessageShape | undefined : undefined;
    return m ? toMessage(m) : null;
  }

  *messages(): Generator<[string, DocMessage]> {
    for (const bucket of Object.values(this.#doc.msgs ?? {})) {
      if (!isRecord(bucket)) continue;
      for (const [id, m] of Object.entries(bucket)) {
        const message = toMessage(m as MessageShape);
        if (message) yield [id, message];
      }
    }
  }

  get messageCount(): number {
    let n = 0;
    for (const _ of this.messages()) n++;
    return n;
  }

  mailboxes(): Map<string, DocMailbox> {
    const out = new Map<string, DocMailbox>();
    for (const [id, mb] of Object.entries(this.#doc.mailboxes ?? {})) {
      const name = isRecord(mb) ? textOf(mb.name) : null;
      if (name === null) continue;
      out.set(id, { name, use: textOf(mb.use) });
    }
    return out;
  }

  /**
   * What changed since `heads`, as edits: the home box applies those made by
   * a phone to its IMAP state. Computed by comparing the touched messages
   * before and after, so concurrent edits arrive already merged.
   */
  editsSince(heads: string[]): DocEdit[] {
    const now = A.getHeads(this.#doc);
    const patches = A.diff(this.#doc, heads, now);
    const touchedMsgs = new Set<string>();
    const touchedBoxes = new Set<string>();
    for (const p of patches) {
      // A peer may write keys that are no message id (bucketOf needs two characters): skip them.
      if (p.path[0] === "msgs" && p.path.length >= 3) {
        if (String(p.path[2]).length >= 2) touchedMsgs.add(String(p.path[2]));
      } else if (p.path[0] === "msgs" && p.path.length === 2 && p.action === "put") {
        const bucket: unknown = this.#doc.msgs[String(p.path[1])];
        for (const id of Object.keys(isRecord(bucket) ? bucket : {})) {
          if (id.length >= 2) touchedMsgs.add(id);
        }
      } else if (p.path[0] === "mailboxes" && p.path.length >= 2) {
        touchedBoxes.add(String(p.path[1]));
      }
    }
    const before = heads.length ? new AccountDoc(A.view(this.#doc, heads)) : AccountDoc.empty();
    const edits: DocEdit[] = [];
    const boxesBefore = before.mailboxes();
    const boxesNow = this.mailboxes();
    for (const id of touchedBoxes) {
      const b = boxesBefore.get(id), n = boxesNow.get(id);
      if (n && (!b || b.name !== n.name || b.use !== n.use)) {
        edits.push({ kind: "mailbox", id, name: n.name, use: n.use });
      } else if (!n && b) edits.push({ kind: "mailbox-delete", id });
    }
    for (const id of touchedMsgs) {
      const b = before.message(id), n = this.message(id);
      if (!n) {
        if (b) edits.push({ kind: "remove", id });
        continue;
      }
      if (!b) {
        edits.push({ kind: "add", id, message: n });
        continue;
      }
      if (b.mailbox !== n.mailbox) edits.push({ kind: "move", id, mailbox: n.mailbox });
      if (b.flags.join(" ") !== n.flags.join(" ")) {
        edits.push({ kind: "flags", id, flags: n.flags, was: b.flags });
      }
    }
    return edits;
  }
}
