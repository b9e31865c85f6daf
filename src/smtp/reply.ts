/**
 * SMTP refusals as errors: handlers throw them and the connection sends them
 * as `code enhanced text` (RFC 5321 §4.2, RFC 3463 enhanced status codes).
 * Internal failures become a generic temporary refusal and are logged, never
 * shown.
 *
 * @example
 * ```ts
 * throw smtpError(550, "5.1.1", "no mailbox here for someone@example.org");
 * ```
 */
import { isDiskFull, ProtocolError } from "../errors.ts";
import { log } from "../log.ts";

/** An SMTP refusal: `code enhanced text` on the wire. */
export function smtpError(code: number, enhanced: string, text: string): Error {
  const err = new Error(`${enhanced} ${text}`) as Error & { responseCode: number };
  err.responseCode = code;
  return err;
}

/** Turns any failure into an SMTP refusal; internals never reach the wire. */
export function toSmtpError(e: unknown, context: string): Error {
  if (e instanceof ProtocolError && e.smtp) {
    return smtpError(e.smtp.code, e.smtp.enhanced, e.message);
  }
  if ((e as { responseCode?: number }).responseCode) return e as Error;
  if (isDiskFull(e)) {
    log.error("smtp.disk-full", { context, error: e });
    // RFC 3463 §3.4: X.3.1 "mail system full"; 452 asks the client to retry later.
    return smtpError(452, "4.3.1", "insufficient system storage; try again later");
  }
  log.error("smtp.local-error", { context, error: e });
  // RFC 5321 §4.2.5: a 4xx after DATA asks the client to try again later.
  return smtpError(451, "4.3.0", "local error while storing the message; try again later");
}
