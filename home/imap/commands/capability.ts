/** CAPABILITY (RFC 9051 §6.1.1). */
import type { Session } from "../session.ts";

export function capability(s: Session) {
  s.w.untagged(`CAPABILITY ${s.capabilities().join(" ")}`);
  return Promise.resolve();
}
