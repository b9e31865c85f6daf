/** IDLE (RFC 2177, RFC 9051 §6.3.13): updates are pushed as they are committed until DONE. */
import { ProtocolError } from "../../../src/errors.ts";
import type { Session } from "../session.ts";

export async function idle(s: Session) {
  s.w.continuation("idling");
  s.flushIdleUpdates();
  await s.flushOutput();
  let wake: (() => void) | null = null;
  s.onChange = () => {
    s.flushIdleUpdates();
    s.flushOutput().catch(() => {});
    wake?.();
  };
  try {
    const line = await s.io.readRawLine();
    if (line === null) return { tagged: false } as const;
    const text = new TextDecoder().decode(line).trim();
    if (text.toUpperCase() !== "DONE") {
      throw new ProtocolError("BAD", "Expected DONE to end IDLE");
    }
  } finally {
    s.onChange = null;
    wake = null;
  }
}
