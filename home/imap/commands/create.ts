/** CREATE (RFC 9051 §6.3.4) with CREATE-SPECIAL-USE (RFC 6154 §3). */
import { ProtocolError } from "../../../src/errors.ts";
import { limits } from "../../../src/limits.ts";
import type { Command } from "../ast.ts";
import type { Session } from "../session.ts";
import { delimiter, normaliseMailboxName } from "./common.ts";
import { freshUidValidity, newMailboxRecord } from "../../store/accounts.ts";
import type { MailboxRecord } from "../../store/state.ts";

const specialUses = new Set([
  "\\All",
  "\\Archive",
  "\\Drafts",
  "\\Flagged",
  "\\Junk",
  "\\Sent",
  "\\Trash",
]);

/** Checks a new mailbox name; returns it without a trailing delimiter. */
export function checkNewName(raw: string): string {
  let name = normaliseMailboxName(raw);
  if (name.endsWith(delimiter)) name = name.slice(0, -1);
  if (!name) {
    throw new ProtocolError("NO", "A mailbox name cannot be empty", { imapCode: "CANNOT" });
  }
  if (new TextEncoder().encode(name).length > limits.mailboxNameBytes) {
    throw new ProtocolError("NO", "The mailbox name is too long", { imapCode: "LIMIT" });
  }
  const parts = name.split(delimiter);
  if (parts.length > limits.mailboxDepth) {
    throw new ProtocolError("NO", "The mailbox hierarchy is too deep", { imapCode: "LIMIT" });
  }
  if (parts.some((p) => p === "")) {
    throw new ProtocolError("NO", "A mailbox name cannot contain empty levels", {
      imapCode: "CANNOT",
    });
  }
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f*%]/.test(name)) {
    throw new ProtocolError("NO", "A mailbox name cannot contain control characters, * or %", {
      imapCode: "CANNOT",
    });
  }
  return name;
}

export async function create(s: Session, _tag: string, cmd: Extract<Command, { name: "CREATE" }>) {
  const account = s.account();
  const name = checkNewName(cmd.mailbox);
  if (account.state.byName(name)) {
    throw new ProtocolError("NO", `Mailbox already exists: ${name}`, { imapCode: "ALREADYEXISTS" });
  }
  if (account.state.mailboxes.size >= limits.mailboxesPerAccount) {
    throw new ProtocolError("NO", "Too many mailboxes", { imapCode: "LIMIT" });
  }
  let use: string | null = null;
  for (const u of cmd.specialUse ?? []) {
    const canon = [...specialUses].find((x) => x.toLowerCase() === u.toLowerCase());
    if (!canon) {
      throw new ProtocolError("NO", `Unsupported special use ${u}`, { imapCode: "USEATTR" });
    }
    if (use) {
      throw new ProtocolError("NO", "Only one special use per mailbox", { imapCode: "USEATTR" });
    }
    use = canon;
  }
  // RFC 9051 §6.3.4: create missing superior names too.
  const parts = name.split(delimiter);
  const used = new Set([...account.state.mailboxes.values()].map((m) => m.rec.uidValidity));
  const recs: { name: string; rec: MailboxRecord }[] = [];
  for (let i = 1; i <= parts.length; i++) {
    const n = parts.slice(0, i).join(delimiter);
    if (account.state.byName(n)) continue;
    const rec = await newMailboxRecord(
      account,
      n,
      i === parts.length ? use : null,
      freshUidValidity({ used }),
    );
    recs.push({ name: n, rec });
  }
  await account.mutate((tx) => {
    // Another session may have created some of these names while the records were prepared.
    if (tx.state.byName(name)) {
      throw new ProtocolError("NO", `Mailbox already exists: ${name}`, {
        imapCode: "ALREADYEXISTS",
      });
    }
    for (const { name: n, rec } of recs) {
      if (tx.state.byName(n)) continue;
      tx.push({ op: "mbox", rec: { ...rec, highestModSeq: tx.nextModSeq() } });
    }
  });
}
