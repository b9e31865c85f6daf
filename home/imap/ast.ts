/**
 * The parsed form of every IMAP command Hearth accepts (RFC 9051, RFC 3501
 * and the extensions listed in capabilities). The parser produces these; the
 * command handlers consume them. Mailbox names are decoded to UTF-8 by the
 * parser (modified UTF-7 for IMAP4rev1 clients, RFC 3501 §5.1.3).
 */

import type { Section } from "../../src/mime/section.ts";
export type { Section };

/** One range of a sequence set; `"*"` is the largest number in use. `to` is absent for one number. */
export interface SeqRange {
  from: number | "*";
  to?: number | "*";
}
/** A sequence set (RFC 9051 §9 `sequence-set`), or `$` for the saved search result (RFC 5182). */
export type SequenceSet = { ranges: SeqRange[] } | { saved: true };

/** A partial range `<start.count>`. */
export interface Partial {
  start: number;
  count: number;
}

export type FetchAtt =
  | { kind: "ENVELOPE" }
  | { kind: "FLAGS" }
  | { kind: "INTERNALDATE" }
  | { kind: "RFC822" }
  | { kind: "RFC822.HEADER" }
  | { kind: "RFC822.TEXT" }
  | { kind: "RFC822.SIZE" }
  | { kind: "BODY" }
  | { kind: "BODYSTRUCTURE" }
  | { kind: "UID" }
  | { kind: "MODSEQ" }
  | { kind: "SAVEDATE" }
  | { kind: "EMAILID" }
  | { kind: "THREADID" }
  /** BODY[...] or BODY.PEEK[...]; `peek` does not set \Seen. */
  | { kind: "BODY[]"; section: Section; partial?: Partial; peek: boolean }
  /** BINARY[...] / BINARY.PEEK[...] (RFC 3516); only part numbers are allowed in the section. */
  | { kind: "BINARY[]"; part: number[]; partial?: Partial; peek: boolean }
  | { kind: "BINARY.SIZE"; part: number[] };

export interface FetchModifiers {
  /** CHANGEDSINCE mod-sequence (RFC 7162 §3.1.4.1). */
  changedSince?: bigint;
  /** VANISHED modifier, only with UID FETCH and CHANGEDSINCE (RFC 7162 §3.2.6). */
  vanished?: boolean;
}

/** A search key (RFC 9051 §6.4.4, RFC 7162 §3.1.5, RFC 5032 OLDER/YOUNGER). */
export type SearchKey =
  | { kind: "ALL" }
  | { kind: "flag"; flag: string; set: boolean } // ANSWERED, DELETED, DRAFT, FLAGGED, SEEN and UN*; KEYWORD/UNKEYWORD
  | { kind: "NEW" }
  | { kind: "OLD" }
  | { kind: "RECENT" }
  | { kind: "header"; field: string; value: string } // BCC CC FROM SUBJECT TO and HEADER field value
  | { kind: "BODY"; value: string }
  | { kind: "TEXT"; value: string }
  /** Internal date (BEFORE ON SINCE) or Date: header (SENTBEFORE SENTON SENTSINCE); date is YYYY-MM-DD. */
  | { kind: "date"; which: "internal" | "sent"; op: "before" | "on" | "since"; date: string }
  | { kind: "LARGER"; size: number }
  | { kind: "SMALLER"; size: number }
  | { kind: "UID"; set: SequenceSet }
  | { kind: "seq"; set: SequenceSet }
  | { kind: "NOT"; key: SearchKey }
  | { kind: "OR"; a: SearchKey; b: SearchKey }
  | { kind: "AND"; keys: SearchKey[] }
  | { kind: "MODSEQ"; modseq: bigint; entry?: { name: string; type: "priv" | "shared" | "all" } }
  | { kind: "OLDER"; seconds: number }
  | { kind: "YOUNGER"; seconds: number };

/** RETURN options of ESEARCH (RFC 4731, RFC 9051 §6.4.4) and SEARCHRES SAVE (RFC 5182). */
export type SearchReturn = "MIN" | "MAX" | "ALL" | "COUNT" | "SAVE";

export type SortKey = {
  key: "ARRIVAL" | "CC" | "DATE" | "FROM" | "SIZE" | "SUBJECT" | "TO" | "DISPLAYFROM" | "DISPLAYTO";
  reverse: boolean;
};

export interface StoreAction {
  op: "set" | "add" | "remove"; // FLAGS, +FLAGS, -FLAGS
  silent: boolean;
  flags: string[];
  /** UNCHANGEDSINCE (RFC 7162 §3.1.3). */
  unchangedSince?: bigint;
}

/** LIST selection and return options (RFC 5258, RFC 5819, RFC 6154). */
export interface ListOptions {
  select: ("SUBSCRIBED" | "REMOTE" | "RECURSIVEMATCH" | "SPECIAL-USE")[];
  return: ("SUBSCRIBED" | "CHILDREN" | "SPECIAL-USE")[];
  /** RETURN (STATUS (...)) items (RFC 5819). */
  status?: StatusItem[];
  /** True when the client used any extended syntax; affects which attributes are reported. */
  extended: boolean;
}

export type StatusItem =
  | "MESSAGES"
  | "RECENT"
  | "UIDNEXT"
  | "UIDVALIDITY"
  | "UNSEEN"
  | "DELETED"
  | "SIZE"
  | "HIGHESTMODSEQ"
  | "APPENDLIMIT"
  | "MAILBOXID";

/** QRESYNC parameters of SELECT/EXAMINE (RFC 7162 §3.2.5). */
export interface QresyncParams {
  uidValidity: number;
  modseq: bigint;
  knownUids?: SequenceSet;
  seqMatch?: { seqs: SequenceSet; uids: SequenceSet };
}

export interface AppendMessage {
  flags: string[];
  /** Internal date as milliseconds since the epoch, if given. */
  date?: number;
  /** The message bytes; `binary` when sent as `~{n}` (RFC 3516). */
  data: Uint8Array;
  binary: boolean;
}

/** Every command, tagged by name. `uid` marks the UID variant of FETCH/STORE/COPY/MOVE/SEARCH/EXPUNGE. */
export type Command =
  | { name: "CAPABILITY" }
  | { name: "NOOP" }
  | { name: "LOGOUT" }
  | { name: "STARTTLS" }
  | { name: "AUTHENTICATE"; mechanism: string; initialResponse?: string }
  | { name: "LOGIN"; user: string; password: string }
  | { name: "ENABLE"; capabilities: string[] }
  | { name: "SELECT" | "EXAMINE"; mailbox: string; condstore: boolean; qresync?: QresyncParams }
  | { name: "CREATE"; mailbox: string; specialUse?: string[] }
  | { name: "DELETE"; mailbox: string }
  | { name: "RENAME"; from: string; to: string }
  | { name: "SUBSCRIBE" | "UNSUBSCRIBE"; mailbox: string }
  | { name: "LIST"; reference: string; patterns: string[]; options: ListOptions }
  | { name: "LSUB"; reference: string; pattern: string }
  | { name: "NAMESPACE" }
  | { name: "STATUS"; mailbox: string; items: StatusItem[] }
  | { name: "APPEND"; mailbox: string; messages: AppendMessage[] }
  | { name: "IDLE" }
  | { name: "CHECK" }
  | { name: "CLOSE" }
  | { name: "UNSELECT" }
  | { name: "EXPUNGE"; uid: false }
  | { name: "EXPUNGE"; uid: true; set: SequenceSet }
  | {
    name: "SEARCH";
    uid: boolean;
    charset?: string;
    key: SearchKey;
    /** Present when the client used `RETURN (...)` (ESEARCH); an empty list means `ALL`. */
    return?: SearchReturn[];
  }
  | { name: "FETCH"; uid: boolean; set: SequenceSet; atts: FetchAtt[]; modifiers: FetchModifiers }
  | { name: "STORE"; uid: boolean; set: SequenceSet; action: StoreAction }
  | { name: "COPY" | "MOVE"; uid: boolean; set: SequenceSet; mailbox: string }
  | {
    name: "SORT";
    uid: boolean;
    keys: SortKey[];
    charset: string;
    key: SearchKey;
    return?: SearchReturn[];
  }
  | {
    name: "THREAD";
    uid: boolean;
    algorithm: "REFERENCES" | "ORDEREDSUBJECT";
    charset: string;
    key: SearchKey;
  }
  | { name: "ID"; params: Record<string, string | null> | null };

export type CommandName = Command["name"];

/** A parsed command with its tag. */
export interface TaggedCommand {
  tag: string;
  command: Command;
}
