/**
 * STORE and UID STORE (RFC 9051 §6.4.6) with UNCHANGEDSINCE and the MODIFIED
 * response code (RFC 7162 §3.1.3).
 */
import { ProtocolError } from "../../../src/errors.ts";
import { atom, type ImapValue } from "../../../src/mime/imap_value.ts";
import type { Command } from "../ast.ts";
import type { Completion, Session } from "../session.ts";
import { canonicalFlags, resolveTargets } from "./common.ts";
import { formatSequenceSet } from "../sequence.ts";
import { limits } from "../../../src/limits.ts";

export async function store(
  s: Session,
  _tag: string,
  cmd: Extract<Command, { name: "STORE" }>,
): Promise<Completion | void> {
  const view = s.view();
  if (view.readOnly) {
    throw new ProtocolError("NO", "The mailbox is read-only (EXAMINE)", { imapCode: "READ-ONLY" });
  }
  const account = s.account();
  const flags = canonicalFlags(cmd.action.flags);
  const unchangedSince = cmd.action.unchangedSince;
  if (unchangedSince !== undefined) s.condstore = true;
  const mb = view.mailbox;
  const keywordsNow = new Set<string>();
  for (const m of mb.byUid.values()) {
    for (const f of m.flags) if (!f.startsWith("\\")) keywordsNow.add(f);
  }
  for (const f of flags) if (!f.startsWith("\\")) keywordsNow.add(f);
  if (keywordsNow.size > limits.keywordsPerMailbox) {
    throw new ProtocolError(
      "NO",
      `A mailbox can use at most ${limits.keywordsPerMailbox} keywords`,
      {
        imapCode: "LIMIT",
      },
    );
  }
  const targets = resolveTargets(view, cmd.set, cmd.uid);
  const modified: number[] = [];
  const changed = new Set<number>();
  await account.mutate((tx) => {
    const changes: [number, number, string[]][] = [];
    for (const t of targets) {
      const rec = mb.byUid.get(t.uid);
      if (!rec) continue;
      // RFC 7162 §3.1.3: a message changed since UNCHANGEDSINCE is not stored and is reported.
      if (unchangedSince !== undefined && rec.modseq > Number(unchangedSince)) {
        modified.push(cmd.uid ? t.uid : t.seq);
        continue;
      }
      let next: string[];
      if (cmd.action.op === "set") next = flags;
      else if (cmd.action.op === "add") next = [...new Set([...rec.flags, ...flags])];
      else next = rec.flags.filter((f) => !flags.includes(f));
      next.sort();
      if (next.length === rec.flags.length && next.every((f, i) => f === rec.flags[i])) {
        // RFC 7162 §3.1.3: with UNCHANGEDSINCE, an unchanged message is still reported.
        if (unchangedSince !== undefined) changed.add(t.uid);
        continue;
      }
      changes.push([t.uid, tx.nextModSeq(), next]);
      changed.add(t.uid);
    }
    if (changes.length) tx.push({ op: "flags", mb: mb.id, changes }, s.id);
  });
  const condstore = s.condstore || s.qresync;
  for (const t of targets) {
    if (!changed.has(t.uid)) continue;
    const rec = mb.byUid.get(t.uid);
    if (!rec) continue;
    // .SILENT suppresses the FETCH, except that CONDSTORE clients get MODSEQ (RFC 7162 §3.1.3).
    if (cmd.action.silent && !condstore) continue;
    const items: ImapValue[] = [];
    if (cmd.uid || s.qresync) items.push(atom("UID"), t.uid);
    if (!cmd.action.silent) items.push(atom("FLAGS"), view.flagAtoms(rec, s.rev2));
    if (condstore) items.push(atom("MODSEQ"), [rec.modseq]);
    s.w.untagged(`${t.seq} FETCH`, items);
    await s.maybeFlush();
  }
  if (modified.length) {
    return {
      code: `MODIFIED ${formatSequenceSet(modified.sort((a, b) => a - b))}`,
      text: "Conditional STORE failed for some messages",
    };
  }
}
