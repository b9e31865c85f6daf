/** STARTTLS (RFC 9051 §6.2.1). */
import { ProtocolError } from "../../../src/errors.ts";
import type { Session } from "../session.ts";

/**
 * What a connection offers beyond {@linkcode Session.io} for a clean upgrade:
 * stop reading before the tagged OK goes out, so the ClientHello that follows
 * it is left for the TLS layer (server.ts implements it).
 */
export interface PausableInput {
  pauseInput?(): void;
}

export async function starttls(s: Session, tag: string) {
  if (s.io.secure) throw new ProtocolError("BAD", "TLS is already active");
  if (!s.ctx.tlsAvailable) throw new ProtocolError("NO", "TLS is not available on this server");
  (s.io as PausableInput).pauseInput?.();
  s.w.tagged(tag, "OK", "Begin TLS negotiation now");
  await s.flushOutput();
  // RFC 9051 §6.2.1: anything the client pipelined after STARTTLS in plaintext is discarded
  // (startTls gives the connection a fresh framer).
  await s.io.startTls();
  return { tagged: false } as const;
}
