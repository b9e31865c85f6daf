/** SUBSCRIBE and UNSUBSCRIBE (RFC 9051 §6.3.7, §6.3.8). */
import type { Command } from "../ast.ts";
import type { Session } from "../session.ts";
import { findMailbox } from "./common.ts";

export async function subscribe(
  s: Session,
  _tag: string,
  cmd: Extract<Command, { name: "SUBSCRIBE" | "UNSUBSCRIBE" }>,
) {
  const account = s.account();
  const mb = findMailbox(account, cmd.mailbox);
  const subscribed = cmd.name === "SUBSCRIBE";
  if (mb.rec.subscribed === subscribed) return;
  await account.mutate((tx) => {
    tx.push({ op: "mbox", rec: { ...mb.rec, subscribed } });
  });
}
