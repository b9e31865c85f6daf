/** STATUS (RFC 9051 §6.3.11) with STATUS=SIZE (RFC 8438) and HIGHESTMODSEQ (RFC 7162 §3.1.10). */
import { limits } from "../../../src/limits.ts";
import type { Command, StatusItem } from "../ast.ts";
import type { Session } from "../session.ts";
import type { Mailbox } from "../../store/state.ts";
import { findMailbox, mailboxNameForClient } from "./common.ts";

/** Writes `* STATUS name (items)` for a mailbox. */
export function writeStatus(s: Session, mb: Mailbox, items: StatusItem[]) {
  const out: (string | number)[] = [];
  for (const item of items) {
    out.push(item);
    switch (item) {
      case "MESSAGES":
        out.push(mb.uids.length);
        break;
      case "RECENT": {
        let n = 0;
        for (let i = mb.uids.length - 1; i >= 0 && mb.uids[i] >= mb.recentFrom; i--) n++;
        out.push(n);
        break;
      }
      case "UIDNEXT":
        out.push(mb.rec.uidNext);
        break;
      case "UIDVALIDITY":
        out.push(mb.rec.uidValidity);
        break;
      case "UNSEEN": {
        let n = 0;
        for (const m of mb.byUid.values()) if (!m.flags.includes("\\Seen")) n++;
        out.push(n);
        break;
      }
      case "DELETED": {
        let n = 0;
        for (const m of mb.byUid.values()) if (m.flags.includes("\\Deleted")) n++;
        out.push(n);
        break;
      }
      case "SIZE":
        out.push(mb.size());
        break;
      case "HIGHESTMODSEQ":
        out.push(Math.max(1, mb.rec.highestModSeq));
        break;
      case "APPENDLIMIT":
        out.push(limits.messageBytes);
        break;
      case "MAILBOXID":
        out.push(`(${mb.id})`);
        break;
    }
  }
  s.w.text("* STATUS ").value(mailboxNameForClient(s.utf8, mb.name)).text(` (${out.join(" ")})`)
    .crlf();
}

export function status(s: Session, _tag: string, cmd: Extract<Command, { name: "STATUS" }>) {
  const mb = findMailbox(s.account(), cmd.mailbox);
  if (cmd.items.includes("HIGHESTMODSEQ")) s.condstore = true;
  writeStatus(s, mb, cmd.items);
  return Promise.resolve();
}
