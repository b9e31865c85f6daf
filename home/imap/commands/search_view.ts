/** Presents a session's messages to SEARCH, SORT and THREAD without copying what is not needed. */
import type { Session } from "../session.ts";
import type { SearchableMessage, SearchScope, SearchText } from "../search.ts";
import type { MessageInfo } from "../../../src/mime/message_info.ts";
import type { MessageRecord } from "../../store/state.ts";
import type { AccountStore } from "../../store/account_store.ts";
import type { SearchKey } from "../ast.ts";
import { ProtocolError } from "../../../src/errors.ts";
import { checkSequenceNumbers, searchKeyLeaves } from "./common.ts";
import { lightFields, type MetaCache, metaCacheOf } from "../meta_cache.ts";

/**
 * One message of the session as SEARCH, SORT and THREAD see it. Everything
 * costly (the flag set, the BigInt modseq, metadata) is made on first use:
 * a search over 10,000 messages usually needs one or two of them.
 */
class SessionMessage implements SearchableMessage {
  readonly seq: number;
  readonly rec: MessageRecord;
  readonly recent: boolean;
  readonly #ctx: Context;
  #flags?: ReadonlySet<string>;

  constructor(seq: number, rec: MessageRecord, recent: boolean, ctx: Context) {
    this.seq = seq;
    this.rec = rec;
    this.recent = recent;
    this.#ctx = ctx;
  }

  get uid(): number {
    return this.rec.uid;
  }
  get flags(): ReadonlySet<string> {
    return this.#flags ??= new Set(this.rec.flags);
  }
  get internalDate(): number {
    return this.rec.date;
  }
  get size(): number {
    return this.rec.size;
  }
  get modseq(): bigint {
    return BigInt(this.rec.modseq);
  }
  get textKey(): string {
    return this.rec.blob;
  }
  async info(): Promise<MessageInfo> {
    const { light, cache, account } = this.#ctx;
    return light ? (await cache.get(this.rec.blob)).light : await account.info(this.rec.blob);
  }
  infoNow(): MessageInfo | undefined {
    return this.#ctx.light ? this.#ctx.cache.peek(this.rec.blob)?.light : undefined;
  }
  text(): Promise<SearchText> {
    return this.#ctx.account.text(this.rec.blob);
  }
}

interface Context {
  light: boolean;
  cache: MetaCache;
  account: AccountStore;
}

/** The session's messages as SearchableMessages, in sequence order. */
export function searchableMessages(s: Session, light = true): SearchableMessage[] {
  const view = s.view();
  const ctx: Context = { light, cache: metaCacheOf(s.account()), account: s.account() };
  const out: SearchableMessage[] = [];
  const recent = view.recent;
  for (let i = 0; i < view.uids.length; i++) {
    const rec = view.record(view.uids[i]);
    if (!rec) continue;
    out.push(new SessionMessage(i + 1, rec, recent.size > 0 && recent.has(rec.uid), ctx));
  }
  return out;
}

/**
 * The scope of a search. Checks the key's message sequence numbers first:
 * RFC 9051 §9 (seq-number) asks for a tagged BAD when a number is beyond the
 * last message, or `*` is used in an empty mailbox, in any command.
 */
export function searchScope(s: Session, key: SearchKey): SearchScope {
  const view = s.view();
  checkKeySequenceNumbers(key, view.uids.length);
  return {
    maxSeq: view.uids.length,
    maxUid: view.uids.length ? view.uids[view.uids.length - 1] : 0,
    savedUids: view.saved ? new Set(view.saved) : null,
    now: Date.now(),
    scanText: (keys, each) => s.account().scanText(keys, each),
  };
}

/** RFC 9051 §6.4.4: only UTF-8 and US-ASCII are supported charsets. */
export function checkCharset(charset: string | undefined) {
  if (charset === undefined) return;
  const c = charset.toUpperCase();
  if (c !== "UTF-8" && c !== "US-ASCII" && c !== "UTF8") {
    throw new ProtocolError("NO", `Unsupported charset ${charset}`, {
      imapCode: "BADCHARSET (UTF-8 US-ASCII)",
    });
  }
}

/** Loads the metadata cache for many messages at once before a search over them. */
export async function prefetchFor(s: Session, messages: SearchableMessage[]) {
  const view = s.view();
  const blobs: string[] = [];
  for (const m of messages) {
    const rec = view.record(m.uid);
    if (rec) blobs.push(rec.blob);
  }
  await metaCacheOf(s.account()).load(blobs);
}

/** True when a key uses MODSEQ (the response then carries MODSEQ, RFC 7162 §3.1.5). */
export function usesModseq(key: SearchKey): boolean {
  for (const k of searchKeyLeaves(key)) if (k.kind === "MODSEQ") return true;
  return false;
}

/**
 * True when a key reads only header fields kept in the metadata cache's light
 * copy, so SEARCH need not decrypt full metadata.
 */
export function lightEnough(key: SearchKey): boolean {
  for (const k of searchKeyLeaves(key)) {
    if (k.kind === "header" && !lightFields.has(k.field.toLowerCase())) return false;
  }
  return true;
}

/** True when a key reads header fields (SEARCH then loads the metadata cache first). */
export function needsHeaders(key: SearchKey): boolean {
  for (const k of searchKeyLeaves(key)) {
    if (k.kind === "header" || (k.kind === "date" && k.which === "sent")) return true;
  }
  return false;
}

/** RFC 9051 §9: every sequence set in a key is checked against the message count. */
function checkKeySequenceNumbers(key: SearchKey, count: number) {
  for (const k of searchKeyLeaves(key)) if (k.kind === "seq") checkSequenceNumbers(k.set, count);
}
