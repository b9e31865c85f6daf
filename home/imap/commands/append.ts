/**
 * APPEND (RFC 9051 §6.3.12) with MULTIAPPEND (RFC 3502), BINARY literals (RFC
 * 3516) and APPENDUID (RFC 4315). `OK` is sent only after every message is
 * sealed and durable with its index entry.
 */
import { ProtocolError } from "../../../src/errors.ts";
import type { Command } from "../ast.ts";
import type { Completion, Session } from "../session.ts";
import { AccountStore } from "../../store/account_store.ts";
import { canonicalFlags, findMailbox } from "./common.ts";
import { formatSequenceSet } from "../sequence.ts";
import { limits } from "../../../src/limits.ts";

export async function append(
  s: Session,
  _tag: string,
  cmd: Extract<Command, { name: "APPEND" }>,
): Promise<Completion> {
  const account = s.account();
  const mb = findMailbox(account, cmd.mailbox, true);
  for (const m of cmd.messages) {
    if (m.data.length === 0) throw new ProtocolError("NO", "An empty message cannot be appended");
    if (m.data.length > limits.messageBytes) {
      throw new ProtocolError("NO", `Messages are limited to ${limits.messageBytes} bytes`, {
        imapCode: "TOOBIG",
      });
    }
  }
  const flagSets = cmd.messages.map((m) => canonicalFlags(m.flags));
  // Sealing and fsyncing happen in parallel, outside the account's writer.
  const prepared = await Promise.all(cmd.messages.map((m) => account.prepareMessage(m.data)));
  const uids = await account.mutate((tx) => {
    const target = tx.state.mailboxes.get(mb.id);
    if (!target) {
      throw new ProtocolError("NO", "The mailbox was deleted", { imapCode: "TRYCREATE" });
    }
    const out: number[] = [];
    prepared.forEach((p, i) => {
      // A small blob and its metadata are staged in this commit (docs/store.md).
      account.commitPrepared(tx, p);
      const uid = target.rec.uidNext;
      const date = cmd.messages[i].date ?? Date.now();
      tx.push({
        op: "add",
        mb: mb.id,
        msg: AccountStore.newRecord(uid, p, flagSets[i], date, tx.nextModSeq()),
      });
      out.push(uid);
    });
    return out;
  });
  return {
    code: `APPENDUID ${mb.rec.uidValidity} ${formatSequenceSet(uids)}`,
    text: "APPEND completed",
  };
}
