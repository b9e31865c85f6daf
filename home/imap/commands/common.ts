/**
 * What several command handlers share: resolving sequence sets against a
 * session's view, finding mailboxes by name, date and flag formats.
 */
import { ProtocolError } from "../../../src/errors.ts";
import type { SearchKey, SequenceSet } from "../ast.ts";
import type { SelectedView } from "../selected.ts";
import type { Mailbox } from "../../store/state.ts";
import type { AccountStore } from "../../store/account_store.ts";
import { intervalsContain, resolveSequenceSet } from "../sequence.ts";
import { encodeMutf7 } from "../mutf7.ts";

/** One message a command addresses: its sequence number in this session and its UID. */
export interface Target {
  seq: number;
  uid: number;
}

/**
 * The messages a set addresses, in ascending order. With `uid`, the set is of
 * UIDs (`*` is the highest UID; UIDs not in the mailbox are ignored, RFC 9051
 * §6.4.9); otherwise of sequence numbers, where a number beyond the count is
 * an error (RFC 9051 §9 seq-number).
 */
export function resolveTargets(view: SelectedView, set: SequenceSet, uid: boolean): Target[] {
  const uids = view.uids;
  if ("saved" in set) {
    const saved = new Set(view.saved ?? []);
    const out: Target[] = [];
    for (let i = 0; i < uids.length; i++) {
      if (saved.has(uids[i])) out.push({ seq: i + 1, uid: uids[i] });
    }
    return out;
  }
  if (uid) {
    const max = uids.length ? uids[uids.length - 1] : 0;
    const intervals = resolveSequenceSet(set, max);
    const out: Target[] = [];
    for (let i = 0; i < uids.length; i++) {
      if (intervalsContain(intervals, uids[i])) out.push({ seq: i + 1, uid: uids[i] });
    }
    return out;
  }
  checkSequenceNumbers(set, uids.length);
  const out: Target[] = [];
  for (const [lo, hi] of resolveSequenceSet(set, uids.length)) {
    for (let s = lo; s <= hi; s++) out.push({ seq: s, uid: uids[s - 1] });
  }
  return out;
}

/**
 * RFC 9051 §9 (seq-number): a message sequence number beyond the last
 * message, or `*` in an empty mailbox, is a BAD command, in any command.
 */
export function checkSequenceNumbers(set: SequenceSet, count: number) {
  if ("saved" in set) return;
  for (const r of set.ranges) {
    for (const n of [r.from, r.to]) {
      if (typeof n === "number" && n > count) {
        throw new ProtocolError(
          "BAD",
          `Message sequence number ${n} is beyond the last message (${count})`,
        );
      }
    }
    if (count === 0 && (r.from === "*" || r.to === "*")) {
      throw new ProtocolError("BAD", "The mailbox is empty: * refers to no message");
    }
  }
}

/** The leaves of a search key (everything but NOT, OR and AND). */
export function* searchKeyLeaves(key: SearchKey): Generator<SearchKey> {
  switch (key.kind) {
    case "NOT":
      yield* searchKeyLeaves(key.key);
      return;
    case "OR":
      yield* searchKeyLeaves(key.a);
      yield* searchKeyLeaves(key.b);
      return;
    case "AND":
      for (const k of key.keys) yield* searchKeyLeaves(k);
      return;
    default:
      yield key;
  }
}

/** INBOX is case-insensitive (RFC 9051 §5.1); other names are exact. */
export function normaliseMailboxName(name: string): string {
  if (name.toUpperCase() === "INBOX") return "INBOX";
  if (name.toUpperCase().startsWith("INBOX/")) return "INBOX" + name.slice(5);
  return name;
}

/** The hierarchy delimiter. */
export const delimiter = "/";

/** A mailbox by name or a `NO [NONEXISTENT]` (RFC 5530). */
export function findMailbox(store: AccountStore, name: string, tryCreate = false): Mailbox {
  const mb = store.state.byName(normaliseMailboxName(name));
  if (!mb) {
    throw new ProtocolError("NO", `Mailbox does not exist: ${name}`, {
      imapCode: tryCreate ? "TRYCREATE" : "NONEXISTENT",
    });
  }
  return mb;
}

const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** INTERNALDATE as `17-Jul-1996 02:44:25 +0000` (RFC 9051 §9 date-time), in UTC. */
export function formatInternalDate(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${p(d.getUTCDate())}-${months[d.getUTCMonth()]}-${d.getUTCFullYear()} ${
    p(d.getUTCHours())
  }:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

const systemFlags = new Map(
  ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"].map((f) => [f.toUpperCase(), f]),
);

/**
 * Validates and canonicalises flags from a client: system flags in their
 * usual case, keywords as atoms (RFC 9051 §2.3.2). \Recent cannot be stored.
 */
export function canonicalFlags(flags: string[]): string[] {
  const out = new Set<string>();
  for (const f of flags) {
    if (f.startsWith("\\")) {
      const sys = systemFlags.get(f.toUpperCase());
      if (!sys) {
        if (f.toUpperCase() === "\\RECENT") {
          throw new ProtocolError("BAD", "The \\Recent flag cannot be set or cleared");
        }
        throw new ProtocolError("BAD", `Unknown system flag ${f}`);
      }
      out.add(sys);
    } else {
      if (!/^[\x21-\x7e]+$/.test(f) || /[(){%*"\\\]]/.test(f)) {
        throw new ProtocolError("BAD", `Invalid keyword ${JSON.stringify(f)}`);
      }
      out.add(f);
    }
  }
  return [...out];
}

/** The FLAGS / PERMANENTFLAGS keywords in use in a mailbox. */
export function keywordsOf(mb: Mailbox): string[] {
  const set = new Set<string>();
  for (const m of mb.byUid.values()) for (const f of m.flags) if (!f.startsWith("\\")) set.add(f);
  return [...set].sort();
}

/** A mailbox name as the client expects it: UTF-8 for IMAP4rev2/UTF8=ACCEPT, else modified UTF-7. */
export function mailboxNameForClient(utf8: boolean, name: string): string {
  return utf8 ? name : encodeMutf7(name);
}

/**
 * The mailbox attributes of LIST (RFC 9051 §7.3.1): children (RFC 5258 §4)
 * and SPECIAL-USE (RFC 6154 §2).
 */
export function listAttributes(store: AccountStore, mb: Mailbox): string[] {
  const prefix = mb.name + delimiter;
  let children = false;
  for (const other of store.state.mailboxes.values()) {
    if (other.name.startsWith(prefix)) {
      children = true;
      break;
    }
  }
  const attrs = [children ? "\\HasChildren" : "\\HasNoChildren"];
  if (mb.rec.specialUse) attrs.push(mb.rec.specialUse);
  return attrs;
}
