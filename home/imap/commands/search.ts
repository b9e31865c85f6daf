/**
 * SEARCH and UID SEARCH (RFC 9051 §6.4.4) with ESEARCH (RFC 4731), SEARCHRES
 * (RFC 5182) and MODSEQ (RFC 7162 §3.1.5).
 */
import type { Command } from "../ast.ts";
import type { Session } from "../session.ts";
import { searchMessages } from "../search.ts";
import { formatEsearch, numbersToSave } from "../esearch.ts";
import {
  checkCharset,
  lightEnough,
  needsHeaders,
  prefetchFor,
  searchableMessages,
  searchScope,
  usesModseq,
} from "./search_view.ts";

export async function search(s: Session, tag: string, cmd: Extract<Command, { name: "SEARCH" }>) {
  checkCharset(cmd.charset);
  const view = s.view();
  const messages = searchableMessages(s, lightEnough(cmd.key));
  if (needsHeaders(cmd.key)) await prefetchFor(s, messages);
  const hits = await searchMessages(cmd.key, messages, searchScope(s, cmd.key));
  const numbers = hits.map((m) => (cmd.uid ? m.uid : m.seq));
  const modseq = usesModseq(cmd.key);
  if (modseq) s.condstore = true;
  let highest = 0n;
  if (modseq) { for (const m of hits) if (m.modseq > highest) highest = m.modseq; }
  const ret = cmd.return ?? (s.rev2 ? [] : undefined);
  if (ret?.includes("SAVE")) {
    const saved = numbersToSave(hits.map((m) => m.uid), ret);
    view.saved = saved;
  }
  if (ret === undefined) {
    // RFC 3501 §7.2.5 SEARCH response; RFC 7162 §3.1.5 appends (MODSEQ n).
    let line = "SEARCH";
    if (numbers.length) line += " " + numbers.join(" ");
    if (modseq && numbers.length) line += ` (MODSEQ ${highest})`;
    s.w.untagged(line);
    return;
  }
  const body = formatEsearch(numbers, ret, modseq ? { modseq: highest } : {});
  if (body === null) return;
  s.w.text(`* ESEARCH (TAG `).string(tag).text(")");
  if (cmd.uid) s.w.text(" UID");
  if (body) s.w.text(" ").text(body);
  s.w.crlf();
}
