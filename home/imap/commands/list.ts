/**
 * LIST (RFC 9051 §6.3.9) with LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC
 * 5819) and SPECIAL-USE (RFC 6154); LSUB (RFC 3501 §6.3.9).
 */
import type { Command } from "../ast.ts";
import type { Session } from "../session.ts";
import type { Mailbox } from "../../store/state.ts";
import { delimiter, mailboxNameForClient, normaliseMailboxName } from "./common.ts";
import { writeStatus } from "./status.ts";

/** Compiles a LIST pattern: `*` matches anything, `%` anything but the delimiter (RFC 9051 §6.3.9). */
export function patternMatcher(reference: string, pattern: string): (name: string) => boolean {
  let full = reference + pattern;
  if (reference && !reference.endsWith(delimiter) && pattern && !pattern.startsWith(delimiter)) {
    full = reference + pattern;
  }
  let re = "";
  for (const ch of full) {
    if (ch === "*") re += ".*";
    else if (ch === "%") re += "[^/]*";
    else re += ch.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }
  const inboxAware = new RegExp(`^${re}$`);
  const ci = new RegExp(`^${re}$`, "i");
  return (name: string) => inboxAware.test(name) || (name === "INBOX" && ci.test(name));
}

function childrenOf(all: Mailbox[], name: string): boolean {
  const prefix = name + delimiter;
  return all.some((m) => m.name.startsWith(prefix));
}

export async function list(s: Session, _tag: string, cmd: Extract<Command, { name: "LIST" }>) {
  const store = s.account();
  const all = [...store.state.mailboxes.values()].sort((a, b) =>
    a.name === "INBOX"
      ? -1
      : b.name === "INBOX"
      ? 1
      : a.name < b.name
      ? -1
      : a.name > b.name
      ? 1
      : 0
  );
  const opts = cmd.options;
  // RFC 9051 §6.3.9: an empty pattern asks for the delimiter and root.
  if (cmd.patterns.length === 1 && cmd.patterns[0] === "" && !opts.extended) {
    s.w.untagged(`LIST (\\Noselect) "${delimiter}" ""`);
    return;
  }
  const matchers = cmd.patterns.map((p) => patternMatcher(cmd.reference, normaliseMailboxName(p)));
  const subscribedOnly = opts.select.includes("SUBSCRIBED");
  const specialOnly = opts.select.includes("SPECIAL-USE");
  const wantSpecial = opts.return.includes("SPECIAL-USE") || !opts.extended || specialOnly;
  const wantSubscribed = opts.return.includes("SUBSCRIBED") || subscribedOnly;
  // RFC 9051 §6.3.9 (RFC 3501 §6.3.8): a level of hierarchy that is not a mailbox but has
  // mailboxes below it (its parent was deleted) is listed as \NonExistent (\Noselect).
  const names = new Set(all.map((m) => m.name));
  const implied = new Set<string>();
  if (!subscribedOnly && !specialOnly) {
    for (const mb of all) {
      const parts = mb.name.split(delimiter);
      for (let i = 1; i < parts.length; i++) {
        const parent = parts.slice(0, i).join(delimiter);
        if (!names.has(parent) && matchers.some((m) => m(parent))) implied.add(parent);
      }
    }
  }
  const noselect = s.rev2 ? "\\NonExistent" : "\\Noselect";
  const emitImplied = (upTo: string | null) => {
    for (const name of [...implied].sort()) {
      if (upTo !== null && name > upTo) break;
      implied.delete(name);
      s.w.untagged(
        `LIST (${noselect} \\HasChildren) "${delimiter}"`,
        mailboxNameForClient(s.utf8, name),
      );
    }
  };
  for (const mb of all) {
    if (mb.name !== "INBOX") emitImplied(mb.name);
    if (!matchers.some((m) => m(mb.name))) continue;
    if (subscribedOnly && !mb.rec.subscribed) continue;
    if (specialOnly && !mb.rec.specialUse) continue;
    const attrs: string[] = [childrenOf(all, mb.name) ? "\\HasChildren" : "\\HasNoChildren"];
    if (wantSubscribed && mb.rec.subscribed) attrs.push("\\Subscribed");
    if (wantSpecial && mb.rec.specialUse) attrs.push(mb.rec.specialUse);
    s.w.untagged(`LIST (${attrs.join(" ")}) "${delimiter}"`, mailboxNameForClient(s.utf8, mb.name));
    if (opts.status?.length) writeStatus(s, mb, opts.status);
    await s.maybeFlush();
  }
  emitImplied(null);
}

export async function lsub(s: Session, _tag: string, cmd: Extract<Command, { name: "LSUB" }>) {
  const store = s.account();
  const match = patternMatcher(cmd.reference, normaliseMailboxName(cmd.pattern));
  for (const mb of store.state.mailboxes.values()) {
    if (!mb.rec.subscribed || !match(mb.name)) continue;
    s.w.untagged(`LSUB () "${delimiter}"`, mailboxNameForClient(s.utf8, mb.name));
  }
  await s.maybeFlush();
}
