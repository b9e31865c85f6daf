/** ENABLE (RFC 5161, RFC 9051 §6.3.1): CONDSTORE, QRESYNC, UTF8=ACCEPT, IMAP4rev2. */
import type { Command } from "../ast.ts";
import type { Session } from "../session.ts";

const known = new Set(["CONDSTORE", "QRESYNC", "UTF8=ACCEPT", "IMAP4REV2"]);

export function enable(s: Session, _tag: string, cmd: Extract<Command, { name: "ENABLE" }>) {
  const now: string[] = [];
  for (const raw of cmd.capabilities) {
    const cap = raw.toUpperCase();
    if (!known.has(cap) || s.enabled.has(cap)) continue;
    s.enabled.add(cap);
    now.push(raw);
    // RFC 7162 §3.2.3: enabling QRESYNC also enables CONDSTORE.
    if (cap === "QRESYNC" && !s.enabled.has("CONDSTORE")) s.enabled.add("CONDSTORE");
    if (cap === "CONDSTORE" || cap === "QRESYNC") s.condstore = true;
  }
  // RFC 5161 §3.1: the ENABLED response lists what this command newly enabled.
  s.w.untagged(now.length ? `ENABLED ${now.join(" ")}` : "ENABLED");
  return Promise.resolve();
}
