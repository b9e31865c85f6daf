/**
 * A recipient domain's MX for queue tests: smtp-server on a loopback port,
 * recording each accepted message as it arrived (after dot-unstuffing), with
 * a hook that decides each RCPT reply.
 *
 * @example
 * ```ts
 * const mx = await startFakeMx();
 * mx.rcptReply = (to) => to.startsWith("gone@") ? { code: 550, text: "5.1.1 no such user" } : null;
 * // … deliver to 127.0.0.1:mx.port
 * await mx.close();
 * ```
 */
import { SMTPServer } from "smtp-server";
import { Buffer } from "node:buffer";

export interface Received {
  from: string;
  to: string[];
  raw: Uint8Array;
  secure: boolean;
  clientHostname: string;
}

export interface FakeMx {
  port: number;
  received: Received[];
  /** RCPT attempts seen, accepted or not. */
  rcptAttempts: string[];
  /** Reply for a RCPT: null accepts; otherwise `code text` is sent. */
  rcptReply: (to: string, attempt: number) => { code: number; text: string } | null;
  close(): Promise<void>;
}

export interface FakeMxOptions {
  /** Offer STARTTLS (default true, with smtp-server's built-in self-signed certificate). */
  starttls?: boolean;
  /** Certificate and key (PEM) for STARTTLS instead of the built-in one. */
  tls?: { certPem: string; keyPem: string };
}

export async function startFakeMx(opts: FakeMxOptions = {}): Promise<FakeMx> {
  const mx: FakeMx = {
    port: 0,
    received: [],
    rcptAttempts: [],
    rcptReply: () => null,
    close: () => Promise.resolve(),
  };
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: opts.starttls === false ? ["AUTH", "STARTTLS"] : ["AUTH"],
    logger: false,
    ...(opts.tls ? { cert: opts.tls.certPem, key: opts.tls.keyPem } : {}),
    onRcptTo(address, _session, callback) {
      mx.rcptAttempts.push(address.address);
      const n = mx.rcptAttempts.filter((a) => a === address.address).length;
      const reply = mx.rcptReply(address.address, n);
      if (!reply) return callback();
      callback(Object.assign(new Error(reply.text), { responseCode: reply.code }));
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        mx.received.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
          to: session.envelope.rcptTo.map((r) => r.address),
          raw: new Uint8Array(Buffer.concat(chunks)),
          secure: session.secure,
          clientHostname: session.hostNameAppearsAs,
        });
        callback();
      });
    },
  });
  // A client refusing our certificate is an expected outcome of some tests, not a crash.
  server.on("error", () => {});
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  mx.port = (server.server.address() as { port: number }).port;
  mx.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return mx;
}
