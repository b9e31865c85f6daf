/**
 * One side of the sync between two replicas of an account document (home
 * box and phone), over any transport that carries byte frames (the edge's
 * relay mailboxes, or the home box's LAN port).
 *
 * Frames (the payload of one sync envelope, before splitting):
 * - `1 | automerge sync message` — the Automerge sync protocol;
 * - `3 | automerge sync message` — the same, from a peer that starts afresh (see the
 *   constructor's `announceFresh`);
 * - `2 | u32 n | (u32 len | change)*` — plain changes, the fallback.
 *
 * The sync state is persisted after each exchange, so a reconnect costs one
 * round trip rather than a fresh negotiation. A peer whose sync messages keep
 * the exchange going (a bug or a crafted message) is cut off after
 * {@linkcode maxRounds} rounds: we then send the changes it lacks according to
 * the heads it last told us, and stop.
 *
 * @example
 * ```ts
 * const peer = new SyncPeer(doc, savedState);
 * for (const frame of peer.receive(incoming)) send(frame);
 * saveState(peer.state());
 * ```
 */
import * as A from "@automerge/automerge";
import type { AccountDoc } from "./doc.ts";

/** Rounds in one exchange before falling back to plain changes. */
export const maxRounds = 8;

const frameSync = 1;
/** A sync message from a peer that starts afresh: forget what was sent to it. */
const frameSyncFresh = 3;
const frameChanges = 2;

function u32(n: number): number[] {
  return [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}

function readU32(b: Uint8Array, at: number): number {
  if (at + 4 > b.length) throw new RangeError("truncated sync frame");
  return ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
}

/** Encodes plain changes as one frame. */
export function changesFrame(changes: Uint8Array[]): Uint8Array {
  const size = 5 + changes.reduce((n, c) => n + 4 + c.length, 0);
  const out = new Uint8Array(size);
  out.set([frameChanges, ...u32(changes.length)]);
  let at = 5;
  for (const c of changes) {
    out.set(u32(c.length), at);
    out.set(c, at + 4);
    at += 4 + c.length;
  }
  return out;
}

function readChanges(frame: Uint8Array): Uint8Array[] {
  const n = readU32(frame, 1);
  const out: Uint8Array[] = [];
  let at = 5;
  for (let i = 0; i < n; i++) {
    const len = readU32(frame, at);
    if (at + 4 + len > frame.length) throw new RangeError("truncated sync frame");
    out.push(frame.subarray(at + 4, at + 4 + len));
    at += 4 + len;
  }
  return out;
}

/**
 * Whether an Automerge storage chunk is a whole document: magic (4 bytes), checksum (4), then
 * the chunk type, 0 for a document (Automerge binary format, "Chunk container").
 */
function isDocumentChunk(chunk: Uint8Array): boolean {
  return chunk.length > 8 && chunk[0] === 0x85 && chunk[1] === 0x6f && chunk[2] === 0x4a &&
    chunk[3] === 0x83 && chunk[8] === 0;
}

export class SyncPeer {
  readonly doc: AccountDoc;
  #state: A.SyncState;
  #rounds = 0;
  /** Our heads when we last sent a sync message the peer has not answered yet. */
  #awaiting: string[] | null = null;

  /** Whether the next sync frame announces a fresh start (see the constructor). */
  #fresh: boolean;

  /**
   * `saved`: the state persisted after the last exchange. A state that names changes this
   * document does not have (saved after changes a crash then took) is dropped: the exchange
   * starts over from the whole history's summary, so the peer sends them again.
   *
   * `announceFresh` (the home box): Automerge assumes no message is ever lost, and never sends
   * a change twice. The home can lose what a phone sent (it crashed before saving, or dropped
   * it while locked) and then starts a new peer; its first sync frame says so, and the phone,
   * on that frame, forgets which changes it counts as sent: its answer carries every change the
   * home's message does not show it has.
   */
  constructor(
    doc: AccountDoc,
    saved?: Uint8Array | null,
    opts: { announceFresh?: boolean } = {},
  ) {
    this.doc = doc;
    this.#fresh = opts.announceFresh ?? false;
    const state = saved ? A.decodeSyncState(saved) : null;
    this.#state = state && A.hasHeads(doc.automerge, state.sharedHeads) ? state : A.initSyncState();
  }

  /** The sync state to persist for the next exchange. */
  state(): Uint8Array {
    return A.encodeSyncState(this.#state);
  }

  /**
   * Starts an exchange: what to send first (empty when the peer is known to be current).
   * While an earlier message awaits the peer's reply, only the changes made since it are
   * sent, as plain changes: a second sync message in flight makes Automerge send everything
   * the peer has not confirmed again (the whole document after an initial sync).
   */
  start(): Uint8Array[] {
    this.#rounds = 0;
    if (this.#awaiting) {
      const since = this.#awaiting;
      const changes = A.getChangesSince(this.doc.automerge, since);
      if (!changes.length) return [];
      this.#awaiting = A.getHeads(this.doc.automerge);
      return [changesFrame(changes)];
    }
    return this.#next();
  }

  /**
   * Forgets what was sent and not confirmed: the next message carries every change the peer's
   * last message does not show it has. For a transport that bypasses the one earlier messages
   * took (the home's messages in a phone's relay mailbox, while the phone syncs on the LAN),
   * and on a peer's fresh-start frame (it may have lost what we sent).
   */
  forgetSent(): void {
    this.#awaiting = null;
    // (Automerge's typings call `sentHashes` a list; it is a map.)
    this.#state = { ...this.#state, sentHashes: {} } as unknown as A.SyncState;
  }

  #next(): Uint8Array[] {
    const [state, generated] = A.generateSyncMessage(this.doc.automerge, this.#state);
    this.#state = state;
    if (!generated) return [];
    const msg = this.#slim(generated);
    this.#awaiting = A.getHeads(this.doc.automerge);
    const out = new Uint8Array(msg.length + 1);
    out[0] = this.#fresh ? frameSyncFresh : frameSync;
    this.#fresh = false;
    out.set(msg, 1);
    return [out];
  }

  /**
   * Automerge sends the whole document instead of changes once the changes a peer lacks are
   * more than a third of the history *by count* — and this document's history is few, large
   * batch changes (an imported mailbox of 10,000 messages is about 20), so the first change
   * sets after an initial sync came as the whole document (650 KiB for 17 KiB of changes).
   * When the peer shares history with us, the changes since the heads it told us are sent
   * instead, if they are smaller. The sync state is unaffected: it counts the document's
   * hashes as sent, and the peer has the ones we leave out (they precede its heads).
   */
  #slim(msg: Uint8Array): Uint8Array {
    const decoded = A.decodeSyncMessage(msg);
    if (decoded.changes.length !== 1 || !isDocumentChunk(decoded.changes[0])) return msg;
    const theirs = this.#state.theirHeads ?? [];
    const base = theirs.length && A.hasHeads(this.doc.automerge, theirs)
      ? theirs
      : this.#state.sharedHeads;
    if (!base.length) return msg;
    const changes = A.getChangesSince(this.doc.automerge, base);
    const bytes = changes.reduce((n, c) => n + c.length, 0);
    if (bytes >= decoded.changes[0].length) return msg;
    return A.encodeSyncMessage({ ...decoded, changes });
  }

  /**
   * Whether the heads the peer last announced name changes this document lacks: the peer has
   * changes for us, and it sends them only once it has our answer (Automerge's first message
   * from a fresh sync state carries none). An answer deferred then leaves us behind.
   */
  behindPeer(): boolean {
    const theirs = this.#state.theirHeads;
    return !!theirs?.length && !A.hasHeads(this.doc.automerge, theirs);
  }

  /**
   * Takes one frame from the peer and returns what to answer (possibly
   * nothing). Throws RangeError on a malformed frame; the document is then
   * unchanged.
   */
  receive(frame: Uint8Array): Uint8Array[] {
    if (frame.length === 0) throw new RangeError("empty sync frame");
    if (frame[0] === frameChanges) {
      const changes = readChanges(frame);
      // A damaged change makes Automerge panic (PanicError) and leaves the document it was
      // applied to unusable (found by fuzzing): apply to a copy, kept only on success. This
      // frame is the rare fallback after maxRounds, so the copy is affordable.
      const copy = A.clone(this.doc.automerge, A.getActorId(this.doc.automerge));
      try {
        [this.doc.automerge] = A.applyChanges(copy, changes);
      } catch (e) {
        throw new RangeError(`bad changes frame: ${(e as Error).message}`);
      }
      return [];
    }
    if (frame[0] === frameSyncFresh) {
      this.forgetSent();
    } else if (frame[0] !== frameSync) {
      throw new RangeError(`unknown sync frame type ${frame[0]}`);
    }
    let doc, state;
    try {
      [doc, state] = A.receiveSyncMessage(this.doc.automerge, this.#state, frame.subarray(1));
    } catch (e) {
      throw new RangeError(`bad sync message: ${(e as Error).message}`);
    }
    this.doc.automerge = doc;
    this.#state = state;
    this.#awaiting = null;
    if (++this.#rounds > maxRounds) return this.#fallback();
    return this.#next();
  }

  /** Everything the peer lacks according to the heads it last announced, in one frame. */
  #fallback(): Uint8Array[] {
    const theirs = this.#state.theirHeads ?? [];
    const known = theirs.filter((h) => A.hasHeads(this.doc.automerge, [h]));
    const changes = A.getChangesSince(this.doc.automerge, known);
    return changes.length ? [changesFrame(changes)] : [];
  }
}
