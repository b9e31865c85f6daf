/**
 * The MX listener: accepts mail for the box's own accounts from any sender
 * on the Internet (RFC 5321), over STARTTLS when the client wants it. It
 * never relays: only local recipients are accepted.
 *
 * @example
 * ```ts
 * const mx = await startMx({ ...deps, port: 2526 });
 * console.log(mx.ports[0]);
 * await mx.close();
 * ```
 */
import { type Resolver, SystemResolver } from "../../src/dns.ts";
import { log } from "../../src/log.ts";
import { removeForgedResults, VerdictCache, verifyInbound } from "../../src/smtp/authenticate.ts";
import { classifyRecipient, deliverAll } from "./listener.ts";
import { sessionReceived, smtpError, SmtpServer, transactionId } from "../../src/smtp/server.ts";
import { normaliseLineEndings } from "../../src/mail/line_endings.ts";
import { prependHeader } from "../../src/smtp/received.ts";
import type { SmtpDeps, SmtpListener } from "./types.ts";
import { CachingResolver } from "../../src/dns_cache.ts";

export interface MxOptions extends SmtpDeps {
  port: number;
  /** DNS for SPF/DKIM/DMARC; without one, no Authentication-Results header is added. */
  resolver?: Resolver;
}

/** Starts the MX listener. */
export async function startMx(opts: MxOptions): Promise<SmtpListener> {
  const deps: SmtpDeps = opts;
  // Each message would otherwise look up its sender's SPF and DMARC records afresh. Injected
  // resolvers (tests) stay live, so records they add mid-test are seen.
  const resolver = opts.resolver instanceof SystemResolver
    ? new CachingResolver(opts.resolver)
    : opts.resolver;
  // Verdicts are kept as long as the answers they came from (only with the caching resolver).
  const verdicts = resolver instanceof CachingResolver ? new VerdictCache() : undefined;
  // An MX has no users to authenticate: AUTH is for the submission ports.
  const server = new SmtpServer(deps, {
    name: "mx",
    async rcptTo(to) {
      const kind = await classifyRecipient(deps, to.address, to.rawPath);
      // RFC 5321 §3.6.2 / RFC 5321 §7.1: never an open relay.
      if (kind === "remote") {
        throw smtpError(554, "5.7.1", `relay access denied: ${to.address} is not handled here`);
      }
    },
    async data(message, session) {
      const id = transactionId();
      // RFC 5321 §2.3.8: bare CR and LF are not line endings in SMTP; store CRLF only.
      let raw = normaliseLineEndings(message);
      let verdictHeaders = "";
      if (resolver) {
        raw = removeForgedResults(raw, deps.hostname);
        const verdict = await verifyInbound(raw, {
          ip: session.remoteAddress,
          helo: session.hostNameAppearsAs,
          sender: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
          hostname: deps.hostname,
          resolver,
        }, verdicts);
        if (verdict.dmarcReject) throw smtpError(550, "5.7.1", verdict.dmarcReject);
        verdictHeaders = verdict.headers;
      }
      const recipients = session.envelope.rcptTo.map((r) => r.address);
      // RFC 8601 §5: Authentication-Results goes above the other trace fields (our Received).
      const copyFor = (r: string) =>
        prependHeader(
          verdictHeaders,
          prependHeader(sessionReceived(deps.hostname, session, id, r, false), raw),
        );
      await deliverAll(deps, recipients, copyFor);
      log.info("mx.delivered", { id, recipients: recipients.length, bytes: raw.length });
      return `2.6.0 message ${id} stored`;
    },
  }, { secure: false });
  const port = await server.listen(opts.listen, opts.port);
  return { ports: [port], close: () => server.close() };
}
