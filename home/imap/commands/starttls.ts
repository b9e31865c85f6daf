/** STARTTLS (RFC 9051 §6.2.1). */
import { ProtocolError } from "../../../src/errors.ts";
import type { Session } from "../session.ts";

export async function starttls(s: Session, tag: string) {
  if (s.io.secure) throw new ProtocolError("BAD", "TLS is already active");
  if (!s.ctx.tlsAvailable) throw new ProtocolError("NO", "TLS is not available on this server");
  s.w.tagged(tag, "OK", "Begin TLS negotiation now");
  await s.flushOutput();
  await s.io.startTls();
  return { tagged: false } as const;
}
