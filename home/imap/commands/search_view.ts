/** Presents a session's messages to SEARCH, SORT and THREAD without copying what is not needed. */
import type { Session } from "../session.ts";
import type { SearchableMessage, SearchScope } from "../search.ts";
import type { SearchKey } from "../ast.ts";
import { ProtocolError } from "../../../src/errors.ts";
import { lightFields, metaCacheOf } from "../meta_cache.ts";

/** The session's messages as SearchableMessages, in sequence order. */
export function searchableMessages(s: Session, light = true): SearchableMessage[] {
  const view = s.view();
  const account = s.account();
  const cache = metaCacheOf(account);
  const out: SearchableMessage[] = [];
  for (let i = 0; i < view.uids.length; i++) {
    const rec = view.record(view.uids[i]);
    if (!rec) continue;
    const blob = rec.blob;
    out.push({
      seq: i + 1,
      uid: rec.uid,
      flags: new Set(rec.flags),
      internalDate: rec.date,
      size: rec.size,
      modseq: BigInt(rec.modseq),
      recent: view.recent.has(rec.uid),
      info: light ? async () => (await cache.get(blob)).light : () => account.info(blob),
      infoNow: light ? () => cache.peek(blob)?.light : undefined,
      text: () => account.text(blob),
      textKey: blob,
    });
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
  checkSequenceNumbers(key, view.uids.length);
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

/** True when a search key uses MODSEQ (the response then carries MODSEQ, RFC 7162 §3.1.5). */
export function usesModseq(key: SearchKey): boolean {
  switch (key.kind) {
    case "MODSEQ":
      return true;
    case "NOT":
      return usesModseq(key.key);
    case "OR":
      return usesModseq(key.a) || usesModseq(key.b);
    case "AND":
      return key.keys.some(usesModseq);
    default:
      return false;
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

/**
 * True when a key reads only header fields kept in the metadata cache's light
 * copy, so SEARCH need not decrypt full metadata.
 */
export function lightEnough(key: SearchKey): boolean {
  switch (key.kind) {
    case "header":
      return lightFields.has(key.field.toLowerCase());
    case "NOT":
      return lightEnough(key.key);
    case "OR":
      return lightEnough(key.a) && lightEnough(key.b);
    case "AND":
      return key.keys.every(lightEnough);
    default:
      return true;
  }
}

function checkSequenceNumbers(key: SearchKey, count: number) {
  switch (key.kind) {
    case "seq":
      if ("saved" in key.set) return;
      for (const r of key.set.ranges) {
        for (const n of [r.from, r.to]) {
          if (typeof n === "number" && n > count) {
            throw new ProtocolError(
              "BAD",
              `Message sequence number ${n} is beyond the last message (${count})`,
            );
          }
          if (n === "*" && count === 0) {
            throw new ProtocolError("BAD", "The mailbox is empty: * refers to no message");
          }
        }
      }
      return;
    case "NOT":
      return checkSequenceNumbers(key.key, count);
    case "OR":
      checkSequenceNumbers(key.a, count);
      return checkSequenceNumbers(key.b, count);
    case "AND":
      for (const k of key.keys) checkSequenceNumbers(k, count);
      return;
  }
}
