/**
 * The IMAP listeners: plain with STARTTLS (RFC 9051 §6.2.1; 143, locally 2143)
 * and implicit TLS (RFC 8314; 993, locally 2993). Each connection gets a
 * framer and a {@linkcode Session}; reading is paused while a command runs
 * and input piles up, so a client that pipelines without end costs bounded
 * memory. Built on node:net/node:tls, which can upgrade a server socket for
 * STARTTLS.
 */
import net from "node:net";
import tls from "node:tls";
import { limits } from "../../src/limits.ts";
import { log } from "../../src/log.ts";
import { SlowInputGuard } from "../../src/slow_input.ts";
import { CommandFramer } from "./framing.ts";
import { Session, type SessionContext, type SessionIo } from "./session.ts";
import type { PausableInput } from "./commands/starttls.ts";

export interface ImapServerOptions extends SessionContext {
  hostname: string;
  listen: string;
  /** Port for plaintext + STARTTLS; 0 picks a free one; null disables. */
  port: number | null;
  /** Port for implicit TLS; 0 picks a free one; null disables. */
  tlsPort: number | null;
  cert?: { certPem: string; keyPem: string };
}

export interface ImapServer {
  port: number | null;
  tlsPort: number | null;
  /** Open sessions (for tests and status). */
  readonly sessions: Set<Session>;
  close(): Promise<void>;
}

const inputHighWater = 1024 * 1024;

/** Starts the IMAP listeners. */
export async function startImapServer(opts: ImapServerOptions): Promise<ImapServer> {
  const secureContext = opts.cert
    ? tls.createSecureContext({ cert: opts.cert.certPem, key: opts.cert.keyPem })
    : null;
  const ctx: SessionContext = { ...opts, tlsAvailable: secureContext !== null };
  const sessions = new Set<Session>();
  const perIp = new Map<string, number>();
  const sockets = new Set<net.Socket>();

  const accept = (socket: net.Socket, secure: boolean) => {
    // Responses end with a short tagged line after a long answer: with Nagle's algorithm on,
    // that line waits for the client's delayed ACK (up to 40 ms on Linux).
    socket.setNoDelay(true);
    const ip = socket.remoteAddress ?? "unknown";
    const count = (perIp.get(ip) ?? 0) + 1;
    if (count > limits.imapConnectionsPerIp || sockets.size >= limits.imapConnections) {
      socket.end("* BYE Too many connections from your address; try again later\r\n");
      return;
    }
    perIp.set(ip, count);
    sockets.add(socket);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      sockets.delete(socket);
      const n = (perIp.get(ip) ?? 1) - 1;
      if (n <= 0) perIp.delete(ip);
      else perIp.set(ip, n);
    };
    socket.on("close", release);
    serveConnection(socket, secure, ctx, secureContext, sessions).catch((e) => {
      log.warn("imap.connection-error", { error: e });
      socket.destroy();
    });
  };

  const servers: net.Server[] = [];
  const listen = (server: net.Server, port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once("error", (e: NodeJS.ErrnoException) => {
        reject(
          e.code === "EADDRINUSE"
            ? new Error(`port ${port} is in use; pass another port or stop the other server`)
            : e,
        );
      });
      server.listen(port, opts.listen, () => resolve((server.address() as net.AddressInfo).port));
    });

  let port: number | null = null;
  let tlsPort: number | null = null;
  if (opts.port !== null) {
    const s = net.createServer((sock) => accept(sock, false));
    servers.push(s);
    port = await listen(s, opts.port);
  }
  if (opts.tlsPort !== null && secureContext) {
    // Deno's node:tls server ignores `secureContext` (the handshake fails with an access_denied
    // alert for want of a certificate): give it the PEMs themselves.
    const s = tls.createServer(
      { cert: opts.cert!.certPem, key: opts.cert!.keyPem },
      (sock) => accept(sock, true),
    );
    s.on("tlsClientError", () => {});
    servers.push(s);
    tlsPort = await listen(s, opts.tlsPort);
  }
  log.info("imap.listening", { port, tlsPort });
  return {
    port,
    tlsPort,
    sessions,
    async close() {
      for (const s of servers) s.close();
      for (const sock of sockets) sock.destroy();
      for (const sess of sessions) sess.close();
      await new Promise((r) => setTimeout(r, 10));
    },
  };
}

async function serveConnection(
  initial: net.Socket,
  secureAtStart: boolean,
  ctx: SessionContext,
  secureContext: tls.SecureContext | null,
  sessions: Set<Session>,
) {
  let socket: net.Socket = initial;
  let secure = secureAtStart;
  let closed = false;
  let busy = false;
  let rawWaiter: ((line: Uint8Array | null) => void) | null = null;
  let inputPaused = false;

  const writeNow = (bytes: Uint8Array) => {
    if (!closed) socket.write(bytes);
  };
  let framer = new CommandFramer({
    onContinuation: () => writeNow(new TextEncoder().encode("+ Ready for literal data\r\n")),
  });

  const io: SessionIo & PausableInput = {
    async write(chunks) {
      for (const c of chunks) {
        if (closed) return;
        if (socket.writableLength > limits.imapOutputBufferBytes) {
          // The client does not read its responses: drop it rather than buffer without end.
          socket.destroy();
          closed = true;
          return;
        }
        // Wait for the client to read only when a lot is queued: waiting at every 16 KB
        // (Node's default high-water mark) ties answering to the client's reading pace.
        if (!socket.write(c) && socket.writableLength > limits.imapWriteQueueBytes) {
          await new Promise<void>((resolve) => {
            const done = () => {
              socket.off("drain", done);
              socket.off("close", done);
              resolve();
            };
            socket.on("drain", done);
            socket.on("close", done);
          });
        }
      }
    },
    pauseInput() {
      // STARTTLS calls this before its tagged OK: the client's ClientHello, sent as soon as it
      // reads the OK, must stay in the socket for the TLS layer instead of reaching the plaintext
      // framer (Deno cannot hand bytes already read back to a TLSSocket).
      socket.pause();
      inputPaused = true;
    },
    startTls() {
      if (!secureContext) return Promise.reject(new Error("no certificate"));
      socket.removeAllListeners("data");
      socket.removeAllListeners("timeout");
      const plain = socket;
      const upgraded = new tls.TLSSocket(plain, { isServer: true, secureContext });
      // Deno 2.9's node:tls does not begin a server-side handshake on an upgraded socket by
      // itself (denoland/deno#31759): the client's ClientHello would sit unanswered.
      (upgraded as unknown as { _start?: () => void })._start?.();
      socket = upgraded;
      secure = true;
      inputPaused = false;
      // RFC 9051 §6.2.1: bytes pipelined after STARTTLS in plaintext are discarded.
      framer = new CommandFramer({
        onContinuation: () => writeNow(new TextEncoder().encode("+ Ready for literal data\r\n")),
      });
      wire(upgraded);
      return new Promise<void>((resolve) => {
        upgraded.once("secure", () => resolve());
        upgraded.once("error", () => resolve());
        upgraded.once("close", () => resolve());
      });
    },
    readRawLine() {
      framer.expectRawLine();
      const ev = framer.next();
      if (ev && ev.type === "line") return Promise.resolve(ev.line);
      if (closed) return Promise.resolve(null);
      return new Promise((resolve) => {
        rawWaiter = resolve;
        socket.resume();
      });
    },
    close() {
      closed = true;
      socket.end();
    },
    get remoteAddress() {
      return initial.remoteAddress ?? "unknown";
    },
    get secure() {
      return secure;
    },
  };

  const session = new Session(ctx, io);
  sessions.add(session);
  // Only while the server waits for the client: input is held back while a command runs.
  const slowInput = new SlowInputGuard(() => {
    if (closed) return;
    closed = true;
    socket.end("* BYE Input too slow; closing the connection\r\n");
  }, () => !busy && !inputPaused);

  const pump = async () => {
    if (busy || closed) return;
    busy = true;
    try {
      while (!closed) {
        const ev = framer.next();
        if (!ev) break;
        if (ev.type === "reject") {
          session.w.status(ev.tag ?? "*", ev.status, ev.text, ev.code);
          await session.flushOutput();
          continue;
        }
        if (ev.type === "line") continue; // a stray raw line: nothing waits for it
        const keep = await session.handleFrame(ev.frame);
        if (!keep) {
          await session.flushOutput();
          closed = true;
          socket.end();
          break;
        }
        if (session.commands >= limits.imapCommandsPerConnection) {
          session.w.status("*", "BYE", "Too many commands on one connection; reconnect");
          await session.flushOutput();
          closed = true;
          socket.end();
          break;
        }
      }
    } finally {
      busy = false;
      if (!closed && !inputPaused) socket.resume();
    }
  };

  const onData = (chunk: Uint8Array) => {
    slowInput.feed(chunk);
    framer.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    if (rawWaiter) {
      const ev = framer.next();
      if (ev && ev.type === "line") {
        const w = rawWaiter;
        rawWaiter = null;
        w(ev.line);
      }
      return;
    }
    if (busy && framer.bufferedBytes > inputHighWater) socket.pause();
    pump();
  };

  function wire(s: net.Socket) {
    s.on("data", onData);
    s.setTimeout(limits.imapPreAuthIdleMs);
    s.on("timeout", () => {
      if (session.state !== "notauth" && s.timeout !== limits.imapIdleMs) {
        s.setTimeout(limits.imapIdleMs);
        return;
      }
      closed = true;
      // A client that stopped reading would keep the socket (and its queued answers) forever.
      if (s.writableLength > 0) s.destroy();
      else s.end("* BYE Autologout; idle for too long\r\n");
    });
  }

  initial.on("error", () => {});
  initial.on("close", () => {
    closed = true;
    slowInput.stop();
    if (rawWaiter) {
      const w = rawWaiter;
      rawWaiter = null;
      w(null);
    }
    session.close();
    sessions.delete(session);
  });
  wire(initial);
  await session.greet();
}
