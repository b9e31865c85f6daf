/**
 * SELECT and EXAMINE (RFC 9051 §6.3.2, §6.3.3), with CONDSTORE (RFC 7162
 * §3.1.8) and QRESYNC resynchronisation (RFC 7162 §3.2.5).
 */
import { ProtocolError } from "../../../src/errors.ts";
import { atom } from "../../../src/mime/imap_value.ts";
import type { Command } from "../ast.ts";
import { SelectedView } from "../selected.ts";
import type { Session } from "../session.ts";
import { findMailbox, keywordsOf, listAttributes, mailboxNameForClient } from "./common.ts";
import { formatSequenceSet, intervalsContain, resolveSequenceSet } from "../sequence.ts";

const systemFlagList = ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"];

export function select(
  s: Session,
  _tag: string,
  cmd: Extract<Command, { name: "SELECT" | "EXAMINE" }>,
) {
  const store = s.account();
  // RFC 9051 §6.3.2: a SELECT first deselects; on failure the session is left unselected.
  if (s.selected) {
    s.selected = null;
    s.state = "auth";
    // RFC 7162 §3.2.11: tell a QRESYNC client the old mailbox is closed.
    if (s.qresync) s.w.untagged("OK [CLOSED] Previous mailbox closed");
  }
  if (cmd.qresync && !s.qresync) {
    throw new ProtocolError("BAD", "QRESYNC parameters need ENABLE QRESYNC first");
  }
  if (cmd.condstore || cmd.qresync) s.condstore = true;
  const mb = findMailbox(store, cmd.mailbox);
  const readOnly = cmd.name === "EXAMINE";
  const view = new SelectedView(mb, readOnly, s.rev2);
  const keywords = keywordsOf(mb);
  const flags = [...systemFlagList, ...keywords];
  s.w.untagged(`${view.exists} EXISTS`);
  if (!s.rev2) s.w.untagged(`${view.recent.size} RECENT`);
  s.w.untagged(`FLAGS (${flags.join(" ")})`);
  s.w.untagged(
    `OK [PERMANENTFLAGS (${readOnly ? "" : [...flags, "\\*"].join(" ")})] ${
      readOnly ? "Read-only mailbox" : "Flags permitted"
    }`,
  );
  if (s.rev2) {
    // RFC 9051 §6.3.2: the SELECT response includes a LIST response for the mailbox.
    s.w.untagged(
      `LIST (${listAttributes(store, mb).join(" ")}) "/"`,
      mailboxNameForClient(s.utf8, mb.name),
    );
  } else {
    const firstUnseen = view.uids.findIndex((u) => !mb.byUid.get(u)?.flags.includes("\\Seen"));
    if (firstUnseen >= 0) s.w.untagged(`OK [UNSEEN ${firstUnseen + 1}] First unseen message`);
  }
  s.w.untagged(`OK [UIDVALIDITY ${mb.rec.uidValidity}] UIDs valid`);
  s.w.untagged(`OK [UIDNEXT ${mb.rec.uidNext}] Predicted next UID`);
  // RFC 7162 §3.1.2.1: a server with persistent mod-sequences sends HIGHESTMODSEQ
  // with every successful SELECT/EXAMINE, whether or not CONDSTORE is enabled.
  s.w.untagged(`OK [HIGHESTMODSEQ ${Math.max(1, mb.rec.highestModSeq)}] Highest`);
  if (cmd.qresync && cmd.qresync.uidValidity === mb.rec.uidValidity) {
    resync(s, view, cmd.qresync);
  }
  s.selected = view;
  s.state = "selected";
  return Promise.resolve({
    code: readOnly ? "READ-ONLY" : "READ-WRITE",
    text: `${cmd.name} completed`,
  });
}

/**
 * RFC 7162 §3.2.5.2: report messages expunged (VANISHED (EARLIER)) and
 * changed (FETCH with UID, FLAGS, MODSEQ) since the client's modseq.
 */
function resync(
  s: Session,
  view: SelectedView,
  q: NonNullable<Extract<Command, { name: "SELECT" | "EXAMINE" }>["qresync"]>,
) {
  const mb = view.mailbox;
  const since = Number(q.modseq);
  const maxUid = mb.rec.uidNext - 1;
  const known = q.knownUids && !("saved" in q.knownUids)
    ? resolveSequenceSet(q.knownUids, Math.max(maxUid, 1))
    : null;
  const vanished: number[] = [];
  const seen = new Set<number>();
  for (const [uid, modseq] of mb.expunged) {
    if (modseq <= since || seen.has(uid)) continue;
    if (known && !intervalsContain(known, uid)) continue;
    seen.add(uid);
    vanished.push(uid);
  }
  if (vanished.length) {
    vanished.sort((a, b) => a - b);
    s.w.untagged(`VANISHED (EARLIER) ${formatSequenceSet(vanished)}`);
  }
  for (let i = 0; i < view.uids.length; i++) {
    const rec = mb.byUid.get(view.uids[i]);
    if (!rec || rec.modseq <= since) continue;
    if (known && !intervalsContain(known, rec.uid)) continue;
    s.w.untagged(`${i + 1} FETCH`, [
      atom("UID"),
      rec.uid,
      atom("FLAGS"),
      view.flagAtoms(rec, s.rev2),
      atom("MODSEQ"),
      [rec.modseq],
    ]);
  }
}
