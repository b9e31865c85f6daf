/**
 * COPY, MOVE and their UID forms (RFC 9051 §6.4.7, §6.4.8, RFC 6851) with
 * COPYUID (RFC 4315). A copy shares the sealed blob: nothing is re-encrypted.
 */
import { ProtocolError } from "../../../src/errors.ts";
import type { Command } from "../ast.ts";
import type { Completion, Session } from "../session.ts";
import { findMailbox, resolveTargets } from "./common.ts";
import { formatSequenceSet } from "../sequence.ts";

export async function copy(
  s: Session,
  _tag: string,
  cmd: Extract<Command, { name: "COPY" | "MOVE" }>,
): Promise<Completion> {
  const view = s.view();
  const account = s.account();
  const move = cmd.name === "MOVE";
  if (move && view.readOnly) {
    throw new ProtocolError("NO", "The mailbox is read-only (EXAMINE)", { imapCode: "READ-ONLY" });
  }
  const dest = findMailbox(account, cmd.mailbox, true);
  const src = view.mailbox;
  const targets = resolveTargets(view, cmd.set, cmd.uid);
  const pairs = await account.mutate((tx) => {
    const target = tx.state.mailboxes.get(dest.id);
    if (!target) {
      throw new ProtocolError("NO", "The target mailbox was deleted", { imapCode: "TRYCREATE" });
    }
    const from: number[] = [];
    const to: number[] = [];
    for (const t of targets) {
      const rec = src.byUid.get(t.uid);
      if (!rec) continue;
      const uid = target.rec.uidNext;
      tx.push({
        op: "add",
        mb: dest.id,
        msg: { ...rec, uid, flags: rec.flags.slice(), modseq: tx.nextModSeq(), saved: Date.now() },
      });
      from.push(t.uid);
      to.push(uid);
    }
    // RFC 6851 §3.3: the copy and the expunge are one atomic step.
    if (move && from.length && dest.id !== src.id) {
      tx.push({ op: "expunge", mb: src.id, uids: from.slice(), modseq: tx.nextModSeq() }, s.id);
    }
    return { from, to };
  });
  if (!pairs.from.length) {
    return { text: `${cmd.name} completed: no messages` };
  }
  const code = `COPYUID ${dest.rec.uidValidity} ${formatSequenceSet(pairs.from)} ${
    formatSequenceSet(pairs.to)
  }`;
  if (move) {
    // RFC 6851 §4.3: COPYUID goes in an untagged OK before the expunges.
    s.w.status("*", "OK", "Moved", code);
    return { text: "MOVE completed" };
  }
  return { code, text: "COPY completed" };
}
