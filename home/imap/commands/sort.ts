/** SORT and UID SORT (RFC 5256 §3) with SORT=DISPLAY (RFC 5957). */
import type { Command } from "../ast.ts";
import type { Session } from "../session.ts";
import { searchMessages } from "../search.ts";
import { sortMessages } from "../sort.ts";
import { formatEsearch } from "../esearch.ts";
import { checkCharset, prefetchFor, searchableMessages, searchScope } from "./search_view.ts";

export async function sort(s: Session, tag: string, cmd: Extract<Command, { name: "SORT" }>) {
  checkCharset(cmd.charset);
  const messages = searchableMessages(s);
  await prefetchFor(s, messages);
  const hits = await searchMessages(cmd.key, messages, searchScope(s, cmd.key));
  const sorted = await sortMessages(cmd.keys, hits);
  const numbers = sorted.map((m) => (cmd.uid ? m.uid : m.seq));
  if (cmd.return) {
    const body = formatEsearch(numbers, cmd.return, { sorted: true });
    if (body === null) return;
    s.w.text(`* ESEARCH (TAG `).string(tag).text(")");
    if (cmd.uid) s.w.text(" UID");
    if (body) s.w.text(" ").text(body);
    s.w.crlf();
    return;
  }
  s.w.untagged(numbers.length ? `SORT ${numbers.join(" ")}` : "SORT");
}
