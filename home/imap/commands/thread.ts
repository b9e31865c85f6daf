/** THREAD and UID THREAD (RFC 5256 §4): REFERENCES and ORDEREDSUBJECT. */
import type { Command } from "../ast.ts";
import type { Session } from "../session.ts";
import { searchMessages } from "../search.ts";
import { formatThreads, threadMessages } from "../thread.ts";
import { checkCharset, prefetchFor, searchableMessages, searchScope } from "./search_view.ts";

export async function thread(s: Session, _tag: string, cmd: Extract<Command, { name: "THREAD" }>) {
  checkCharset(cmd.charset);
  const messages = searchableMessages(s);
  await prefetchFor(s, messages);
  const hits = await searchMessages(cmd.key, messages, searchScope(s, cmd.key));
  const threads = await threadMessages(cmd.algorithm, hits, cmd.uid);
  const text = formatThreads(threads);
  s.w.untagged(text ? `THREAD ${text}` : "THREAD");
}
