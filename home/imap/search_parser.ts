/**
 * Search programs (RFC 9051 §6.4.4 search keys, RFC 7162 §3.1.5 MODSEQ,
 * RFC 5032 OLDER/YOUNGER, RFC 5182 `$`), shared by SEARCH, SORT and THREAD,
 * plus the IMAP date syntaxes.
 * @module
 */

import { ProtocolError } from "../../src/errors.ts";
import type { SearchKey, SearchReturn, SequenceSet } from "./ast.ts";
import { parseSequenceSet } from "./sequence.ts";
import { bad, decodeUtf8, type Reader } from "./tokenizer.ts";

const MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
}

function isSeqChar(b: number): boolean {
  return (b >= 0x30 && b <= 0x39) || b === 0x3a || b === 0x2c || b === 0x2a || b === 0x24;
}

/** sequence-set (RFC 9051 §9), or `$` (RFC 5182). */
export function readSequenceSet(r: Reader): SequenceSet {
  const text = r.chars(isSeqChar);
  if (text === "") {
    throw bad(r.atEnd() ? "Missing sequence set" : "Expected a sequence set such as 1:5,7 or 1:*");
  }
  return parseSequenceSet(text);
}

/** Search date (RFC 9051 §9 `date`: `1-Feb-1994`, optionally quoted) as YYYY-MM-DD. */
export function readSearchDate(r: Reader): string {
  const quoted = r.maybe(0x22);
  const text = r.chars((b) =>
    b === 0x2d || (b >= 0x30 && b <= 0x39) || ((b | 0x20) >= 0x61 && (b | 0x20) <= 0x7a)
  );
  if (quoted) r.expect(0x22, "a closing quote after the date");
  const m = /^(\d{1,2})-([A-Za-z]{3})-(\d{4})$/.exec(text);
  const month = m ? MONTHS.indexOf(m[2].toUpperCase()) : -1;
  const day = m ? Number(m[1]) : 0;
  const year = m ? Number(m[3]) : 0;
  if (!m || month < 0 || day < 1 || day > daysInMonth(year, month)) {
    throw bad(`Invalid date ${JSON.stringify(text)}; use the form 1-Feb-1994`);
  }
  return `${m[3]}-${String(month + 1).padStart(2, "0")}-${String(day).padStart(2, "0")}`;
}

/** date-time (RFC 9051 §9: `"17-Jul-1996 02:44:25 -0700"`) as milliseconds since the epoch. */
export function readDateTime(r: Reader): number {
  const bytes = r.string("a date-time");
  const text = decodeUtf8(bytes, "Date-time");
  const m = /^([ \d]\d)-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)$/.exec(text);
  const invalid = () =>
    bad(`Invalid date-time ${JSON.stringify(text)}; use the form "17-Jul-1996 02:44:25 -0700"`);
  if (!m) throw invalid();
  const day = Number(m[1].trim());
  const month = MONTHS.indexOf(m[2].toUpperCase());
  const year = Number(m[3]);
  const [hh, mm, ss, zh, zm] = [m[4], m[5], m[6], m[8], m[9]].map(Number);
  if (
    month < 0 || day < 1 || day > daysInMonth(year, month) || hh > 23 || mm > 59 || ss > 60 ||
    zm > 59
  ) {
    throw invalid();
  }
  const offset = (m[7] === "-" ? -1 : 1) * (zh * 60 + zm) * 60_000;
  return Date.UTC(year, month, day, hh, mm, ss) - offset;
}

/**
 * `RETURN (...)` of ESEARCH/ESORT (RFC 4731, RFC 5267) and SAVE (RFC 5182),
 * after the word RETURN has been seen.
 */
export function readSearchReturn(r: Reader): SearchReturn[] {
  r.atom();
  r.sp();
  r.open();
  const out: SearchReturn[] = [];
  while (!r.maybeClose()) {
    if (out.length > 0) r.sp();
    const opt = r.atom("a RETURN option").toUpperCase();
    if (opt !== "MIN" && opt !== "MAX" && opt !== "ALL" && opt !== "COUNT" && opt !== "SAVE") {
      throw bad(`Unknown search RETURN option ${opt}; use MIN, MAX, ALL, COUNT or SAVE`);
    }
    if (!out.includes(opt)) out.push(opt);
  }
  return out;
}

/** Turns search strings into text in the command's CHARSET. */
type TextDecoderFn = (bytes: Uint8Array) => string;

/** A decoder for CHARSET (RFC 9051 §6.4.4); unknown charsets are a NO [BADCHARSET]. */
export function charsetDecoder(charset: string | undefined): TextDecoderFn {
  const name = (charset ?? "UTF-8").toUpperCase();
  if (name === "UTF-8" || name === "US-ASCII" || name === "UTF8") {
    return (bytes) => decodeUtf8(bytes, "Search string");
  }
  let decoder: TextDecoder | undefined;
  try {
    decoder = new TextDecoder(name, { fatal: true });
  } catch {
    decoder = undefined;
  }
  if (!decoder || decoder.encoding === "replacement") {
    throw new ProtocolError("NO", `Charset ${charset} is not supported; use UTF-8`, {
      imapCode: "BADCHARSET (UTF-8 US-ASCII)",
    });
  }
  const d = decoder;
  return (bytes) => {
    try {
      return d.decode(bytes);
    } catch {
      throw bad(`Search string is not valid ${charset}`);
    }
  };
}

/**
 * A search program: one or more keys separated by spaces (an implicit AND).
 * The reader stands on the first key.
 */
export function readSearchKeys(r: Reader, decode: TextDecoderFn): SearchKey {
  const keys = [readSearchKey(r, decode)];
  while (!r.atEnd()) {
    r.sp();
    keys.push(readSearchKey(r, decode));
  }
  return keys.length === 1 ? keys[0] : { kind: "AND", keys };
}

const FLAG_KEYS: Record<string, [string, boolean]> = {
  ANSWERED: ["\\Answered", true],
  DELETED: ["\\Deleted", true],
  DRAFT: ["\\Draft", true],
  FLAGGED: ["\\Flagged", true],
  SEEN: ["\\Seen", true],
  UNANSWERED: ["\\Answered", false],
  UNDELETED: ["\\Deleted", false],
  UNDRAFT: ["\\Draft", false],
  UNFLAGGED: ["\\Flagged", false],
  UNSEEN: ["\\Seen", false],
};

const HEADER_KEYS = new Set(["BCC", "CC", "FROM", "SUBJECT", "TO"]);
const DATE_KEYS: Record<string, ["internal" | "sent", "before" | "on" | "since"]> = {
  BEFORE: ["internal", "before"],
  ON: ["internal", "on"],
  SINCE: ["internal", "since"],
  SENTBEFORE: ["sent", "before"],
  SENTON: ["sent", "on"],
  SENTSINCE: ["sent", "since"],
};

/** One search key; nested keys count towards the nesting limit. */
export function readSearchKey(r: Reader, decode: TextDecoderFn): SearchKey {
  r.enter();
  try {
    return searchKey(r, decode);
  } finally {
    r.leave();
  }
}

function searchKey(r: Reader, decode: TextDecoderFn): SearchKey {
  const b = r.peek();
  if (b === 0x28) {
    // Depth is counted per key (readSearchKey), so the parenthesis itself is not counted.
    r.open(false);
    const keys = [readSearchKey(r, decode)];
    while (r.maybe(0x20)) keys.push(readSearchKey(r, decode));
    r.close(false);
    return keys.length === 1 ? keys[0] : { kind: "AND", keys };
  }
  if ((b >= 0x30 && b <= 0x39) || b === 0x2a || b === 0x24) {
    return { kind: "seq", set: readSequenceSet(r) };
  }
  if (b === -1) throw bad(r.atEnd() ? "Missing search key" : "Expected a search key");
  const name = r.atom("a search key").toUpperCase();
  const flag = FLAG_KEYS[name];
  if (flag) return { kind: "flag", flag: flag[0], set: flag[1] };
  const date = DATE_KEYS[name];
  if (date) {
    r.sp();
    return { kind: "date", which: date[0], op: date[1], date: readSearchDate(r) };
  }
  if (HEADER_KEYS.has(name)) {
    r.sp();
    return { kind: "header", field: name, value: decode(r.astring()) };
  }
  switch (name) {
    case "ALL":
    case "NEW":
    case "OLD":
    case "RECENT":
      return { kind: name };
    case "KEYWORD":
    case "UNKEYWORD":
      r.sp();
      return { kind: "flag", flag: r.atom("a keyword"), set: name === "KEYWORD" };
    case "BODY":
    case "TEXT":
      r.sp();
      return { kind: name, value: decode(r.astring()) };
    case "HEADER": {
      r.sp();
      const field = decodeUtf8(r.astring("a header field name"), "Header field name");
      r.sp();
      return { kind: "header", field: field.toUpperCase(), value: decode(r.astring()) };
    }
    case "LARGER":
    case "SMALLER":
      r.sp();
      return { kind: name, size: r.number64("a size") };
    case "UID":
      r.sp();
      return { kind: "UID", set: readSequenceSet(r) };
    case "NOT":
      r.sp();
      return { kind: "NOT", key: readSearchKey(r, decode) };
    case "OR": {
      r.sp();
      const a = readSearchKey(r, decode);
      r.sp();
      return { kind: "OR", a, b: readSearchKey(r, decode) };
    }
    case "OLDER":
    case "YOUNGER": {
      r.sp();
      const seconds = r.number("a number of seconds");
      if (seconds === 0) throw bad(`${name} needs a number of seconds greater than 0`);
      return { kind: name, seconds };
    }
    case "MODSEQ":
      return modseqKey(r);
    default:
      throw bad(`Unknown search key ${name}`);
  }
}

/** RFC 7162 §3.1.5: MODSEQ [SP entry-name SP entry-type-req] SP mod-sequence-valzer. */
function modseqKey(r: Reader): SearchKey {
  r.sp();
  if (r.peek() !== 0x22) return { kind: "MODSEQ", modseq: r.modseq() };
  const name = decodeUtf8(r.string("an entry name"), "Entry name");
  if (!name.toLowerCase().startsWith("/flags/")) {
    throw bad('MODSEQ entry names have the form "/flags/\\\\Seen"');
  }
  r.sp();
  const type = r.atom("an entry type").toLowerCase();
  if (type !== "priv" && type !== "shared" && type !== "all") {
    throw bad("MODSEQ entry type must be priv, shared or all");
  }
  r.sp();
  return { kind: "MODSEQ", modseq: r.modseq(), entry: { name, type } };
}
