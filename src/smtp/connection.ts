/**
 * One SMTP server connection (RFC 5321): reads commands, answers them, and
 * hands each transaction to the listener's handlers. Replies to commands
 * that arrive together (RFC 2920 PIPELINING) leave in one write, once every
 * complete command read so far has been answered. STARTTLS (RFC 3207)
 * discards what followed it in plaintext; AUTH PLAIN and LOGIN (RFC 4954)
 * are offered only where the listener allows them.
 *
 * @example
 * ```ts
 * new SmtpConnection(socket, { hostname, handlers, secureContext: () => ctx, onClose });
 * ```
 */
import { Buffer } from "node:buffer";
import type net from "node:net";
import tls from "node:tls";
import { limits } from "../limits.ts";
import { log } from "../log.ts";
import { SlowInputGuard } from "../slow_input.ts";
import { type EnvelopePath, parseEnvelopePath } from "./addresses.ts";
import { DataReader } from "./data_reader.ts";
import { toSmtpError } from "./reply.ts";

/** What the handlers see of a session. */
export interface SmtpSession {
  /** A random id, in logs. */
  readonly id: string;
  readonly remoteAddress: string;
  /** `[ip]`: no reverse lookup is made (it could stall every connection on a slow resolver). */
  readonly clientHostname: string;
  /** The name the client gave in EHLO or HELO. */
  hostNameAppearsAs: string;
  /** TLS version and cipher once TLS is on, else false. */
  tlsOptions: { version?: string; name?: string } | false;
  /** The authenticated user (submission), else undefined. */
  user?: string;
  envelope: { mailFrom: EnvelopePath | false; rcptTo: EnvelopePath[] };
}

/** AUTH on a listener (submission). */
export interface SmtpAuth {
  /** Allow AUTH without TLS (loopback tests only; RFC 4954 §4 forbids it otherwise). */
  allowPlaintext?: boolean;
  /** Checks credentials: resolves with the user, or throws an `smtpError` (421 also closes). */
  login(username: string, password: string, session: SmtpSession): Promise<string>;
}

/** A listener's part of a transaction. Thrown errors become replies (`toSmtpError`). */
export interface SmtpHandlers {
  /** Name for logs: "mx", "submission", "edge". */
  name: string;
  /** Offer AUTH PLAIN and LOGIN, and require it before MAIL. */
  auth?: SmtpAuth;
  mailFrom?(from: EnvelopePath, session: SmtpSession): void | Promise<void>;
  rcptTo(to: EnvelopePath, session: SmtpSession): Promise<void>;
  /** Takes the message; resolves with the text after `250 ` once it is durable. */
  data(raw: Uint8Array, session: SmtpSession): Promise<string>;
  close?(session: SmtpSession): void;
}

export interface ConnectionContext {
  hostname: string;
  handlers: SmtpHandlers;
  /** The STARTTLS context, or null when STARTTLS is not offered (implicit TLS, no certificate). */
  secureContext(): tls.SecureContext | null;
  onClose(connection: SmtpConnection): void;
}

/** Longest command line: RFC 4954 §4 asks for 12,288 octets for AUTH; others are far shorter. */
const maxLine = 12_288 + 64;
/** Input kept while a command runs before reading pauses. */
const inputHighWater = 256 * 1024;
const LF = 0x0a;

/** RFC 1870 §6.3 and RFC 3463 §3.4: the reply to a message over the limit, declared or not. */
function tooLargeReply(): string {
  return `552 5.3.4 Message is larger than the limit of ${limits.messageBytes} bytes`;
}

type Mode = "command" | "data" | "bdat" | "skip-line" | "closed";

/** A message sent with BDAT (RFC 3030 CHUNKING), chunk by chunk, in one transaction. */
interface Chunked {
  parts: Uint8Array[];
  size: number;
}

/** The BDAT chunk being read: its octets still to come, and what its reply will be. */
interface Chunk {
  remaining: number;
  size: number;
  last: boolean;
  /** The refusal to answer once its octets are read and discarded (no transaction, say). */
  refusal: string | null;
}
type AuthStep = (line: string) => Promise<void>;

export class SmtpConnection {
  readonly session: SmtpSession;
  #socket: net.Socket;
  readonly #ctx: ConnectionContext;
  #mode: Mode = "command";
  #input: Buffer = Buffer.alloc(0);
  #out = "";
  #busy = false;
  #ehlo = false;
  #reader: DataReader | null = null;
  /** The BDAT message of the open transaction, and the chunk being read. */
  #chunked: Chunked | null = null;
  #chunk: Chunk | null = null;
  #authStep: AuthStep | null = null;
  #unauthenticated = 0;
  #closing = false;
  #gone = false;
  readonly #slowInput: SlowInputGuard;

  constructor(socket: net.Socket, ctx: ConnectionContext) {
    this.#socket = socket;
    this.#ctx = ctx;
    const ip = socket.remoteAddress ?? "unknown";
    this.session = {
      id: crypto.randomUUID().replaceAll("-", "").slice(0, 12),
      remoteAddress: ip,
      clientHostname: `[${ip}]`,
      hostNameAppearsAs: "",
      tlsOptions: tlsOf(socket),
      envelope: { mailFrom: false, rcptTo: [] },
    };
    this.#slowInput = new SlowInputGuard(
      () => this.#end("421 4.4.2 Input too slow; closing the connection"),
      () => !this.#busy,
    );
    this.#wire(socket);
    socket.on("close", () => this.#closed());
    this.#send(`220 ${ctx.hostname} ESMTP Hearth`);
    this.#flush();
  }

  /** True while a command is being handled (shutdown waits for it). */
  get busy(): boolean {
    return this.#busy;
  }

  /** Ends the session for a shutdown: at once when idle, after the running command otherwise. */
  shutdown() {
    this.#closing = true;
    if (!this.#busy) this.#end("421 4.3.2 Service shutting down; try again later");
  }

  destroy() {
    this.#socket.destroy();
  }

  #wire(socket: net.Socket) {
    socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    socket.on("error", () => {});
    socket.setTimeout(limits.smtpIdleMs);
    socket.on("timeout", () => {
      if (this.#busy) return;
      // RFC 5321 §4.5.3.2.7 timeouts; a client that stopped reading gets no polite end.
      if (socket.writableLength > 0) socket.destroy();
      else this.#end("421 4.4.2 Idle for too long; closing the connection");
    });
  }

  #onData(chunk: Buffer) {
    if (this.#mode === "closed") return;
    this.#slowInput.feed(chunk);
    this.#input = this.#input.length ? Buffer.concat([this.#input, chunk]) : chunk;
    if (this.#busy) {
      if (this.#input.length > inputHighWater) this.#socket.pause();
      return;
    }
    this.#pump();
  }

  /** Handles every complete command (or data) in the input, then sends the replies together. */
  async #pump() {
    if (this.#busy) return;
    this.#busy = true;
    try {
      while (this.#mode !== "closed" && this.#input.length) {
        if (this.#mode === "data") {
          // Synchronous until the final dot: input that arrives during an await is seen by
          // the loop's condition, never left waiting for a next chunk that may not come.
          const reader = this.#reader!;
          this.#input = this.#input.subarray(reader.feed(this.#input));
          if (!reader.done) break;
          await this.#endData(reader);
          continue;
        }
        if (this.#mode === "bdat") {
          // RFC 3030 §2: exactly the announced octets follow the BDAT line, with no
          // transparency dots and no terminator; a refused chunk is read all the same.
          const chunk = this.#chunk!;
          const take = Math.min(chunk.remaining, this.#input.length);
          if (!chunk.refusal && this.#chunked) {
            this.#chunked.parts.push(this.#input.subarray(0, take));
          }
          this.#input = this.#input.subarray(take);
          chunk.remaining -= take;
          if (chunk.remaining > 0) break;
          await this.#endChunk(chunk);
          continue;
        }
        const lf = this.#input.indexOf(LF);
        if (lf < 0) {
          if (this.#input.length > maxLine) {
            this.#mode = "skip-line";
            this.#input = Buffer.alloc(0);
          }
          break;
        }
        const bytes = this.#input.subarray(0, lf);
        this.#input = this.#input.subarray(lf + 1);
        if (this.#mode === "skip-line" || bytes.length > maxLine) {
          this.#mode = "command";
          this.#send("500 5.5.2 Line too long");
          continue;
        }
        let line = bytes.toString("utf8");
        if (line.endsWith("\r")) line = line.slice(0, -1);
        if (this.#authStep) {
          const step = this.#authStep;
          this.#authStep = null;
          await step(line);
        } else {
          await this.#command(line);
        }
      }
    } catch (e) {
      log.error("smtp.session-error", { listener: this.#ctx.handlers.name, error: e });
      this.#end("421 4.3.0 Local error; closing the connection");
    } finally {
      this.#busy = false;
      this.#flush();
      if (this.#closing) this.#end("421 4.3.2 Service shutting down; try again later");
      else if (this.#mode !== "closed") this.#socket.resume();
    }
  }

  async #endData(reader: DataReader) {
    this.#reader = null;
    this.#mode = "command";
    if (reader.tooLarge) {
      // RFC 1870 §6.3 and RFC 3463 §3.4, whether or not the client declared a SIZE.
      this.#send(tooLargeReply());
    } else {
      try {
        const text = await this.#ctx.handlers.data(reader.message(), this.session);
        this.#send(`250 ${text}`);
      } catch (e) {
        this.#refuse(e, "data");
      }
    }
    this.#resetTransaction();
  }

  async #command(line: string) {
    const space = line.indexOf(" ");
    const verb = (space < 0 ? line : line.slice(0, space)).toUpperCase();
    const arg = space < 0 ? "" : line.slice(space + 1).trim();
    const auth = this.#ctx.handlers.auth;
    if (auth && !this.session.user) {
      this.#unauthenticated++;
      if (this.#unauthenticated > limits.smtpUnauthenticatedCommands) {
        return this.#end("421 4.7.0 Too many commands before authentication; closing");
      }
    }
    switch (verb) {
      case "EHLO":
      case "HELO":
        return this.#hello(verb, arg);
      case "MAIL":
        return await this.#mail(arg);
      case "RCPT":
        return await this.#rcpt(arg);
      case "DATA":
        return this.#data(arg);
      case "BDAT":
        return await this.#bdat(arg);
      case "RSET":
        this.#resetTransaction();
        return this.#send("250 2.0.0 Reset");
      case "NOOP":
        return this.#send("250 2.0.0 OK");
      case "QUIT":
        return this.#end(`221 2.0.0 ${this.#ctx.hostname} closing the connection`);
      case "VRFY":
        // RFC 5321 §3.5.3: 252 when the server will not say whether a user exists.
        return this.#send("252 2.1.5 Cannot verify the user; send the message and see");
      case "HELP":
        return this.#send(
          "214 2.0.0 See RFC 5321; commands: EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT",
        );
      case "STARTTLS":
        return this.#startTls(arg);
      case "AUTH":
        if (auth) return await this.#auth(auth, arg);
        break;
    }
    this.#send("500 5.5.2 Command not recognised");
  }

  #hello(verb: string, arg: string) {
    if (!arg) return this.#send(`501 5.5.4 ${verb} needs the client's domain name`);
    // RFC 5321 §4.1.4: EHLO and HELO also reset the transaction.
    this.#resetTransaction();
    this.session.hostNameAppearsAs = arg.split(" ")[0];
    this.#ehlo = true;
    const greeting = `${this.#ctx.hostname} greets ${this.session.clientHostname}`;
    if (verb === "HELO") return this.#send(`250 ${greeting}`);
    const lines = [
      greeting,
      "PIPELINING", // RFC 2920
      "8BITMIME", // RFC 6152
      "SMTPUTF8", // RFC 6531
      "ENHANCEDSTATUSCODES", // RFC 2034
      "CHUNKING", // RFC 3030
    ];
    // RFC 4954 §4: no AUTH offered where credentials would cross in plaintext.
    const auth = this.#ctx.handlers.auth;
    if (auth && (this.session.tlsOptions || auth.allowPlaintext)) lines.push("AUTH PLAIN LOGIN");
    if (!this.session.tlsOptions && this.#ctx.secureContext()) lines.push("STARTTLS"); // RFC 3207
    lines.push(`SIZE ${limits.messageBytes}`); // RFC 1870
    this.#send(lines.map((l, i) => `250${i === lines.length - 1 ? " " : "-"}${l}`).join("\r\n"));
  }

  async #mail(arg: string) {
    if (!this.#ehlo) return this.#send("503 5.5.1 Send EHLO or HELO first");
    if (this.#ctx.handlers.auth && !this.session.user) {
      return this.#send("530 5.7.0 Authentication required");
    }
    if (this.session.envelope.mailFrom) {
      return this.#send("503 5.5.1 A transaction is already open; send RSET first");
    }
    const m = /^FROM:(.*)$/i.exec(arg);
    if (!m) return this.#send("501 5.5.4 Syntax: MAIL FROM:<address>");
    const path = parseEnvelopePath(m[1]);
    if (typeof path === "string") return this.#send(`501 5.1.7 Bad sender address: ${path}`);
    const problem = this.#paramProblem(path, true);
    if (problem) return this.#send(problem);
    try {
      await this.#ctx.handlers.mailFrom?.(path, this.session);
      this.session.envelope.mailFrom = path;
      this.#send("250 2.1.0 Sender OK");
    } catch (e) {
      this.#refuse(e, "mail");
    }
  }

  /** RFC 1870 SIZE, RFC 6152 BODY, RFC 6531 SMTPUTF8; anything else is not offered (555). */
  #paramProblem(path: EnvelopePath, mail: boolean): string | null {
    for (const [key, value] of Object.entries(path.params)) {
      if (mail && key === "SIZE") {
        if (typeof value !== "string" || !/^\d{1,20}$/.test(value)) {
          return "501 5.5.4 SIZE needs a number";
        }
        if (Number(value) > limits.messageBytes) {
          return tooLargeReply();
        }
      } else if (mail && key === "BODY") {
        if (typeof value !== "string" || !/^(7BIT|8BITMIME)$/i.test(value)) {
          return "501 5.5.4 BODY must be 7BIT or 8BITMIME";
        }
      } else if (mail && key === "SMTPUTF8") {
        if (value !== true) return "501 5.5.4 SMTPUTF8 takes no value";
      } else if (mail && key === "AUTH" && this.#ctx.handlers.auth) {
        // RFC 4954 §5: the optional AUTH= parameter; the session's own login is what counts.
      } else {
        return `555 5.5.4 Parameter ${key} is not supported`;
      }
    }
    // RFC 6531 §3.4: an internationalised address needs SMTPUTF8 on MAIL.
    const utf8 = mail ? path.params.SMTPUTF8 : (this.session.envelope.mailFrom as EnvelopePath)
      .params.SMTPUTF8;
    // deno-lint-ignore no-control-regex
    if (!utf8 && /[^\x00-\x7f]/.test(path.address)) {
      return "553 5.6.7 A non-ASCII address needs the SMTPUTF8 parameter on MAIL";
    }
    return null;
  }

  async #rcpt(arg: string) {
    if (!this.session.envelope.mailFrom) return this.#send("503 5.5.1 Send MAIL first");
    const m = /^TO:(.*)$/i.exec(arg);
    if (!m) return this.#send("501 5.5.4 Syntax: RCPT TO:<address>");
    const path = parseEnvelopePath(m[1]);
    if (typeof path === "string") return this.#send(`501 5.1.3 Bad recipient address: ${path}`);
    if (!path.address) return this.#send("501 5.1.3 The null path is not a recipient");
    const problem = this.#paramProblem(path, false);
    if (problem) return this.#send(problem);
    const list = this.session.envelope.rcptTo;
    const same = list.findIndex((r) => r.address.toLowerCase() === path.address.toLowerCase());
    if (same < 0 && list.length >= limits.smtpRecipients) {
      // RFC 5321 §4.5.3.1.10: 452 for too many recipients; the client sends the rest later.
      return this.#send("452 4.5.3 Too many recipients in one transaction");
    }
    try {
      await this.#ctx.handlers.rcptTo(path, this.session);
      // One copy per mailbox, however often it is named (To and Bcc alike).
      if (same >= 0) list.splice(same, 1);
      list.push(path);
      this.#send("250 2.1.5 Recipient OK");
    } catch (e) {
      this.#refuse(e, "rcpt");
    }
  }

  #data(arg: string) {
    if (arg) return this.#send("501 5.5.4 DATA takes no argument");
    // RFC 3030 §2: DATA and BDAT cannot be mixed in one transaction.
    if (this.#chunked) return this.#send("503 5.5.1 BDAT already started this message");
    if (!this.session.envelope.mailFrom) return this.#send("503 5.5.1 Send MAIL first");
    if (!this.session.envelope.rcptTo.length) {
      return this.#send("503 5.5.1 No valid recipients");
    }
    this.#reader = new DataReader(limits.messageBytes);
    this.#mode = "data";
    this.#send("354 End data with <CR><LF>.<CR><LF>");
  }

  /** BDAT size [LAST] (RFC 3030 §2): its octets follow the command line. */
  async #bdat(arg: string) {
    const m = /^(\d{1,15})(?: +(LAST))?$/i.exec(arg);
    if (!m) {
      // Without a size there is no telling where the chunk ends: its octets would be read as
      // commands. The session ends instead.
      return this.#end("421 4.5.4 Syntax: BDAT size [LAST]; closing the connection");
    }
    const size = Number(m[1]);
    const chunk: Chunk = { remaining: size, size, last: m[2] !== undefined, refusal: null };
    if (!this.session.envelope.mailFrom) chunk.refusal = "503 5.5.1 Send MAIL first";
    else if (!this.session.envelope.rcptTo.length) chunk.refusal = "503 5.5.1 No valid recipients";
    else {
      this.#chunked ??= { parts: [], size: 0 };
      this.#chunked.size += size;
      if (this.#chunked.size > limits.messageBytes) {
        // The transaction's later chunks are refused and discarded too.
        chunk.refusal = tooLargeReply();
        this.#chunked.parts = [];
      }
    }
    this.#chunk = chunk;
    this.#mode = "bdat";
    if (size === 0) await this.#endChunk(chunk);
  }

  async #endChunk(chunk: Chunk) {
    this.#chunk = null;
    this.#mode = "command";
    const message = this.#chunked;
    // A chunk that takes the message past the limit was refused when announced (#bdat).
    if (chunk.refusal) {
      this.#send(chunk.refusal);
      // A refused last chunk ends the transaction's message (RFC 3030 §3: the client sends RSET
      // after a failure; a new transaction starts clean either way).
      if (chunk.last && message) this.#resetTransaction();
      return;
    }
    if (!chunk.last) return this.#send(`250 2.0.0 ${chunk.size} octets received`);
    const raw = message!.parts.length === 1
      ? message!.parts[0]
      : Buffer.concat(message!.parts, message!.size);
    try {
      const text = await this.#ctx.handlers.data(raw, this.session);
      this.#send(`250 ${text}`);
    } catch (e) {
      this.#refuse(e, "data");
    }
    this.#resetTransaction();
  }

  #startTls(arg: string) {
    const secureContext = this.#ctx.secureContext();
    if (arg) return this.#send("501 5.5.4 STARTTLS takes no argument");
    if (this.session.tlsOptions) return this.#send("503 5.5.1 TLS is already on");
    if (!secureContext) return this.#send("454 4.7.0 TLS is not available");
    // The client's ClientHello may follow the 220 at once: no plaintext reader may take it.
    const plain = this.#socket;
    plain.pause();
    plain.removeAllListeners("data");
    plain.removeAllListeners("timeout");
    this.#send("220 2.0.0 Ready to start TLS");
    this.#flush();
    // RFC 3207 §4.2 and §6: whatever the client pipelined after STARTTLS is discarded, and the
    // session starts over (a new EHLO, no transaction).
    this.#input = Buffer.alloc(0);
    this.#resetTransaction();
    this.#ehlo = false;
    const upgraded = new tls.TLSSocket(plain, { isServer: true, secureContext });
    // Deno 2.9's node:tls does not begin a server-side handshake on an upgraded socket by
    // itself (denoland/deno#31759), as in home/imap/server.ts.
    (upgraded as unknown as { _start?: () => void })._start?.();
    upgraded.setNoDelay(true);
    this.#socket = upgraded;
    upgraded.once("secure", () => {
      this.session.tlsOptions = tlsOf(upgraded);
    });
    this.#wire(upgraded);
  }

  async #auth(auth: SmtpAuth, arg: string) {
    if (!this.#ehlo) return this.#send("503 5.5.1 Send EHLO first");
    if (this.session.user) return this.#send("503 5.5.1 Already authenticated");
    if (this.session.envelope.mailFrom) return this.#send("503 5.5.1 Not during a transaction");
    if (!this.session.tlsOptions && !auth.allowPlaintext) {
      // RFC 4954 §4: credentials only over an encrypted channel.
      return this.#send("538 5.7.11 Encryption required: use STARTTLS first");
    }
    const [mechanism, initial] = arg.split(" ");
    const mech = (mechanism ?? "").toUpperCase();
    if (mech === "PLAIN") {
      if (initial !== undefined) return await this.#plain(auth, initial);
      this.#send("334 ");
      this.#authStep = (line) => this.#plain(auth, line);
      return;
    }
    if (mech === "LOGIN") {
      const password = (user: string) => {
        this.#send("334 UGFzc3dvcmQ6"); // "Password:"
        this.#authStep = async (line) => {
          const pass = decode64(line);
          if (pass === null) return this.#authFailed(line);
          await this.#login(auth, user, pass);
        };
      };
      if (initial !== undefined) {
        const user = decode64(initial);
        return user === null ? this.#authFailed(initial) : password(user);
      }
      this.#send("334 VXNlcm5hbWU6"); // "Username:"
      this.#authStep = (line) => {
        const user = decode64(line);
        if (user === null) this.#authFailed(line);
        else password(user);
        return Promise.resolve();
      };
      return;
    }
    this.#send("504 5.5.4 Unrecognised authentication type; use PLAIN or LOGIN");
  }

  async #plain(auth: SmtpAuth, response: string) {
    const text = decode64(response);
    if (text === null) return this.#authFailed(response);
    // RFC 4616 §2: [authzid] NUL authcid NUL passwd.
    const parts = text.split("\0");
    if (parts.length !== 3) return this.#send("501 5.5.2 Malformed PLAIN response");
    await this.#login(auth, parts[1], parts[2]);
  }

  #authFailed(line: string) {
    // RFC 4954 §4: "*" cancels the exchange.
    if (line === "*") return this.#send("501 5.0.0 Authentication cancelled");
    this.#send("501 5.5.2 Cannot decode the response");
  }

  async #login(auth: SmtpAuth, user: string, password: string) {
    try {
      this.session.user = await auth.login(user, password, this.session);
      this.#send("235 2.7.0 Authentication successful");
    } catch (e) {
      this.#refuse(e, "auth");
    }
  }

  /** Sends the reply a handler's error asks for; a 421 also ends the session (RFC 5321 §3.8). */
  #refuse(e: unknown, stage: string) {
    const err = toSmtpError(e, `${this.#ctx.handlers.name}.${stage}`) as Error & {
      responseCode: number;
    };
    const reply = `${err.responseCode} ${err.message}`;
    if (err.responseCode === 421) this.#end(reply);
    else this.#send(reply);
  }

  #resetTransaction() {
    this.session.envelope = { mailFrom: false, rcptTo: [] };
    this.#chunked = null;
  }

  #send(reply: string) {
    this.#out += reply + "\r\n";
  }

  #flush() {
    if (!this.#out || this.#mode === "closed" && this.#socket.writableEnded) return;
    this.#socket.write(this.#out);
    this.#out = "";
  }

  /** Sends the last reply and closes. */
  #end(reply: string) {
    if (this.#mode === "closed") return;
    this.#send(reply);
    this.#flush();
    this.#mode = "closed";
    this.#input = Buffer.alloc(0);
    const socket = this.#socket;
    // Once the last reply is with the kernel, close at once: closing sends it and then FIN. Left
    // open, the socket waits for the client's close, which is often a reset that the stream
    // layer turns into an error object with a stack: a measurable cost on every connection.
    // Under TLS the record layer may still hold it: end() flushes and closes properly.
    if (!this.session.tlsOptions && socket.writableLength === 0) socket.destroy();
    else socket.end();
  }

  #closed() {
    if (this.#gone) return;
    this.#gone = true;
    this.#mode = "closed";
    this.#slowInput.stop();
    this.#ctx.handlers.close?.(this.session);
    this.#ctx.onClose(this);
  }
}

/** Base64 text to a string (UTF-8), or null when it is not base64. "=" is the empty response. */
function decode64(text: string): string | null {
  const t = text.trim();
  if (t === "=") return "";
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(t) || t.length % 4 !== 0) return null;
  return Buffer.from(t, "base64").toString("utf8");
}

function tlsOf(socket: net.Socket): SmtpSession["tlsOptions"] {
  const t = socket as tls.TLSSocket;
  if (!t.encrypted || typeof t.getCipher !== "function") return false;
  const cipher = t.getCipher();
  return { version: t.getProtocol?.() ?? cipher?.version, name: cipher?.name };
}
