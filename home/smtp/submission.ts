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
import { limits } from "../../src/limits.ts";
import { log } from "../../src/log.ts";
import type { AccountStore } from "../store/account_store.ts";
import { normaliseAddress } from "../store/accounts.ts";
import { headerAddresses, headerValues } from "../../src/smtp/addresses.ts";
import { classifyRecipient, deliverAll } from "./listener.ts";
import {
  sessionReceived,
  smtpError,
  type SmtpHandlers,
  SmtpServer,
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

  const handlers: SmtpHandlers = {
    name: "submission",
    auth: {
      allowPlaintext: opts.allowPlaintextAuth ?? false,
      async login(username, password, session) {
        const result = await opts.registry.login(username, password, session.remoteAddress)
          .catch((e) => {
            log.error("submission.login-error", { error: e });
            return { failure: "error" as const };
          });
        if ("store" in result) {
          const old = stores.get(session.id);
          if (old) opts.registry.release(old);
          stores.set(session.id, result.store);
          return normaliseAddress(username);
        }
        log.warn("smtp.auth-failed", {
          user: username,
          ip: session.remoteAddress,
          reason: result.failure,
        });
        if (result.failure === "throttled") {
          throw smtpError(454, "4.7.0", "too many failed logins; try again later");
        }
        if (result.failure === "error") {
          throw smtpError(454, "4.7.0", "temporary authentication failure");
        }
        // Guessing on one connection ends it after a few tries (the registry's throttling per
        // account and per address covers guessing across connections).
        const failed = (authFailures.get(session.id) ?? 0) + 1;
        authFailures.set(session.id, failed);
        if (failed >= limits.smtpAuthFailuresPerConnection) {
          throw smtpError(421, "4.7.0", "too many failed logins; closing the connection");
        }
        throw smtpError(535, "5.7.8", "authentication failed: wrong address or password");
      },
    },
    mailFrom(from, session) {
      const user = session.user ?? "";
      // RFC 6409 §6.1: the server may reject a sender the user is not allowed to use.
      if (normaliseAddress(from.address) !== user) {
        throw smtpError(553, "5.7.1", `you may not send as <${from.address}>; use <${user}>`);
      }
      remote.set(session.id, new Set());
    },
    async rcptTo(to, session) {
      const kind = await classifyRecipient(deps, to.address, to.rawPath);
      if (kind === "remote") {
        if (!opts.queue) throw smtpError(451, "4.3.2", "outbound delivery is not available yet");
        remote.get(session.id)?.add(to.address);
      }
    },
    async data(message, session) {
      const id = transactionId();
      const body = normaliseLineEndings(message);
      const user = session.user ?? "";
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
      return `2.6.0 message ${id} accepted`;
    },
    close(session) {
      authFailures.delete(session.id);
      const store = stores.get(session.id);
      if (store) opts.registry.release(store);
      stores.delete(session.id);
      remote.delete(session.id);
    },
  };

  const servers: SmtpServer[] = [];
  const start = async (port: number | null, secure: boolean) => {
    if (port === null) return null;
    const server = new SmtpServer(deps, handlers, { secure });
    servers.push(server);
    return await server.listen(opts.listen, port);
  };
  let port: number | null, tlsPort: number | null;
  try {
    port = await start(opts.port, false);
    tlsPort = await start(opts.tlsPort, true);
  } catch (e) {
    await Promise.all(servers.map((s) => s.close()));
    throw e;
  }
  return {
    port,
    tlsPort,
    ports: [port, tlsPort].filter((p): p is number => p !== null),
    close: async () => void (await Promise.all(servers.map((s) => s.close()))),
  };
}
