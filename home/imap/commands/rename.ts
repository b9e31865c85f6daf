/** RENAME (RFC 9051 §6.3.6), including the special case of INBOX. */
import { ProtocolError } from "../../../src/errors.ts";
import type { Command } from "../ast.ts";
import type { Session } from "../session.ts";
import { delimiter, findMailbox } from "./common.ts";
import { checkNewName } from "./create.ts";
import { freshUidValidity, newMailboxRecord } from "../../store/accounts.ts";

export async function rename(s: Session, _tag: string, cmd: Extract<Command, { name: "RENAME" }>) {
  const account = s.account();
  const mb = findMailbox(account, cmd.from);
  const to = checkNewName(cmd.to);
  if (account.state.byName(to)) {
    throw new ProtocolError("NO", `Mailbox already exists: ${to}`, { imapCode: "ALREADYEXISTS" });
  }
  if (to.startsWith(mb.name + delimiter)) {
    throw new ProtocolError("NO", "A mailbox cannot be moved into itself", { imapCode: "CANNOT" });
  }
  const used = new Set([...account.state.mailboxes.values()].map((m) => m.rec.uidValidity));
  if (mb.name === "INBOX") {
    // RFC 9051 §6.3.6: renaming INBOX moves its messages to the new name and leaves INBOX empty.
    const rec = await newMailboxRecord(account, to, null, freshUidValidity({ used }));
    await account.mutate((tx) => {
      tx.push({ op: "mbox", rec: { ...rec, highestModSeq: tx.nextModSeq() } });
      const uids = mb.uids.slice();
      let next = 1;
      for (const uid of uids) {
        const m = mb.byUid.get(uid)!;
        tx.push({ op: "add", mb: rec.id, msg: { ...m, uid: next++, modseq: tx.nextModSeq() } });
      }
      if (uids.length) tx.push({ op: "expunge", mb: mb.id, uids, modseq: tx.nextModSeq() }, s.id);
    });
    return;
  }
  const prefix = mb.name + delimiter;
  const moving = [...account.state.mailboxes.values()].filter((m) =>
    m.id === mb.id || m.name.startsWith(prefix)
  );
  const renamed = await Promise.all(moving.map(async (m) => {
    const name = m.id === mb.id ? to : to + m.name.slice(mb.name.length);
    account.nameRecord(m.id, name);
    return { ...m.rec, nameEnc: await account.encryptName(name) };
  }));
  await account.mutate((tx) => {
    for (const rec of renamed) {
      tx.push({ op: "mbox", rec: { ...rec, highestModSeq: tx.nextModSeq() } });
    }
  });
}
