/** LOGIN (RFC 9051 §6.2.3) and the shared login path of AUTHENTICATE. */
import { ProtocolError } from "../../../src/errors.ts";
import { limits } from "../../../src/limits.ts";
import { log } from "../../../src/log.ts";
import { warmMetaCache } from "../meta_cache.ts";
import type { Command } from "../ast.ts";
import type { Completion, Session } from "../session.ts";

/** Checks credentials and moves the session to the authenticated state. */
export async function authenticateSession(
  s: Session,
  user: string,
  password: string,
): Promise<Completion> {
  if (!s.io.secure && !s.ctx.allowPlaintextAuth) {
    // RFC 9051 §6.2.3: no cleartext passwords without TLS.
    throw new ProtocolError("NO", "Use STARTTLS (or port 993) before logging in", {
      imapCode: "PRIVACYREQUIRED",
    });
  }
  const result = await s.ctx.registry.login(user, password, s.io.remoteAddress);
  if ("failure" in result) {
    // An operator (or fail2ban) sees guessing: who was tried, from where, and whether throttled.
    log.warn("imap.login-failed", { user, ip: s.io.remoteAddress, reason: result.failure });
    s.authFailures++;
    if (s.authFailures >= limits.imapAuthFailuresPerConnection) {
      s.w.status("*", "BYE", "Too many failed logins");
      s.state = "logout";
    }
    if (result.failure === "throttled") {
      throw new ProtocolError("NO", "Too many failed logins; wait a few minutes and try again", {
        imapCode: "UNAVAILABLE",
      });
    }
    throw new ProtocolError("NO", "Wrong user name or password", {
      imapCode: "AUTHENTICATIONFAILED",
    });
  }
  s.attach(result.store);
  // Mail that arrived while the account was locked is indexed before the client looks.
  await result.store.ingestArrivals().catch((e) => log.error("imap.ingest-failed", { error: e }));
  warmMetaCache(result.store).catch((e) => log.warn("imap.warm-failed", { error: e }));
  return { code: `CAPABILITY ${s.capabilities().join(" ")}`, text: "Logged in" };
}

export async function login(s: Session, _tag: string, cmd: Extract<Command, { name: "LOGIN" }>) {
  return await authenticateSession(s, cmd.user, cmd.password);
}
