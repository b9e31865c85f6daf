/** NOOP (RFC 9051 §6.1.2) and CHECK (RFC 3501 §6.4.1): pending updates are sent by the session. */
import type { Session } from "../session.ts";

export function noop(_s: Session) {
  return Promise.resolve();
}
