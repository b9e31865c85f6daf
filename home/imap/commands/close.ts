/** CLOSE (RFC 9051 §6.4.2) expunges silently then deselects; UNSELECT (RFC 3691) only deselects. */
import type { Command } from "../ast.ts";
import type { Session } from "../session.ts";
import { expungeMessages } from "./expunge.ts";

export async function close(
  s: Session,
  _tag: string,
  cmd: Extract<Command, { name: "CLOSE" | "UNSELECT" }>,
) {
  const view = s.view();
  if (cmd.name === "CLOSE" && !view.readOnly) await expungeMessages(s, null, { silent: true });
  s.selected = null;
  s.state = "auth";
}
