/** DELETE (RFC 9051 §6.3.5). */
import { ProtocolError } from "../../../src/errors.ts";
import type { Command } from "../ast.ts";
import type { Session } from "../session.ts";
import { findMailbox } from "./common.ts";

export async function deleteMailbox(
  s: Session,
  _tag: string,
  cmd: Extract<Command, { name: "DELETE" }>,
) {
  const account = s.account();
  const mb = findMailbox(account, cmd.mailbox);
  if (mb.name === "INBOX") {
    throw new ProtocolError("NO", "INBOX cannot be deleted", { imapCode: "CANNOT" });
  }
  const blobs = [...mb.byUid.values()].map((m) => m.blob);
  await account.mutate((tx) => {
    tx.push({ op: "mboxdel", id: mb.id, modseq: tx.nextModSeq() });
  });
  if (s.selected?.mailbox.id === mb.id) {
    s.selected = null;
    s.state = "auth";
  }
  account.collectUnreferenced(blobs).catch(() => {});
}
