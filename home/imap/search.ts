/**
 * Evaluation of IMAP SEARCH keys (RFC 9051 §6.4.4, RFC 3501 §6.4.4) over an
 * in-memory view of a mailbox. The ESEARCH syntax is in `esearch.ts`.
 *
 * Keys are evaluated in three rounds per message with three-valued logic:
 * first with what is in memory (flags, UID, sequence number, size, dates,
 * MODSEQ), then with the decrypted {@linkcode MessageInfo} if still undecided,
 * and only then with the full text. A message decided by a cheaper round never
 * pays for a dearer one.
 *
 * String matching is a case-insensitive substring test on both sides folded by
 * {@linkcode foldForSearch}: NFKC, then full Unicode upper- then lower-casing,
 * so that "Grüße" matches "GRÜSSE" and "ﬁle" matches "FILE".
 *
 * @module
 */

import { intervalsContain, resolveSequenceSet } from "./sequence.ts";
import type { SearchKey, SequenceSet } from "./ast.ts";
import type { MessageInfo } from "../../src/mime/message_info.ts";
import { badSyntax } from "../../src/errors.ts";

/**
 * A message's decoded text for BODY and TEXT. A provider may also give the
 * UTF-8 bytes (and decode the strings lazily): ASCII text is then searched
 * without being decoded.
 */
export interface SearchText {
  readonly headers: string;
  readonly body: string;
  readonly headerBytes?: Uint8Array;
  readonly bodyBytes?: Uint8Array;
}

/** One message as SEARCH, SORT and THREAD see it. */
export interface SearchableMessage {
  seq: number;
  uid: number;
  /** System flags as `\Seen`, `\Answered`, `\Flagged`, `\Deleted`, `\Draft`; keywords as written. */
  flags: ReadonlySet<string>;
  /** Internal date, ms since the epoch. */
  internalDate: number;
  size: number;
  modseq: bigint;
  recent: boolean;
  /** Decrypted lazily; may be slow-ish. */
  info(): Promise<MessageInfo>;
  /** The info when it is at hand already (a warm cache), without waiting; else undefined. */
  infoNow?(): MessageInfo | undefined;
  /** Decoded full text, for BODY and TEXT; slow (opens the sealed blob). */
  text(): Promise<SearchText>;
  /** A key naming this message's text for {@linkcode SearchScope.scanText} (its blob id). */
  textKey?: string;
}

/** What a search needs to know about the mailbox and the session. */
export interface SearchScope {
  /** Highest sequence number in the mailbox: the value of `*` in a sequence set. */
  maxSeq: number;
  /** Highest UID in the mailbox: the value of `*` in a UID set. */
  maxUid: number;
  /** UIDs saved by `SEARCH RETURN (SAVE)` (RFC 5182), or null when nothing was saved. */
  savedUids: ReadonlySet<number> | null;
  /** The current time in ms, for OLDER and YOUNGER (RFC 5032). */
  now: number;
  /** The server's offset from UTC in minutes, for BEFORE/ON/SINCE; 0 (UTC) when absent. */
  timezoneOffsetMinutes?: number;
  /**
   * Reads the text of many messages in one ordered pass (cheaper than one
   * read per message), calling `each` as texts arrive, in any order.
   */
  scanText?: (
    keys: ReadonlySet<string>,
    each: (key: string, text: SearchText) => void,
  ) => Promise<void>;
}

/** Below this many messages needing their text, per-message reads are cheaper than a scan. */
const scanTextThreshold = 64;

/** How many messages may have info() or text() pending at once. */
const concurrency = 16;

const DAY_MS = 86_400_000;

/**
 * Returns the messages matching `key`, in the order given.
 *
 * @example
 * ```ts
 * const hits = await searchMessages({ kind: "flag", flag: "\\Seen", set: false }, view, scope);
 * ```
 */
export async function searchMessages(
  key: SearchKey,
  messages: readonly SearchableMessage[],
  scope: SearchScope,
): Promise<SearchableMessage[]> {
  const root = compile(key, scope);
  const decided = new Uint8Array(messages.length);
  const pending: number[] = [];
  const empty: Loaded = {};
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i];
    let r = evaluate(root, m, empty);
    if (r === NEED_INFO && m.infoNow) {
      // Header keys over a warm cache are decided here, without a wait per message.
      const info = m.infoNow();
      if (info) {
        const loaded: Loaded = { info };
        r = evaluate(root, m, loaded);
      }
    }
    if (r === TRUE) decided[i] = 1;
    else if (r !== FALSE) pending.push(i);
  }
  const needText: number[] = [];
  const loadedOf = new Map<number, Loaded>();
  await forEachLimited(pending, concurrency, async (i) => {
    const m = messages[i];
    const loaded: Loaded = {};
    let r = evaluate(root, m, loaded);
    while (r === NEED_INFO) {
      loaded.info = await m.info();
      r = evaluate(root, m, loaded);
    }
    if (r === NEED_TEXT && scope.scanText && m.textKey !== undefined) {
      needText.push(i);
      loadedOf.set(i, loaded);
      return;
    }
    while (r === NEED_INFO || r === NEED_TEXT) {
      if (r === NEED_INFO) loaded.info = await m.info();
      else loaded.text = await m.text();
      r = evaluate(root, m, loaded);
    }
    if (r === TRUE) decided[i] = 1;
  });
  if (needText.length) {
    // BODY/TEXT over many messages: one ordered scan of the stored texts.
    const byKey = new Map<string, number>();
    for (const i of needText) byKey.set(messages[i].textKey!, i);
    const unfinished: number[] = [];
    const finish = (i: number, r: number) => {
      if (r === TRUE) decided[i] = 1;
      if (r === TRUE || r === FALSE) loadedOf.delete(i); // let its text go now, not at the end
      else unfinished.push(i);
    };
    if (needText.length >= scanTextThreshold) {
      await scope.scanText!(new Set(byKey.keys()), (key, text) => {
        const i = byKey.get(key);
        if (i === undefined) return;
        byKey.delete(key);
        const loaded = loadedOf.get(i)!;
        loaded.text = text;
        finish(i, evaluate(root, messages[i], loaded));
      });
    }
    // Whatever the scan did not cover (or a short list) is read one by one.
    unfinished.push(...byKey.values());
    await forEachLimited(unfinished, concurrency, async (i) => {
      const m = messages[i];
      const loaded = loadedOf.get(i) ?? {};
      let r = evaluate(root, m, loaded);
      while (r === NEED_INFO || r === NEED_TEXT) {
        if (r === NEED_INFO) loaded.info = await m.info();
        else loaded.text = await m.text();
        r = evaluate(root, m, loaded);
      }
      if (r === TRUE) decided[i] = 1;
    });
  }
  return messages.filter((_, i) => decided[i] === 1);
}

/**
 * Folds a string for case-insensitive substring matching: NFKC, then
 * upper- and lower-casing (which maps ß to ss, as Unicode full case folding
 * does), with the final sigma and capital sharp s folded too.
 */
export function foldForSearch(text: string): string {
  // deno-lint-ignore no-control-regex
  if (/^[\x00-\x7f]*$/.test(text)) return text.toLowerCase();
  return text.normalize("NFKC").toUpperCase().toLowerCase().replace(/ß/g, "ss").replace(
    /ς/g,
    "σ",
  ).normalize("NFC");
}

/** Loads info() of every message, a few at a time; for SORT and THREAD. */
export async function loadMessageInfos(
  messages: readonly SearchableMessage[],
): Promise<MessageInfo[]> {
  const infos = new Array<MessageInfo>(messages.length);
  await forEachLimited(messages.map((_, i) => i), concurrency, async (i) => {
    infos[i] = await messages[i].info();
  });
  return infos;
}

// ---------------------------------------------------------------------------
// Compiled keys and three-valued evaluation

const FALSE = 0, TRUE = 1, NEED_INFO = 2, NEED_TEXT = 3;
/** FALSE, TRUE, or what is needed to decide: the cheapest of NEED_INFO and NEED_TEXT. */
type Tri = typeof FALSE | typeof TRUE | typeof NEED_INFO | typeof NEED_TEXT;

interface Loaded {
  info?: MessageInfo;
  text?: SearchText;
  foldedHeaders?: string;
  foldedBody?: string;
  foldedFields?: Map<string, string[]>;
  sentDay?: number | null;
}

type Node =
  | { t: "const"; v: boolean }
  | { t: "cheap"; test: (m: SearchableMessage) => boolean }
  | { t: "info"; test: (info: MessageInfo, loaded: Loaded) => boolean }
  | { t: "text"; test: (loaded: Loaded) => boolean }
  | { t: "not"; n: Node }
  | { t: "and" | "or"; ns: Node[]; cost: number };

function cost(n: Node): number {
  switch (n.t) {
    case "const":
    case "cheap":
      return 0;
    case "info":
      return 1;
    case "text":
      return 2;
    case "not":
      return cost(n.n);
    default:
      return n.cost;
  }
}

function evaluate(n: Node, m: SearchableMessage, loaded: Loaded): Tri {
  switch (n.t) {
    case "const":
      return n.v ? TRUE : FALSE;
    case "cheap":
      return n.test(m) ? TRUE : FALSE;
    case "info":
      if (!loaded.info) return NEED_INFO;
      return n.test(loaded.info, loaded) ? TRUE : FALSE;
    case "text":
      if (!loaded.text) return NEED_TEXT;
      return n.test(loaded) ? TRUE : FALSE;
    case "not": {
      const r = evaluate(n.n, m, loaded);
      return r === TRUE ? FALSE : r === FALSE ? TRUE : r;
    }
    case "and":
    case "or": {
      // Kleene logic: a deciding child wins; otherwise report the cheapest need.
      const decisive = n.t === "and" ? FALSE : TRUE;
      let need: Tri = n.t === "and" ? TRUE : FALSE;
      for (const c of n.ns) {
        const r = evaluate(c, m, loaded);
        if (r === decisive) return r;
        if (r >= NEED_INFO && (need < NEED_INFO || r < need)) need = r;
      }
      return need;
    }
  }
}

function compile(key: SearchKey, scope: SearchScope): Node {
  switch (key.kind) {
    case "ALL":
      return { t: "const", v: true };
    case "flag": {
      const flag = canonicalFlag(key.flag);
      const want = key.set;
      return { t: "cheap", test: (m) => hasFlag(m.flags, flag) === want };
    }
    case "NEW":
      return { t: "cheap", test: (m) => m.recent && !hasFlag(m.flags, "\\Seen") };
    case "OLD":
      return { t: "cheap", test: (m) => !m.recent };
    case "RECENT":
      return { t: "cheap", test: (m) => m.recent };
    case "LARGER":
      return { t: "cheap", test: (m) => m.size > key.size };
    case "SMALLER":
      return { t: "cheap", test: (m) => m.size < key.size };
    case "MODSEQ":
      // RFC 7162 §3.1.5: one mod-sequence per message serves every entry name.
      return { t: "cheap", test: (m) => m.modseq >= key.modseq };
    case "OLDER": {
      // RFC 5032 §3: OLDER is strictly older; YOUNGER is younger or equal.
      const limit = scope.now - key.seconds * 1000;
      return { t: "cheap", test: (m) => m.internalDate < limit };
    }
    case "YOUNGER": {
      const limit = scope.now - key.seconds * 1000;
      return { t: "cheap", test: (m) => m.internalDate >= limit };
    }
    case "UID":
    case "seq":
      return compileSet(key.set, key.kind, scope);
    case "date":
      return compileDate(key, scope);
    case "header":
      return compileHeader(key.field, key.value);
    case "BODY": {
      const needle = foldForSearch(key.value);
      const ascii = asciiNeedle(needle);
      return { t: "text", test: (l) => textIncludes(l, "body", needle, ascii) };
    }
    case "TEXT": {
      const needle = foldForSearch(key.value);
      const ascii = asciiNeedle(needle);
      return {
        t: "text",
        test: (l) =>
          textIncludes(l, "headers", needle, ascii) || textIncludes(l, "body", needle, ascii),
      };
    }
    case "NOT": {
      const n = compile(key.key, scope);
      return n.t === "const" ? { t: "const", v: !n.v } : { t: "not", n };
    }
    case "OR":
      return combine("or", [compile(key.a, scope), compile(key.b, scope)]);
    case "AND":
      return combine("and", key.keys.map((k) => compile(k, scope)));
  }
}

/** Cheapest children first, so that the common case decides without awaiting. */
function combine(t: "and" | "or", children: Node[]): Node {
  const ns: Node[] = [];
  for (const c of children) {
    if (c.t === "const") {
      if (c.v === (t === "or")) return c; // decides the whole node
      continue; // neutral element
    }
    if (c.t === t) ns.push(...c.ns);
    else ns.push(c);
  }
  if (ns.length === 0) return { t: "const", v: t === "and" };
  if (ns.length === 1) return ns[0];
  ns.sort((a, b) => cost(a) - cost(b));
  return { t, ns, cost: Math.max(...ns.map(cost)) };
}

const systemFlags = new Map(
  ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "\\Recent"].map((
    f,
  ) => [f.toLowerCase(), f]),
);

function canonicalFlag(flag: string): string {
  return systemFlags.get(flag.toLowerCase()) ?? flag;
}

/** Flags and keywords are case-insensitive (RFC 9051 §2.3.2); try the exact spelling first. */
function hasFlag(flags: ReadonlySet<string>, flag: string): boolean {
  if (flags.has(flag)) return true;
  const lower = flag.toLowerCase();
  for (const f of flags) if (f.toLowerCase() === lower) return true;
  return false;
}

function compileSet(set: SequenceSet, kind: "UID" | "seq", scope: SearchScope): Node {
  if ("saved" in set) {
    // RFC 5182 §2.1: `$` names the same messages for SEARCH and UID SEARCH; empty when unset.
    const saved = scope.savedUids;
    if (!saved || saved.size === 0) return { t: "const", v: false };
    return { t: "cheap", test: (m) => saved.has(m.uid) };
  }
  const max = kind === "UID" ? scope.maxUid : scope.maxSeq;
  // RFC 9051 §9: `*` is the largest number in use, and 4:2 is 2:4.
  const intervals = resolveSequenceSet(set, max);
  if (intervals.length === 0) return { t: "const", v: false };
  const pick = kind === "UID" ? (m: SearchableMessage) => m.uid : (m: SearchableMessage) => m.seq;
  return { t: "cheap", test: (m) => intervalsContain(intervals, pick(m)) };
}

function compileDate(
  key: Extract<SearchKey, { kind: "date" }>,
  scope: SearchScope,
): Node {
  const day = dayNumber(key.date);
  const cmp = key.op === "before"
    ? (d: number) => d < day
    : key.op === "on"
    ? (d: number) => d === day
    : (d: number) => d >= day;
  if (key.which === "internal") {
    // RFC 9051 §6.4.4: the date part of the internal date, in the server's timezone.
    const offset = (scope.timezoneOffsetMinutes ?? 0) * 60_000;
    return { t: "cheap", test: (m) => cmp(Math.floor((m.internalDate + offset) / DAY_MS)) };
  }
  return {
    t: "info",
    test: (info, loaded) => {
      loaded.sentDay ??= sentDay(info);
      return loaded.sentDay !== null && cmp(loaded.sentDay);
    },
  };
}

/** Days since the epoch of a `YYYY-MM-DD` date. */
function dayNumber(date: string): number {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  const ms = m ? Date.UTC(+m[1], +m[2] - 1, +m[3]) : NaN;
  if (!m || new Date(ms).getUTCDate() !== +m[3]) throw badSyntax(`Invalid search date ${date}`);
  return ms / DAY_MS;
}

const months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];

/**
 * The day of the Date: header in the header's own timezone (RFC 9051 §6.4.4
 * SENT*: "disregarding time and timezone"), read from the field text; when
 * that text is not RFC 5322 shaped, the parsed instant's UTC day; null when
 * there is no usable Date: at all, so no SENT* key matches.
 */
function sentDay(info: MessageInfo): number | null {
  const field = info.headers.fields.find(([name]) => name.toLowerCase() === "date");
  const m = field && /(\d{1,2})\s+([a-z]{3})[a-z]*\.?\s+(\d{2,4})\b/i.exec(field[1]);
  const month = m ? months.indexOf(m[2].toLowerCase()) : -1;
  if (m && month >= 0) {
    let year = +m[3];
    if (m[3].length === 2) year += year < 50 ? 2000 : 1900; // RFC 5322 §4.3
    else if (m[3].length === 3) year += 1900;
    return Date.UTC(year, month, +m[1]) / DAY_MS;
  }
  const date = info.headers.date;
  return date === null ? null : Math.floor(date / DAY_MS);
}

/**
 * HEADER and the address/subject keys. A message without the field never
 * matches; an empty value matches every message that has it (RFC 9051 §6.4.4).
 */
function compileHeader(field: string, value: string): Node {
  const name = field.toLowerCase();
  const needle = foldForSearch(value);
  return {
    t: "info",
    test: (info, loaded) => {
      const values = fieldValues(info, loaded, name);
      return values.some((v) => v.includes(needle));
    },
  };
}

function fieldValues(info: MessageInfo, loaded: Loaded, name: string): string[] {
  loaded.foldedFields ??= new Map();
  let values = loaded.foldedFields.get(name);
  if (!values) {
    values = info.headers.fields.filter(([n]) => n.toLowerCase() === name).map(([, v]) =>
      foldForSearch(v)
    );
    loaded.foldedFields.set(name, values);
  }
  return values;
}

/** The needle as bytes when it is all ASCII (the fast path), else null. */
function asciiNeedle(needle: string): Uint8Array | null {
  // deno-lint-ignore no-control-regex
  return needle.length > 0 && /^[\x00-\x7f]*$/.test(needle)
    ? new TextEncoder().encode(needle)
    : null;
}

/**
 * Case-insensitive substring test on a message's text. When the text comes as
 * bytes that are all ASCII and the needle is ASCII, folding is just A-Z to
 * a-z, so the bytes are searched as they are: no decoding, no folded copy.
 */
function textIncludes(
  l: Loaded,
  part: "headers" | "body",
  needle: string,
  ascii: Uint8Array | null,
): boolean {
  const bytes = part === "body" ? l.text!.bodyBytes : l.text!.headerBytes;
  if (ascii && bytes && isAscii(bytes)) return asciiFoldedIncludes(bytes, ascii);
  return (part === "body" ? foldedBody(l) : foldedHeaders(l)).includes(needle);
}

function isAscii(bytes: Uint8Array): boolean {
  let i = 0;
  if (bytes.byteOffset % 4 === 0) {
    const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length >> 2);
    for (let w = 0; w < words.length; w++) if (words[w] & 0x80808080) return false;
    i = words.length << 2;
  }
  for (; i < bytes.length; i++) if (bytes[i] & 0x80) return false;
  return true;
}

const lowerAscii = new Uint8Array(256).map((_, b) => (b >= 0x41 && b <= 0x5a ? b + 32 : b));

/** Whether ASCII `hay` contains lower-case ASCII `needle`, ignoring the case of A-Z. */
export function asciiFoldedIncludes(hay: Uint8Array, needle: Uint8Array): boolean {
  const n = needle.length;
  const last = hay.length - n;
  const first = needle[0];
  outer: for (let p = 0; p <= last; p++) {
    if (lowerAscii[hay[p]] !== first) continue;
    for (let k = 1; k < n; k++) if (lowerAscii[hay[p + k]] !== needle[k]) continue outer;
    return true;
  }
  return false;
}

function foldedHeaders(l: Loaded): string {
  return l.foldedHeaders ??= foldForSearch(l.text!.headers);
}

function foldedBody(l: Loaded): string {
  return l.foldedBody ??= foldForSearch(l.text!.body);
}

/** Runs `fn` over `items` with at most `limit` calls in flight. */
async function forEachLimited<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
