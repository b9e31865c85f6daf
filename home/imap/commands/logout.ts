/** LOGOUT (RFC 9051 §6.1.3). */
import type { Session } from "../session.ts";

export function logout(s: Session) {
  s.w.status("*", "BYE", "Hearth IMAP server logging out");
  s.close();
  return Promise.resolve();
}
