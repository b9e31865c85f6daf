/**
 * The submission listeners (RFC 6409): port 587-style with STARTTLS and
 * 465-style with implicit TLS (RFC 8314). AUTH PLAIN and LOGIN (RFC 4954)
 * are offered only under TLS; an authenticated user may send only as
 * themself. Local recipients are delivered at once; remote ones go to the
 * outbound queue when one is injected. No copy is stored in Sent: clients
 * APPEND their own (RFC 6409 §8 leaves it to them), so it is never doubled.
 *
 * @example
 * ```ts
 * const sub = await startSubmission({ ...deps, port: 2587, tlsPort: 2465, queue });
 * await sub.close();
 * ```
 */
import type { SMTPServer, SMTPServerOptions, SMTPServerSession } from "smtp-server";
import { limits } from "../../src/limits.ts";
import { log } from "../../src/log.ts";
import type { AccountStore } from "../store/account_store.ts";
import { normaliseAddress } from "../store/accounts.ts";
import { headerAddresses, headerValues } from "../../src/smtp/addresses.ts";
import { classifyRecipient, deliverAll } from "./listener.ts";
import {
  closeServer,
  listenOn,
  makeSmtpServer,
  rawPathOf,
  readMessage,
  sessionReceived,
  smtpError,
  toSmtpError,
  transactionId,
} from "../../src/smtp/server.ts";
import { normaliseLineEndings } from "../../src/mail/line_endings.ts";
import { prependHeader } from "../../src/smtp/received.ts";
import type { OutboundQueue, SmtpDeps, SmtpListener } from "./types.ts";

export interface SubmissionOptions extends SmtpDeps {
  /** STARTTLS port, or null for none. */
  port: number | null;
  /** Implicit TLS port, or null for none. */
  tlsPort: number | null;
  /** The outbound queue; without it, remote recipients are refused with `451 4.3.2`. */
  queue?: OutboundQueue;
  /** Allow AUTH without TLS (loopback tests only). */
  allowPlaintextAuth?: boolean;
}

/**
 * The sender checks (RFC 6409 §6.1 lets a submission server enforce them):
 * the envelope sender and every `From:` address must be the user's own.
 */
export function senderProblem(user: string, raw: Uint8Array): string | null {
  const froms = headerValues(raw, "From");
  if (froms.length !== 1) return "the message needs exactly one From: header";
  const addresses = headerAddresses(froms[0]);
  if (!addresses.length) return "the From: header has no address";
  const bad = addresses.find((a) => a !== normaliseAddress(user));
  return bad ? `you may not send as ${bad}; From: must be ${user}` : null;
}

export interface SubmissionListener extends SmtpListener {
  /** Bound STARTTLS port, or null when not started. */
  port: number | null;
  /** Bound implicit-TLS port, or null when not started. */
  tlsPort: number | null;
}

/** Starts the STARTTLS and implicit-TLS submission listeners. */
export async function startSubmission(opts: SubmissionOptions): Promise<SubmissionListener> {
  const deps: SmtpDeps = opts;
  // Stores unlocked by AUTH, released when the connection closes.
  const stores = new Map<string, AccountStore>();
  const authFailures = new Map<string, number>();
  const remote = new Map<string, Set<string>>();

  const options = (secure: boolean): SMTPServerOptions => ({
    secure,
    authMethods: ["PLAIN", "LOGIN"],
    authOptional: false,
    allowInsecureAuth: opts.allowPlaintextAuth ?? false,
    maxAllowedUnauthenticatedCommands: limits.smtpUnauthenticatedCommands,
    async onAuth(auth, session, callback) {
      if (!session.tlsOptions && !opts.allowPlaintextAuth) {
        // RFC 4954 §4: credentials only over an encrypted channel (smtp-server also checks).
        return callback(smtpError(538, "5.7.11", "encryption required: use STARTTLS first"));
      }
      const result = await opts.registry.login(
        auth.username ?? "",
        auth.password ?? "",
        session.remoteAddress,
      ).catch((e) => {
        log.error("submission.login-error", { error: e });
        return { failure: "error" as const };
      });
      if ("store" in result) {
        const old = stores.get(session.id);
        if (old) opts.registry.release(old);
        stores.set(session.id, result.store);
        return callback(null, { user: normaliseAddress(auth.username ?? "") });
      }
      log.warn("smtp.auth-failed", {
        user: auth.username,
        ip: session.remoteAddress,
        reason: result.failure,
      });
      if (result.failure === "throttled") {
        return callback(smtpError(454, "4.7.0", "too many failed logins; try again later"));
      }
      if (result.failure === "error") {
        return callback(smtpError(454, "4.7.0", "temporary authentication failure"));
      }
      // Guessing on one connection ends it after a few tries (the registry's throttling per
      // account and per address covers guessing across connections).
      const failed = (authFailures.get(session.id) ?? 0) + 1;
      authFailures.set(session.id, failed);
      if (failed >= limits.smtpAuthFailuresPerConnection) {
        return callback(smtpError(421, "4.7.0", "too many failed logins; closing the connection"));
      }
      callback(smtpError(535, "5.7.8", "authentication failed: wrong address or password"));
    },
    onMailFrom(address, session, callback) {
      const user = String(session.user ?? "");
      // RFC 6409 §6.1: the server may reject a sender the user is not allowed to use.
      if (normaliseAddress(address.address) !== user) {
        return callback(
          smtpError(553, "5.7.1", `you may not send as <${address.address}>; use <${user}>`),
        );
      }
      remote.set(session.id, new Set());
      callback();
    },
    async onRcptTo(address, session, callback) {
      try {
        const kind = await classifyRecipient(deps, address.address, rawPathOf(address));
        if (kind === "remote") {
          if (!opts.queue) {
            throw smtpError(451, "4.3.2", "outbound delivery is not available yet");
          }
          remote.get(session.id)?.add(address.address);
        }
        callback();
      } catch (e) {
        callback(toSmtpError(e, "submission.rcpt"));
      }
    },
    onData(stream, session, callback) {
      const id = transactionId();
      (async () => {
        const body = normaliseLineEndings(await readMessage(stream));
        const user = String(session.user ?? "");
        const problem = senderProblem(user, body);
        if (problem) throw smtpError(553, "5.7.1", problem);
        const far = remote.get(session.id) ?? new Set<string>();
        const all = session.envelope.rcptTo.map((r) => r.address);
        const local = all.filter((r) => !far.has(r));
        const header = (recipient?: string) =>
          sessionReceived(deps.hostname, session, id, recipient, true);
        const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : user;
        await Promise.all([
          deliverAll(deps, local, (r) => prependHeader(header(r), body)),
          // One copy for all remote recipients: its Received: names none of them.
          far.size ? opts.queue!.enqueue(from, [...far], prependHeader(header(), body)) : null,
        ]);
        log.info("submission.accepted", { id, local: local.length, remote: far.size });
      })().then(
        () => callback(null, `2.6.0 message ${id} accepted`),
        (e) => callback(toSmtpError(e, "submission.data")),
      );
    },
    onClose(session: SMTPServerSession) {
      authFailures.delete(session.id);
      const store = stores.get(session.id);
      if (store) opts.registry.release(store);
      stores.delete(session.id);
      remote.delete(session.id);
    },
  });

  const servers: SMTPServer[] = [];
  const start = async (port: number | null, secure: boolean) => {
    if (port === null) return null;
    const server = makeSmtpServer(deps, options(secure));
    servers.push(server);
    return await listenOn(server, opts.listen, port);
  };
  let port: number | null, tlsPort: number | null;
  try {
    port = await start(opts.port, false);
    tlsPort = await start(opts.tlsPort, true);
  } catch (e) {
    await Promise.all(servers.map(closeServer));
    throw e;
  }
  return {
    port,
    tlsPort,
    ports: [port, tlsPort].filter((p): p is number => p !== null),
    close: async () => void (await Promise.all(servers.map(closeServer))),
  };
}
