/**
 * Parses a framed IMAP command into the AST of `ast.ts` (RFC 9051 §6 and
 * §9, RFC 3501, and the extensions Hearth advertises). Pure: no I/O.
 *
 * @example
 * ```ts
 * const tag = parseTag(frame); // for the BAD response if parsing fails
 * const { command } = parseCommand(frame, { utf8: false });
 * ```
 * @module
 */

import type {
  AppendMessage,
  Command,
  FetchAtt,
  FetchModifiers,
  ListOptions,
  Partial,
  QresyncParams,
  Section,
  SortKey,
  StatusItem,
  StoreAction,
  TaggedCommand,
} from "./ast.ts";
import { type Frame, isTagChar, tagOf } from "./framing.ts";
import {
  charsetDecoder,
  readDateTime,
  readSearchKeys,
  readSearchReturn,
  readSequenceSet,
} from "./search_parser.ts";
import { bad, decodeUtf8, Reader } from "./tokenizer.ts";
import { ProtocolError } from "../../src/errors.ts";

export interface ParseOptions {
  /** IMAP4rev2 or UTF8=ACCEPT: mailbox names are UTF-8, not modified UTF-7. */
  utf8: boolean;
}

/**
 * The tag of a command, or null when it has none that is valid: the session
 * answers `tag BAD ...` (or `* BAD ...`) when {@linkcode parseCommand} throws.
 */
export function parseTag(frame: Frame): string | null {
  return frame.lines.length > 0 ? tagOf(frame.lines[0]) : null;
}

/**
 * Parse one command.
 *
 * @throws {CommandError} a ProtocolError with the command's `tag` (when it
 * has a valid one): `BAD` for malformed commands; `NO [BADCHARSET]` for an
 * unsupported SEARCH charset (RFC 9051 §6.4.4).
 */
export function parseCommand(frame: Frame, opts: ParseOptions): TaggedCommand {
  try {
    return parseTagged(frame, opts);
  } catch (e) {
    // The caller answers with the tag even when the rest fails to parse.
    const tag = parseTag(frame);
    if (e instanceof ProtocolError && tag !== null) (e as CommandError).tag = tag;
    throw e;
  }
}

/** What {@linkcode parseCommand} throws: a ProtocolError carrying the command's tag, if it had one. */
export type CommandError = ProtocolError & { tag?: string };

function parseTagged(frame: Frame, opts: ParseOptions): TaggedCommand {
  const r = new Reader(frame, opts);
  const tagText = r.chars(isTagChar);
  if (tagText === "") throw bad("Missing or invalid command tag");
  if (r.atEnd()) throw bad("Missing command name after the tag");
  r.sp();
  let name = r.atom("a command name").toUpperCase();
  let uid = false;
  if (name === "UID") {
    r.sp();
    uid = true;
    name = r.atom("a command after UID").toUpperCase();
    if (!UID_COMMANDS.has(name)) throw bad(`UID ${name} is not a command`);
  }
  const parse = COMMANDS[name];
  if (!parse) throw bad(`Unknown command ${name}`);
  const command = parse(r, uid);
  r.end();
  return { tag: tagText, command };
}

type CommandParser = (r: Reader, uid: boolean) => Command;

const UID_COMMANDS = new Set([
  "FETCH",
  "STORE",
  "COPY",
  "MOVE",
  "SEARCH",
  "EXPUNGE",
  "SORT",
  "THREAD",
]);

const COMMANDS: Record<string, CommandParser> = {
  CAPABILITY: () => ({ name: "CAPABILITY" }),
  NOOP: () => ({ name: "NOOP" }),
  LOGOUT: () => ({ name: "LOGOUT" }),
  STARTTLS: () => ({ name: "STARTTLS" }),
  NAMESPACE: () => ({ name: "NAMESPACE" }),
  IDLE: () => ({ name: "IDLE" }),
  CHECK: () => ({ name: "CHECK" }),
  CLOSE: () => ({ name: "CLOSE" }),
  UNSELECT: () => ({ name: "UNSELECT" }),
  EXPUNGE: (r, uid) => {
    if (!uid) return { name: "EXPUNGE", uid: false };
    r.sp();
    return { name: "EXPUNGE", uid: true, set: readSequenceSet(r) };
  },
  AUTHENTICATE: (r) => {
    r.sp();
    const mechanism = r.atom("a SASL mechanism").toUpperCase();
    if (r.atEnd()) return { name: "AUTHENTICATE", mechanism };
    r.sp();
    // RFC 4959 SASL-IR: base64, or "=" for an empty initial response; kept as sent.
    const initialResponse = r.chars((b) =>
      (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) ||
      b === 0x2b || b === 0x2f || b === 0x3d
    );
    if (initialResponse === "") throw bad("Expected a base64 initial response");
    return { name: "AUTHENTICATE", mechanism, initialResponse };
  },
  LOGIN: (r) => {
    r.sp();
    const user = r.astringText("a user name");
    r.sp();
    return { name: "LOGIN", user, password: r.astringText("a password") };
  },
  ENABLE: (r) => {
    const capabilities: string[] = [];
    do {
      r.sp();
      capabilities.push(r.atom("a capability").toUpperCase());
    } while (!r.atEnd());
    return { name: "ENABLE", capabilities };
  },
  SELECT: (r) => select(r, "SELECT"),
  EXAMINE: (r) => select(r, "EXAMINE"),
  CREATE: (r) => {
    r.sp();
    const mailbox = r.mailbox();
    if (r.atEnd()) return { name: "CREATE", mailbox };
    r.sp();
    return { name: "CREATE", mailbox, specialUse: createUse(r) };
  },
  DELETE: (r) => ({ name: "DELETE", mailbox: oneMailbox(r) }),
  SUBSCRIBE: (r) => ({ name: "SUBSCRIBE", mailbox: oneMailbox(r) }),
  UNSUBSCRIBE: (r) => ({ name: "UNSUBSCRIBE", mailbox: oneMailbox(r) }),
  RENAME: (r) => {
    const from = oneMailbox(r);
    return { name: "RENAME", from, to: oneMailbox(r) };
  },
  LIST: list,
  LSUB: (r) => {
    const reference = oneMailbox(r);
    r.sp();
    return { name: "LSUB", reference, pattern: r.listMailbox() };
  },
  STATUS: (r) => {
    const mailbox = oneMailbox(r);
    r.sp();
    return { name: "STATUS", mailbox, items: statusItems(r) };
  },
  APPEND: append,
  SEARCH: (r, uid) => {
    r.sp();
    const ret = maybeReturn(r);
    let charset: string | undefined;
    if (r.peekWord("CHARSET")) {
      r.atom();
      r.sp();
      charset = r.astringText("a charset");
      r.sp();
    }
    const key = readSearchKeys(r, charsetDecoder(charset));
    const command: Command = { name: "SEARCH", uid, key };
    if (charset !== undefined) command.charset = charset;
    if (ret) command.return = ret;
    return command;
  },
  FETCH: fetch,
  STORE: store,
  COPY: (r, uid) => copyMove(r, "COPY", uid),
  MOVE: (r, uid) => copyMove(r, "MOVE", uid),
  SORT: (r, uid) => {
    // RFC 5256 §3, RFC 5267 §3.2 (RETURN).
    r.sp();
    const ret = maybeReturn(r);
    const keys = sortCriteria(r);
    r.sp();
    const charset = r.astringText("a charset");
    r.sp();
    const key = readSearchKeys(r, charsetDecoder(charset));
    const command: Command = { name: "SORT", uid, keys, charset, key };
    if (ret) command.return = ret;
    return command;
  },
  THREAD: (r, uid) => {
    r.sp();
    const algorithm = r.atom("a thread algorithm").toUpperCase();
    if (algorithm !== "REFERENCES" && algorithm !== "ORDEREDSUBJECT") {
      throw bad(`Unknown thread algorithm ${algorithm}; use REFERENCES or ORDEREDSUBJECT`);
    }
    r.sp();
    const charset = r.astringText("a charset");
    r.sp();
    return {
      name: "THREAD",
      uid,
      algorithm,
      charset,
      key: readSearchKeys(r, charsetDecoder(charset)),
    };
  },
  ID: (r) => {
    // RFC 2971 §4.
    r.sp();
    if (r.peekWord("NIL")) {
      r.atom();
      return { name: "ID", params: null };
    }
    const params: Record<string, string | null> = {};
    r.open();
    let count = 0;
    while (!r.maybeClose()) {
      if (count > 0) r.sp();
      if (++count > 30) throw bad("ID accepts at most 30 field-value pairs");
      const field = decodeUtf8(r.astring("an ID field name"), "ID field");
      r.sp();
      const value = r.nstring("an ID value or NIL");
      params[field] = value === null ? null : decodeUtf8(value, "ID value");
    }
    return { name: "ID", params };
  },
};

function oneMailbox(r: Reader): string {
  r.sp();
  return r.mailbox();
}

/** An optional `RETURN (...) SP` (RFC 4731, RFC 5267), read after the command's space. */
function maybeReturn(r: Reader): ReturnType<typeof readSearchReturn> | undefined {
  if (!r.peekWord("RETURN")) return undefined;
  const ret = readSearchReturn(r);
  r.sp();
  return ret;
}

function select(r: Reader, name: "SELECT" | "EXAMINE"): Command {
  const mailbox = oneMailbox(r);
  let condstore = false;
  let qresync: QresyncParams | undefined;
  if (!r.atEnd()) {
    // RFC 4466 §2.1 select-params; RFC 7162 §3.1.8, §3.2.5.
    r.sp();
    r.open();
    let first = true;
    while (!r.maybeClose()) {
      if (!first) r.sp();
      first = false;
      const param = r.atom("a SELECT parameter").toUpperCase();
      if (param === "CONDSTORE") {
        condstore = true;
      } else if (param === "QRESYNC") {
        r.sp();
        qresync = qresyncParams(r);
      } else {
        throw bad(`Unknown ${name} parameter ${param}`);
      }
    }
    if (first) throw bad(`Empty ${name} parameter list`);
  }
  const command: Command = { name, mailbox, condstore };
  if (qresync) command.qresync = qresync;
  return command;
}

function qresyncParams(r: Reader): QresyncParams {
  r.open();
  const uidValidity = r.number("a UIDVALIDITY");
  if (uidValidity === 0) throw bad("UIDVALIDITY must be greater than 0");
  r.sp();
  const params: QresyncParams = { uidValidity, modseq: r.modseq() };
  if (r.maybe(0x20)) {
    if (r.peek() !== 0x28) {
      params.knownUids = readSequenceSet(r);
      if (!r.maybe(0x20)) {
        r.close();
        return params;
      }
    }
    r.open();
    const seqs = readSequenceSet(r);
    r.sp();
    params.seqMatch = { seqs, uids: readSequenceSet(r) };
    r.close();
  }
  r.close();
  return params;
}

const SPECIAL_USE: Record<string, string> = Object.fromEntries(
  ["\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash", "\\Important"].map(
    (a) => [a.toUpperCase(), a],
  ),
);

/** RFC 6154 §3: CREATE ... (USE (\Drafts ...)). */
function createUse(r: Reader): string[] {
  const uses: string[] = [];
  r.open();
  let first = true;
  while (!r.maybeClose()) {
    if (!first) r.sp();
    first = false;
    const param = r.atom("a CREATE parameter").toUpperCase();
    if (param !== "USE") throw bad(`Unknown CREATE parameter ${param}`);
    r.sp();
    r.open();
    let firstAttr = true;
    while (!r.maybeClose()) {
      if (!firstAttr) r.sp();
      firstAttr = false;
      r.expect(0x5c, "a special-use attribute such as \\Drafts");
      const attr = "\\" + r.atom("a special-use attribute");
      uses.push(SPECIAL_USE[attr.toUpperCase()] ?? attr);
    }
  }
  return uses;
}

const LIST_SELECT = new Set(["SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"]);
const LIST_RETURN = new Set(["SUBSCRIBED", "CHILDREN", "SPECIAL-USE"]);

/** RFC 5258 §6 extended LIST, RFC 5819 RETURN (STATUS), RFC 6154 SPECIAL-USE. */
function list(r: Reader): Command {
  const options: ListOptions = { select: [], return: [], extended: false };
  r.sp();
  if (r.peek() === 0x28) {
    options.extended = true;
    r.open();
    while (!r.maybeClose()) {
      if (options.select.length > 0) r.sp();
      const opt = r.atom("a LIST selection option").toUpperCase();
      if (!LIST_SELECT.has(opt)) throw bad(`Unknown LIST selection option ${opt}`);
      options.select.push(opt as ListOptions["select"][number]);
    }
    // RFC 5258 §3: RECURSIVEMATCH needs another selection option besides REMOTE.
    if (
      options.select.includes("RECURSIVEMATCH") &&
      !options.select.some((o) => o !== "RECURSIVEMATCH" && o !== "REMOTE")
    ) {
      throw bad("RECURSIVEMATCH needs another selection option such as SUBSCRIBED");
    }
    r.sp();
  }
  const reference = r.mailbox();
  r.sp();
  const patterns: string[] = [];
  if (r.peek() === 0x28) {
    options.extended = true;
    r.open();
    patterns.push(r.listMailbox());
    while (r.maybe(0x20)) patterns.push(r.listMailbox());
    r.close();
  } else {
    patterns.push(r.listMailbox());
  }
  if (!r.atEnd()) {
    r.sp();
    if (!r.peekWord("RETURN")) throw bad("Expected RETURN after the LIST patterns");
    r.atom();
    r.sp();
    options.extended = true;
    r.open();
    let first = true;
    while (!r.maybeClose()) {
      if (!first) r.sp();
      first = false;
      const opt = r.atom("a LIST return option").toUpperCase();
      if (opt === "STATUS") {
        r.sp();
        options.status = statusItems(r);
      } else if (LIST_RETURN.has(opt)) {
        options.return.push(opt as ListOptions["return"][number]);
      } else {
        throw bad(`Unknown LIST return option ${opt}`);
      }
    }
  }
  return { name: "LIST", reference, patterns, options };
}

const STATUS_ITEMS = new Set<string>([
  "MESSAGES",
  "RECENT",
  "UIDNEXT",
  "UIDVALIDITY",
  "UNSEEN",
  "DELETED",
  "SIZE",
  "HIGHESTMODSEQ",
  "APPENDLIMIT",
  "MAILBOXID",
]);

function statusItems(r: Reader): StatusItem[] {
  const items: StatusItem[] = [];
  r.open();
  do {
    if (items.length > 0) r.sp();
    const item = r.atom("a STATUS item").toUpperCase();
    if (!STATUS_ITEMS.has(item)) throw bad(`Unknown STATUS item ${item}`);
    items.push(item as StatusItem);
  } while (!r.maybeClose());
  return items;
}

const SYSTEM_FLAGS: Record<string, string> = Object.fromEntries(
  ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "\\Recent"].map((
    f,
  ) => [f.toUpperCase(), f]),
);

/** flag (RFC 9051 §9): system flags in their canonical case, keywords as sent. */
function flag(r: Reader): string {
  if (r.maybe(0x5c)) {
    if (r.peek() === 0x2a) throw bad("\\* is not a flag; it only appears in PERMANENTFLAGS");
    const f = "\\" + r.atom("a flag name after \\");
    return SYSTEM_FLAGS[f.toUpperCase()] ?? f;
  }
  return r.atom("a flag");
}

/** flag-list: "(" [flag *(SP flag)] ")". */
function flagList(r: Reader): string[] {
  const flags: string[] = [];
  r.open();
  while (!r.maybeClose()) {
    if (flags.length > 0) r.sp();
    flags.push(flag(r));
  }
  return flags;
}

/** RFC 9051 §6.3.12, RFC 3502 MULTIAPPEND, RFC 3516 literal8. */
function append(r: Reader): Command {
  const mailbox = oneMailbox(r);
  const messages: AppendMessage[] = [];
  do {
    r.sp();
    let flags: string[] = [];
    let date: number | undefined;
    if (r.peek() === 0x28) {
      flags = flagList(r);
      r.sp();
    }
    if (r.peek() === 0x22) {
      date = readDateTime(r);
      r.sp();
    }
    const b = r.peek();
    if (b !== 0x7b && !(b === 0x7e && r.peek(1) === 0x7b)) {
      throw bad(
        r.atEnd() ? "Missing message literal" : "APPEND message data must be a literal {n}",
      );
    }
    const lit = r.literal();
    const message: AppendMessage = { flags, data: lit.data, binary: lit.binary };
    if (date !== undefined) message.date = date;
    messages.push(message);
  } while (!r.atEnd());
  return { name: "APPEND", mailbox, messages };
}

function copyMove(r: Reader, name: "COPY" | "MOVE", uid: boolean): Command {
  r.sp();
  const set = readSequenceSet(r);
  return { name, uid, set, mailbox: oneMailbox(r) };
}

/** RFC 9051 §6.4.6 STORE, RFC 7162 §3.1.3 UNCHANGEDSINCE. */
function store(r: Reader, uid: boolean): Command {
  r.sp();
  const set = readSequenceSet(r);
  r.sp();
  let unchangedSince: bigint | undefined;
  if (r.peek() === 0x28) {
    r.open();
    const mod = r.atom("a STORE modifier").toUpperCase();
    if (mod !== "UNCHANGEDSINCE") throw bad(`Unknown STORE modifier ${mod}`);
    r.sp();
    unchangedSince = r.modseq();
    r.close();
    r.sp();
  }
  const item = r.chars((b) =>
    b === 0x2b || b === 0x2d || b === 0x2e || ((b | 0x20) >= 0x61 && (b | 0x20) <= 0x7a)
  )
    .toUpperCase();
  const m = /^([+-]?)FLAGS(\.SILENT)?$/.exec(item);
  if (!m) throw bad(`Unknown STORE item ${JSON.stringify(item)}; use FLAGS, +FLAGS or -FLAGS`);
  r.sp();
  let flags: string[];
  if (r.peek() === 0x28) {
    flags = flagList(r);
  } else {
    flags = [flag(r)];
    while (r.maybe(0x20)) flags.push(flag(r));
  }
  const action: StoreAction = {
    op: m[1] === "+" ? "add" : m[1] === "-" ? "remove" : "set",
    silent: m[2] !== undefined,
    flags,
  };
  if (unchangedSince !== undefined) action.unchangedSince = unchangedSince;
  return { name: "STORE", uid, set, action };
}

const SORT_KEYS = new Set([
  "ARRIVAL",
  "CC",
  "DATE",
  "FROM",
  "SIZE",
  "SUBJECT",
  "TO",
  "DISPLAYFROM",
  "DISPLAYTO",
]);

function sortCriteria(r: Reader): SortKey[] {
  const keys: SortKey[] = [];
  r.open();
  do {
    if (keys.length > 0) r.sp();
    let word = r.atom("a sort key").toUpperCase();
    const reverse = word === "REVERSE";
    if (reverse) {
      r.sp();
      word = r.atom("a sort key").toUpperCase();
    }
    if (!SORT_KEYS.has(word)) throw bad(`Unknown sort key ${word}`);
    keys.push({ key: word as SortKey["key"], reverse });
  } while (!r.maybeClose());
  return keys;
}

// ---- FETCH (RFC 9051 §6.4.5, RFC 3516, RFC 7162 §3.1.4) ----

const SIMPLE_ATTS = new Set([
  "ENVELOPE",
  "FLAGS",
  "INTERNALDATE",
  "RFC822",
  "RFC822.HEADER",
  "RFC822.TEXT",
  "RFC822.SIZE",
  "BODY",
  "BODYSTRUCTURE",
  "UID",
  "MODSEQ",
  "SAVEDATE",
  "EMAILID",
  "THREADID",
]);

const MACROS: Record<string, string[]> = {
  ALL: ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"],
  FAST: ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
  FULL: ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"],
};

function fetch(r: Reader, uid: boolean): Command {
  r.sp();
  const set = readSequenceSet(r);
  r.sp();
  let atts: FetchAtt[];
  if (r.peek() === 0x28) {
    atts = [];
    r.open();
    do {
      if (atts.length > 0) r.sp();
      atts.push(fetchAtt(r));
    } while (!r.maybeClose());
  } else {
    const macro = MACROS[fetchName(r, true)];
    atts = macro ? macro.map((kind) => ({ kind }) as FetchAtt) : [fetchAtt(r)];
  }
  const modifiers: FetchModifiers = {};
  if (!r.atEnd()) {
    r.sp();
    r.open();
    let first = true;
    while (!r.maybeClose()) {
      if (!first) r.sp();
      first = false;
      const mod = r.atom("a FETCH modifier").toUpperCase();
      if (mod === "CHANGEDSINCE") {
        r.sp();
        modifiers.changedSince = r.modseq();
      } else if (mod === "VANISHED") {
        modifiers.vanished = true;
      } else {
        throw bad(`Unknown FETCH modifier ${mod}`);
      }
    }
    // RFC 7162 §3.2.6: VANISHED only with UID FETCH and CHANGEDSINCE.
    if (modifiers.vanished && (!uid || modifiers.changedSince === undefined)) {
      throw bad("VANISHED is only allowed in UID FETCH together with CHANGEDSINCE");
    }
  }
  return { name: "FETCH", uid, set, atts, modifiers };
}

function isFetchNameChar(b: number): boolean {
  return b === 0x2e || (b >= 0x30 && b <= 0x39) || ((b | 0x20) >= 0x61 && (b | 0x20) <= 0x7a);
}

/** The name of a fetch item; with `macroOnly`, only ALL/FAST/FULL are read (else ""). */
function fetchName(r: Reader, macroOnly = false): string {
  if (macroOnly) {
    for (const m of Object.keys(MACROS)) {
      if (r.peekWord(m)) {
        r.atom();
        return m;
      }
    }
    return "";
  }
  return r.chars(isFetchNameChar).toUpperCase();
}

function fetchAtt(r: Reader): FetchAtt {
  const name = fetchName(r);
  if (name === "") throw bad(r.atEnd() ? "Missing FETCH items" : "Expected a FETCH item");
  const bracket = r.peek() === 0x5b;
  if (SIMPLE_ATTS.has(name) && !(name === "BODY" && bracket)) {
    return { kind: name } as FetchAtt;
  }
  if (!bracket) throw bad(`Unknown FETCH item ${name}`);
  switch (name) {
    case "BODY":
    case "BODY.PEEK": {
      const section = readSection(r);
      const att: FetchAtt = { kind: "BODY[]", section, peek: name === "BODY.PEEK" };
      const partial = readPartial(r);
      if (partial) att.partial = partial;
      return att;
    }
    case "BINARY":
    case "BINARY.PEEK": {
      const part = readBinarySection(r);
      const att: FetchAtt = { kind: "BINARY[]", part, peek: name === "BINARY.PEEK" };
      const partial = readPartial(r);
      if (partial) att.partial = partial;
      return att;
    }
    case "BINARY.SIZE":
      return { kind: "BINARY.SIZE", part: readBinarySection(r) };
    default:
      throw bad(`Unknown FETCH item ${name}`);
  }
}

function readPart(r: Reader, part: number[]): void {
  const n = r.number("a part number");
  if (n === 0) throw bad("Part numbers start at 1");
  part.push(n);
}

/** section (RFC 9051 §9): "[" [section-spec] "]". */
function readSection(r: Reader): Section {
  r.expect(0x5b, '"["');
  const section: Section = { part: [] };
  if (r.maybe(0x5d)) return section;
  const b = r.peek();
  if (b >= 0x30 && b <= 0x39) {
    readPart(r, section.part);
    while (r.peek() === 0x2e && r.peek(1) >= 0x30 && r.peek(1) <= 0x39) {
      r.maybe(0x2e);
      readPart(r, section.part);
    }
    if (!r.maybe(0x2e)) {
      r.expect(0x5d, '"]" after the part number');
      return section;
    }
  }
  const text = r.chars(isFetchNameChar).toUpperCase();
  if (
    text !== "HEADER" && text !== "HEADER.FIELDS" && text !== "HEADER.FIELDS.NOT" &&
    text !== "TEXT" &&
    !(text === "MIME" && section.part.length > 0)
  ) {
    throw bad(`Invalid section ${JSON.stringify(text)}; use HEADER, HEADER.FIELDS, TEXT or MIME`);
  }
  section.text = text;
  if (text === "HEADER.FIELDS" || text === "HEADER.FIELDS.NOT") {
    r.sp();
    r.open();
    const fields: string[] = [];
    do {
      if (fields.length > 0) r.sp();
      fields.push(decodeUtf8(r.astring("a header field name"), "Header field name").toUpperCase());
    } while (!r.maybeClose());
    section.fields = fields;
  }
  r.expect(0x5d, '"]" to end the section');
  return section;
}

/** section-binary (RFC 3516): "[" [section-part] "]". */
function readBinarySection(r: Reader): number[] {
  r.expect(0x5b, '"["');
  const part: number[] = [];
  if (r.maybe(0x5d)) return part;
  readPart(r, part);
  while (r.maybe(0x2e)) readPart(r, part);
  r.expect(0x5d, '"]" after the part number (BINARY takes part numbers only)');
  return part;
}

/** partial (RFC 9051 §9): "<" number64 "." nz-number64 ">". */
function readPartial(r: Reader): Partial | undefined {
  if (!r.maybe(0x3c)) return undefined;
  const start = r.number64("a partial start");
  r.expect(0x2e, '"." in <start.count>');
  const count = r.number64("a partial length");
  if (count === 0) throw bad("A partial length must be greater than 0");
  r.expect(0x3e, '">" to end <start.count>');
  return { start, count };
}
