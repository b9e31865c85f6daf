/**
 * What every SMTP listener of every role shares (home MX and submission, the
 * edge's front): the listener on node:net/node:tls with Hearth's limits
 * (connections in all and per address, an orderly shutdown), and the
 * `Received:` header of a session. The protocol itself is
 * `connection.ts`; each listener brings its handlers.
 *
 * Hearth speaks SMTP with its own code rather than smtp-server: the library's
 * stream layers, one socket write per reply and per-connection set-up cost
 * about 0.5 ms of CPU per message, a quarter of a delivery (docs/smtp.md).
 *
 * @example
 * ```ts
 * const server = new SmtpServer({ hostname, cert }, handlers, { secure: false });
 * const port = await server.listen("127.0.0.1", 0);
 * await server.close();
 * ```
 */
import net from "node:net";
import tls from "node:tls";
import { protocolType, receivedHeader } from "./received.ts";
import { limits } from "../limits.ts";
import { log } from "../log.ts";
import { SmtpConnection, type SmtpHandlers, type SmtpSession } from "./connection.ts";

export { smtpError, toSmtpError } from "./reply.ts";
export type { SmtpAuth, SmtpHandlers, SmtpSession } from "./connection.ts";
export type { EnvelopePath } from "./addresses.ts";

/** The name and certificate a listener presents. */
export interface SmtpIdentity {
  /** Name in the greeting and in `Received:` headers. */
  hostname: string;
  cert: CertificatePem;
}

/** TLS certificate and key, PEM encoded. */
export interface CertificatePem {
  certPem: string;
  keyPem: string;
}

export interface SmtpListenOptions {
  /** Implicit TLS from the first byte (RFC 8314), instead of plaintext with STARTTLS. */
  secure: boolean;
}

/** One SMTP listener: a port, its handlers, and the sessions it has open. */
export class SmtpServer {
  readonly #id: SmtpIdentity;
  readonly #handlers: SmtpHandlers;
  readonly #secure: boolean;
  #context: tls.SecureContext;
  readonly #server: net.Server;
  readonly #connections = new Set<SmtpConnection>();
  readonly #perIp = new Map<string, number>();
  /** Sockets answered 421 at connect, until they close. */
  readonly #refused = new Set<net.Socket>();
  #drained: (() => void) | null = null;

  constructor(id: SmtpIdentity, handlers: SmtpHandlers, opts: SmtpListenOptions) {
    this.#id = id;
    this.#handlers = handlers;
    this.#secure = opts.secure;
    this.#context = tls.createSecureContext({ key: id.cert.keyPem, cert: id.cert.certPem });
    this.#server = opts.secure
      ? tls.createServer({ key: id.cert.keyPem, cert: id.cert.certPem }, (s) => this.#accept(s))
      : net.createServer((s) => this.#accept(s));
    this.#server.on("error", (e: Error) => log.warn("smtp.listener-error", { error: e.message }));
    if (opts.secure) {
      this.#server.on(
        "tlsClientError",
        (e: Error) => log.debug("smtp.tls-handshake-failed", { error: e.message }),
      );
    }
  }

  /** Listens and resolves with the bound port. */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error) =>
        reject(new Error(`cannot listen on ${host}:${port}: ${e.message}`));
      this.#server.once("error", onError);
      this.#server.listen(port, host, () => {
        this.#server.off("error", onError);
        const addr = this.#server.address();
        resolve(typeof addr === "object" && addr ? addr.port : port);
      });
    });
  }

  /** Replaces the certificate for new sessions (an ACME renewal). */
  setCertificate(cert: CertificatePem) {
    this.#context = tls.createSecureContext({ key: cert.keyPem, cert: cert.certPem });
    if (this.#secure) {
      (this.#server as tls.Server).setSecureContext({ key: cert.keyPem, cert: cert.certPem });
    }
  }

  #accept(socket: net.Socket) {
    // Replies are written once per batch; without this each would wait for the client's
    // delayed ACK (about 40 ms on Linux) under Nagle's algorithm.
    socket.setNoDelay(true);
    socket.on("error", () => {});
    const ip = socket.remoteAddress ?? "unknown";
    const n = (this.#perIp.get(ip) ?? 0) + 1;
    if (n > limits.smtpConnectionsPerIp || this.#connections.size >= limits.smtpConnections) {
      // RFC 5321 §3.1: 421 when the service is not available to this client now.
      socket.end(`421 4.7.0 ${this.#id.hostname} Too many connections; try again later\r\n`);
      // A client that never closes its side would keep the socket (and close()) waiting.
      const refused = setTimeout(() => socket.destroy(), 1_000);
      socket.once("close", () => clearTimeout(refused));
      this.#refused.add(socket);
      socket.once("close", () => this.#refused.delete(socket));
      return;
    }
    this.#perIp.set(ip, n);
    const connection = new SmtpConnection(socket, {
      hostname: this.#id.hostname,
      handlers: this.#handlers,
      secureContext: () => this.#secure ? null : this.#context,
      onClose: (c) => {
        this.#connections.delete(c);
        const left = (this.#perIp.get(ip) ?? 1) - 1;
        if (left <= 0) this.#perIp.delete(ip);
        else this.#perIp.set(ip, left);
        if (!this.#connections.size) this.#drained?.();
      },
    });
    this.#connections.add(connection);
  }

  /**
   * Stops listening and ends every session: idle ones at once with `421`,
   * busy ones after their command (a message being stored gets its reply),
   * and any still open after `limits.smtpCloseGraceMs` are cut.
   */
  async close(): Promise<void> {
    const stopped = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    if (this.#connections.size) {
      const drained = new Promise<void>((resolve) => (this.#drained = resolve));
      for (const c of this.#connections) c.shutdown();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const grace = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          for (const c of this.#connections) c.destroy();
          resolve();
        }, limits.smtpCloseGraceMs);
      });
      await Promise.race([drained, grace]);
      clearTimeout(timer);
    }
    for (const socket of this.#refused) socket.destroy();
    await stopped;
  }
}

/** A short transaction id for logs and `Received:`. */
export function transactionId(): string {
  return crypto.randomUUID().replaceAll("-", "").slice(0, 16);
}

/**
 * The `Received:` header (RFC 5321 §4.4) a session's message gets here. With a
 * recipient, it names only that one (each local copy gets its own, so no Bcc
 * recipient is shown to the others); without, none.
 */
export function sessionReceived(
  hostname: string,
  session: SmtpSession,
  id: string,
  recipient: string | undefined,
  authenticated: boolean,
): string {
  const tls = tlsDescription(session);
  return receivedHeader({
    helo: session.hostNameAppearsAs || "unknown",
    clientName: String(session.clientHostname || `[${session.remoteAddress}]`),
    clientIp: session.remoteAddress,
    by: hostname,
    protocol: protocolType(!!tls, authenticated),
    tls,
    id,
    recipient,
    date: new Date(),
  });
}

/** TLS description of a session for `Received:` (version and cipher), or undefined. */
export function tlsDescription(session: SmtpSession): string | undefined {
  const t = session.tlsOptions as { version?: string; name?: string } | false | undefined;
  return t ? [t.version, t.name].filter(Boolean).join(" ") : undefined;
}
