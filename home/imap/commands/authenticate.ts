/** AUTHENTICATE PLAIN (RFC 9051 §6.2.2, RFC 4616) with SASL-IR (RFC 4959). */
import { ProtocolError } from "../../../src/errors.ts";
import type { Command } from "../ast.ts";
import type { Session } from "../session.ts";
import { authenticateSession } from "./login.ts";

export async function authenticate(
  s: Session,
  _tag: string,
  cmd: Extract<Command, { name: "AUTHENTICATE" }>,
) {
  if (cmd.mechanism.toUpperCase() !== "PLAIN") {
    throw new ProtocolError("NO", `Unsupported authentication mechanism ${cmd.mechanism}`);
  }
  if (!s.io.secure && !s.ctx.allowPlaintextAuth) {
    throw new ProtocolError("NO", "Use STARTTLS (or port 993) before logging in", {
      imapCode: "PRIVACYREQUIRED",
    });
  }
  let response = cmd.initialResponse;
  if (response === undefined) {
    s.w.continuation("");
    await s.flushOutput();
    const line = await s.io.readRawLine();
    if (line === null) throw new ProtocolError("BAD", "Connection closed during AUTHENTICATE");
    response = new TextDecoder().decode(line).trim();
  }
  if (response === "*") throw new ProtocolError("BAD", "Authentication cancelled");
  let decoded: string;
  try {
    // "=" is an empty initial response (RFC 4959 §3).
    decoded = response === "=" ? "" : new TextDecoder("utf-8", { fatal: true }).decode(
      Uint8Array.from(atob(response), (c) => c.charCodeAt(0)),
    );
  } catch {
    throw new ProtocolError("BAD", "The SASL response is not valid base64");
  }
  const [authzid, authcid, password] = decoded.split("\0");
  if (authcid === undefined || password === undefined) {
    throw new ProtocolError("BAD", "The PLAIN response needs authzid NUL authcid NUL password");
  }
  if (authzid && authzid.toLowerCase() !== authcid.toLowerCase()) {
    throw new ProtocolError("NO", "Logging in as another user is not allowed", {
      imapCode: "AUTHORIZATIONFAILED",
    });
  }
  return await authenticateSession(s, authcid, password);
}
