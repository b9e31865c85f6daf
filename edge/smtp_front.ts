/**
 * The edge's SMTP front: the domain's MX. Recipients are checked at RCPT
 * against the accounts the homes registered; at the end of DATA the message
 * is verified, sealed to each recipient account and committed, and only then
 * answered `250` (DESIGN.md, Edge).
 *
 * @example
 * ```ts
 * const front = await startSmtpFront({ store, hostname, cert, listen: "127.0.0.1", port: 2525 });
 * await front.close();
 * ```
 */
import {
  type CertificatePem,
  sessionReceived,
  SmtpServer,
  transactionId,
} from "../src/smtp/server.ts";
import { log } from "../src/log.ts";
import { type AccountRoute, checkRecipient, type InboundDeps, sealAndCommit } from "./inbound.ts";

export interface SmtpFrontOptions extends InboundDeps {
  cert: CertificatePem;
  listen: string;
  port: number;
}

export interface SmtpFront {
  port: number;
  /** Replaces the STARTTLS certificate for new sessions (an ACME renewal). */
  setCertificate(cert: CertificatePem): void;
  close(): Promise<void>;
}

export async function startSmtpFront(opts: SmtpFrontOptions): Promise<SmtpFront> {
  // The route of each accepted recipient, per session, from RCPT to DATA.
  const routes = new Map<string, Map<string, AccountRoute>>();
  // An MX has no users to authenticate.
  const server = new SmtpServer({ hostname: opts.hostname, cert: opts.cert }, {
    name: "edge",
    async rcptTo(to, session) {
      const route = await checkRecipient(opts.store, to.address, to.rawPath);
      const mine = routes.get(session.id) ?? new Map();
      mine.set(to.address, route);
      routes.set(session.id, mine);
    },
    mailFrom(_from, session) {
      // RSET and a new transaction start with a fresh recipient list.
      routes.delete(session.id);
    },
    close(session) {
      routes.delete(session.id);
    },
    async data(raw, session) {
      const id = transactionId();
      const mine = routes.get(session.id) ?? new Map<string, AccountRoute>();
      const recipients = session.envelope.rcptTo
        .filter((r) => mine.has(r.address))
        .map((r) => ({ address: r.address, route: mine.get(r.address)! }));
      const items = await sealAndCommit(opts, {
        raw,
        recipients,
        client: {
          ip: session.remoteAddress,
          helo: session.hostNameAppearsAs,
          sender: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
        },
        received: (r) => sessionReceived(opts.hostname, session, id, r, false),
      });
      log.info("edge.accepted", { id, items: items.length, bytes: raw.length });
      return `2.6.0 message ${id} queued for delivery`;
    },
  }, { secure: false });
  const port = await server.listen(opts.listen, opts.port);
  return {
    port,
    setCertificate: (cert) => server.setCertificate(cert),
    close: () => server.close(),
  };
}
