/**
 * What every SMTP listener of every role shares (home MX and submission, the
 * edge's front): smtp-server set up with Hearth's limits, replies carrying
 * the enhanced status code we choose (RFC 3463), per-address connection
 * limits, message reading with the size limit, and `Received:` headers.
 *
 * @example
 * ```ts
 * const server = makeSmtpServer({ hostname, cert }, { secure: false });
 * const port = await listenOn(server, "127.0.0.1", 0);
 * ```
 */
import { protocolType, receivedHeader } from "./received.ts";
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from "smtp-server";
import { SMTPConnection } from "smtp-server/lib/smtp-connection.js";
import type { Readable } from "node:stream";
import { isDiskFull, ProtocolError } from "../errors.ts";
import { limits } from "../limits.ts";
import { log } from "../log.ts";
import { SlowInputGuard } from "../slow_input.ts";

/** An error for smtp-server's callbacks: `code enhanced text` on the wire. */
export function smtpError(code: number, enhanced: string, text: string): Error {
  const err = new Error(`${enhanced} ${text}`) as Error & { responseCode: number };
  err.responseCode = code;
  return err;
}

/** Turns any failure into an SMTP reply; internals never reach the wire. */
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

/** smtp-server's connection object: the parts of its private API we use (see patchConnection). */
interface ConnectionInternals {
  id: string;
  send(code: number, data: unknown, context?: unknown): void;
  _parseAddressCommand(name: string, command: unknown): Record<string, unknown> | false;
}

const enhancedPrefix = /^([245]\.\d{1,3}\.\d{1,3}) /;

/**
 * Adjusts one smtp-server connection: (1) a reply text that starts with an
 * enhanced status code is sent with that code instead of the library's
 * generic one for the reply code (it maps 554 to 5.6.0, we need 5.7.1);
 * (2) the path as the client wrote it is kept, because the library strips
 * source routes before the handlers see the address.
 */
interface ConnectionInit {
  _parser: { write(chunk: Uint8Array, ...rest: unknown[]): boolean } | false;
  _createParser(): { write(chunk: Uint8Array, ...rest: unknown[]): boolean };
  _handlerPending: boolean;
  _onClose(): void;
  send(code: number, data: unknown): void;
  close(): void;
  connectionReady(next?: () => void): void;
  _setListeners(callback: () => void): void;
  init(): void;
  on(event: string, listener: (arg: unknown) => void): void;
}

/**
 * smtp-server waits 100 ms before its greeting to catch clients that talk too
 * soon. With one message per connection that pause caps a sender at ten
 * messages a second; Postfix's smtpd has no such pause (its postscreen does,
 * as an opt-in). This replaces smtp-server 3.21's `connect` (same steps) so
 * the greeting goes out as soon as the connection is set up.
 */
function greetWithoutPause(server: SMTPServer) {
  const internals = server as unknown as {
    connections: Set<unknown>;
    _onError(err: unknown): void;
    _onClientConnect(data: unknown): void;
    connect(socket: unknown, options: unknown): void;
  };
  internals.connect = function (socket: unknown, options: unknown) {
    const connection = new SMTPConnection(
      server,
      socket as never,
      options as never,
    ) as unknown as ConnectionInit;
    internals.connections.add(connection);
    connection.on("error", (err) => internals._onError(err));
    connection.on("connect", (data) => internals._onClientConnect(data));
    const ready = connection.connectionReady.bind(connection);
    let started = false;
    // The library's own 100 ms timer still fires; it finds the session started.
    connection.connectionReady = (next) => {
      if (started) return;
      started = true;
      ready(next);
    };
    const setListeners = connection._setListeners.bind(connection);
    connection._setListeners = (callback) =>
      setListeners(() => {
        callback();
        connection.connectionReady();
      });
    guardSlowInput(connection);
    connection.init();
  };
}

/**
 * Watches what reaches the command parser (plaintext, or decrypted after
 * STARTTLS: the parser is made anew then) for a client that trickles bytes.
 */
function guardSlowInput(connection: ConnectionInit) {
  const guard = new SlowInputGuard(() => {
    connection.send(421, "4.4.2 Input too slow; closing the connection");
    connection.close();
  }, () => !connection._handlerPending);
  const watch = <P extends { write(chunk: Uint8Array, ...rest: unknown[]): boolean }>(p: P) => {
    const write = p.write.bind(p);
    p.write = (chunk, ...rest) => {
      guard.feed(chunk);
      return write(chunk, ...rest);
    };
    return p;
  };
  if (connection._parser) watch(connection._parser);
  const create = connection._createParser.bind(connection);
  connection._createParser = () => watch(create());
  const onClose = connection._onClose.bind(connection);
  connection._onClose = () => {
    guard.stop();
    onClose();
  };
}

function patchConnection(server: SMTPServer, session: SMTPServerSession) {
  const connections = (server as unknown as { connections: Set<ConnectionInternals> }).connections;
  for (const conn of connections) {
    if (conn.id !== session.id) continue;
    const send = conn.send.bind(conn);
    conn.send = (code, data, context) => {
      if (typeof data === "string" && enhancedPrefix.test(data)) return send(code, data, false);
      send(code, data, context);
    };
    const parse = conn._parseAddressCommand.bind(conn);
    conn._parseAddressCommand = (name, command) => {
      const parsed = parse(name, command);
      if (parsed) {
        const text = String(command ?? "");
        parsed.rawPath = text.slice(text.indexOf(":") + 1).trim().split(/\s+/)[0];
      }
      return parsed;
    };
  }
}

/** The path as written by the client (`<@a:b@c>`), set by patchConnection. */
export function rawPathOf(address: unknown): string | undefined {
  const raw = (address as { rawPath?: unknown }).rawPath;
  return typeof raw === "string" ? raw : undefined;
}

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

/** Makes an smtp-server with Hearth's limits and reply handling, plus the listener's own options. */
export function makeSmtpServer(id: SmtpIdentity, extra: SMTPServerOptions): SMTPServer {
  const perIp = new Map<string, number>();
  const counted = new Set<string>();
  const server: SMTPServer = new SMTPServer({
    name: id.hostname,
    banner: "Hearth ESMTP",
    key: id.cert.keyPem,
    cert: id.cert.certPem,
    logger: false,
    // RFC 1870 SIZE, RFC 2034 ENHANCEDSTATUSCODES; PIPELINING, 8BITMIME, SMTPUTF8 are on by default.
    size: limits.messageBytes,
    hideENHANCEDSTATUSCODES: false,
    hideSize: false,
    maxClients: limits.smtpConnections,
    maxRecipients: limits.smtpRecipients,
    socketTimeout: limits.smtpIdleMs,
    closeTimeout: limits.smtpCloseGraceMs,
    // smtp-server looks up every client's PTR record before the greeting, with no time limit;
    // a slow resolver then stalls every connection. Received carries the IP address instead.
    disableReverseLookup: true,
    ...extra,
    onConnect(session, callback) {
      // One address may not hold more than its share of the connections (limits.ts).
      const ip = session.remoteAddress;
      const n = (perIp.get(ip) ?? 0) + 1;
      if (n > limits.smtpConnectionsPerIp) {
        const err = new Error("Too many connections from your address; try again later");
        return callback(Object.assign(err, { responseCode: 421 }));
      }
      perIp.set(ip, n);
      counted.add(session.id);
      patchConnection(server, session);
      callback();
    },
    onClose(session, callback) {
      if (counted.delete(session.id)) {
        const ip = session.remoteAddress;
        const n = (perIp.get(ip) ?? 1) - 1;
        if (n <= 0) perIp.delete(ip);
        else perIp.set(ip, n);
      }
      if (extra.onClose) extra.onClose(session, callback);
      else callback?.();
    },
  });
  server.on("error", (e: Error) => log.warn("smtp.connection-error", { error: e.message }));
  greetWithoutPause(server);
  // Replies go out as several small writes (EHLO's lines, then the next reply): with Nagle's
  // algorithm on, each waits for the client's delayed ACK, about 40 ms on Linux.
  const tcp = (server as unknown as { server?: { on(e: string, f: (s: unknown) => void): void } })
    .server;
  tcp?.on(
    "connection",
    (socket) => (socket as { setNoDelay?(v: boolean): void }).setNoDelay?.(true),
  );
  tcp?.on(
    "secureConnection",
    (socket) => (socket as { setNoDelay?(v: boolean): void }).setNoDelay?.(true),
  );
  return server;
}

/** Listens and resolves with the bound port. */
export function listenOn(server: SMTPServer, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error) =>
      reject(new Error(`cannot listen on ${host}:${port}: ${e.message}`));
    server.server.once("error", onError);
    server.listen(port, host, () => {
      server.server.off("error", onError);
      const addr = server.server.address();
      resolve(typeof addr === "object" && addr ? addr.port : port);
    });
  });
}

export function closeServer(server: SMTPServer): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/**
 * Reads DATA. The limit is enforced whether or not the client sent SIZE:
 * smtp-server only marks `sizeExceeded`, so past the limit we stop keeping
 * bytes and refuse with `552 5.3.4` (RFC 1870 §6.3, RFC 3463 §3.4).
 */
export async function readMessage(stream: Readable): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of stream as AsyncIterable<Uint8Array>) {
    total += chunk.length;
    if (total <= limits.messageBytes) chunks.push(chunk);
  }
  if ((stream as { sizeExceeded?: boolean }).sizeExceeded || total > limits.messageBytes) {
    throw smtpError(
      552,
      "5.3.4",
      `message is larger than the limit of ${limits.messageBytes} bytes`,
    );
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
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
  session: SMTPServerSession,
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
export function tlsDescription(session: SMTPServerSession): string | undefined {
  const t = session.tlsOptions as { version?: string; name?: string } | false | undefined;
  return t ? [t.version, t.name].filter(Boolean).join(" ") : undefined;
}
