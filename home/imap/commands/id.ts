/** ID (RFC 2971). */
import type { Session } from "../session.ts";

export function id(s: Session) {
  s.w.untagged("ID", ["name", "Hearth", "vendor", "Hearth", "support-url", null]);
  return Promise.resolve();
}
