/** EXPUNGE (RFC 9051 §6.4.3) and UID EXPUNGE (RFC 4315 §2.1). */
import { ProtocolError } from "../../../src/errors.ts";
import type { Command } from "../ast.ts";
import type { Session } from "../session.ts";
import { resolveTargets } from "./common.ts";

/**
 * Expunges \Deleted messages (only those in `uids` when given). The session's
 * own EXPUNGE/VANISHED responses come from its view at the command's end.
 */
export async function expungeMessages(
  s: Session,
  uids: Set<number> | null,
  opts: { silent: boolean },
) {
  const view = s.view();
  const account = s.account();
  const mb = view.mailbox;
  const blobs: string[] = [];
  await account.mutate((tx) => {
    const list: number[] = [];
    for (const uid of mb.uids) {
      if (uids && !uids.has(uid)) continue;
      const rec = mb.byUid.get(uid);
      if (rec?.flags.includes("\\Deleted")) {
        list.push(uid);
        blobs.push(rec.blob);
      }
    }
    if (list.length) {
      tx.push({ op: "expunge", mb: mb.id, uids: list, modseq: tx.nextModSeq() }, s.id);
    }
    return list;
  });
  void opts;
  // Blobs no other message shares are removed once the expunge is durable.
  account.collectUnreferenced(blobs).catch(() => {});
}

export async function expunge(
  s: Session,
  _tag: string,
  cmd: Extract<Command, { name: "EXPUNGE" }>,
) {
  const view = s.view();
  if (view.readOnly) {
    throw new ProtocolError("NO", "The mailbox is read-only (EXAMINE)", { imapCode: "READ-ONLY" });
  }
  const uids = cmd.uid ? new Set(resolveTargets(view, cmd.set, true).map((t) => t.uid)) : null;
  await expungeMessages(s, uids, { silent: false });
}
