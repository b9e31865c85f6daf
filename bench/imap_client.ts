/**
 * A minimal raw IMAP client for benchmarking: it frames responses exactly (literals are read by
 * byte count, never by pattern) and times each command from the first byte written to the tagged
 * response. It does not parse response contents beyond what the benchmark needs.
 *
 * @example
 * ```ts
 * const client = await ImapClient.connect({ host: "127.0.0.1", port: 2143 });
 * await client.login("me@hearth.localhost", "secret");
 * const r = await client.command("SELECT INBOX");
 * console.log(r.status, r.ms);
 * await client.logout();
 * ```
 */

export interface ConnectOptions {
  host: string;
  port: number;
  /** "none" (default): plaintext; "starttls": upgrade before login; "implicit": TLS from the start. */
  tls?: "none" | "starttls" | "implicit";
  /** PEM CA certificates to trust (for a private CA such as the one `hearth init` makes). */
  caCerts?: string[];
  /** Name to verify in the server certificate (default: host). */
  serverName?: string;
}

/** One complete server response: its text, with literal payloads kept apart. */
export interface ImapResponse {
  /** The response line(s), with each literal's `{N}` marker left in place. */
  text: string;
  /** Literal payloads, in order. */
  literals: Uint8Array[];
}

export interface CommandResult {
  tag: string;
  /** OK, NO or BAD. */
  status: string;
  /** The tagged response line. */
  tagged: string;
  /** Untagged responses (only when `collect` was set, otherwise empty). */
  untagged: ImapResponse[];
  /** Number of untagged responses received. */
  untaggedCount: number;
  /** Bytes received for this command, tagged line included. */
  bytes: number;
  /** Milliseconds from writing the command to reading its tagged response. */
  ms: number;
}

export interface CommandOptions {
  /** Keep untagged responses (default true); false only counts them. */
  collect?: boolean;
}

/** A command that failed with NO or BAD. */
export class ImapCommandError extends Error {
  constructor(readonly result: CommandResult, command: string) {
    super(`IMAP ${command.split(" ")[0]} failed: ${result.tagged}`);
    this.name = "ImapCommandError";
  }
}

interface Pending {
  tag: string;
  collect: boolean;
  untagged: ImapResponse[];
  untaggedCount: number;
  bytes: number;
  started: number;
  resolve: (r: CommandResult) => void;
  reject: (e: Error) => void;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const CR = 13;
const LF = 10;

export class ImapClient {
  readonly #conn: Deno.Conn;
  #nextTag = 1;
  /** Commands sent and not yet answered, oldest first (untagged data goes to the oldest). */
  readonly #pending: Pending[] = [];
  #continuation: Array<(line: string) => void> = [];
  #closed: Error | undefined;
  #greeting: Promise<string>;
  #resolveGreeting!: (line: string) => void;
  /** Capabilities from the last CAPABILITY response or response code. */
  capabilities = new Set<string>();

  private constructor(conn: Deno.Conn, expectGreeting: boolean) {
    this.#conn = conn;
    this.#greeting = new Promise((resolve) => (this.#resolveGreeting = resolve));
    if (!expectGreeting) {
      this.#greetingSeen = true;
      this.#resolveGreeting("");
    }
    this.#readLoop().catch((err) => this.#fail(err));
  }

  /** Connects, performs STARTTLS or TLS as asked, and waits for the greeting. */
  static async connect(options: ConnectOptions): Promise<ImapClient> {
    const { host, port, tls = "none" } = options;
    const tlsOptions = { hostname: options.serverName ?? host, caCerts: options.caCerts };
    if (tls === "implicit") {
      const conn = await Deno.connectTls({ ...tlsOptions, port, hostname: host });
      const client = new ImapClient(conn, true);
      client.#noteCapabilities(await client.#greeting);
      return client;
    }
    const conn = await Deno.connect({ hostname: host, port });
    if (tls === "none") {
      const client = new ImapClient(conn, true);
      client.#noteCapabilities(await client.#greeting);
      return client;
    }
    // STARTTLS is done with a tiny line reader before the framed reader exists, so no byte of
    // the TLS handshake is consumed as IMAP data.
    await readLine(conn);
    await writeAll(conn, encoder.encode("S0 STARTTLS\r\n"));
    for (;;) {
      const line = await readLine(conn);
      if (line.startsWith("S0 ")) {
        if (!/^S0 OK/i.test(line)) throw new Error(`STARTTLS refused: ${line}`);
        break;
      }
    }
    const tlsConn = await Deno.startTls(conn, tlsOptions);
    return new ImapClient(tlsConn, false);
  }

  /** Sends LOGIN with both arguments quoted. */
  async login(user: string, password: string): Promise<CommandResult> {
    const r = await this.command(`LOGIN ${quote(user)} ${quote(password)}`);
    // Capabilities change after login; ask unless the server already sent them.
    if (!/\[CAPABILITY /i.test(r.tagged)) await this.command("CAPABILITY");
    return r;
  }

  /** Sends one command and waits for its tagged response; rejects on NO or BAD. */
  async command(command: string, options: CommandOptions = {}): Promise<CommandResult> {
    const r = await this.send(command, options);
    if (r.status !== "OK") throw new ImapCommandError(r, command);
    return r;
  }

  /** Sends one command and resolves with its tagged response, whatever the status. */
  send(command: string, options: CommandOptions = {}): Promise<CommandResult> {
    const tag = this.#tag();
    const done = this.#expect(tag, options);
    this.#write(encoder.encode(`${tag} ${command}\r\n`)).catch((err) => this.#fail(err));
    return done;
  }

  /**
   * Appends one message. With LITERAL+ the literal is sent at once (so many APPENDs can be in
   * flight); otherwise it waits for the server's continuation request, as RFC 9051 §4.3 requires.
   */
  append(
    mailbox: string,
    message: Uint8Array,
    options: { flags?: string[]; date?: string } = {},
  ): Promise<CommandResult> {
    const tag = this.#tag();
    const flags = options.flags?.length ? ` (${options.flags.join(" ")})` : "";
    const date = options.date ? ` ${quote(options.date)}` : "";
    const nonSync = this.capabilities.has("LITERAL+");
    const head = encoder.encode(
      `${tag} APPEND ${quote(mailbox)}${flags}${date} {${message.length}${nonSync ? "+" : ""}}\r\n`,
    );
    const done = this.#expect(tag, { collect: false });
    const sendLiteral = async () => {
      if (nonSync) {
        await this.#write(concat(head, message, encoder.encode("\r\n")));
        return;
      }
      const go = new Promise<string>((resolve) => this.#continuation.push(resolve));
      await this.#write(head);
      const line = await Promise.race([go, done.then((r) => r.tagged)]);
      if (!line.startsWith("+")) return; // The server refused before the literal (tagged NO).
      await this.#write(concat(message, encoder.encode("\r\n")));
    };
    sendLiteral().catch((err) => this.#fail(err));
    return done.then((r) => {
      if (r.status !== "OK") throw new ImapCommandError(r, "APPEND");
      return r;
    });
  }

  /**
   * Appends many messages, keeping up to `window` APPENDs in flight when the server has
   * LITERAL+, and one at a time otherwise.
   */
  async appendAll(
    mailbox: string,
    messages: Iterable<Uint8Array>,
    window = 64,
    onProgress?: (done: number) => void,
  ): Promise<void> {
    const limit = this.capabilities.has("LITERAL+") ? window : 1;
    const inFlight = new Set<Promise<unknown>>();
    let done = 0;
    for (const message of messages) {
      const p: Promise<unknown> = this.append(mailbox, message).then(() => {
        inFlight.delete(p);
        done++;
        if (onProgress && done % 500 === 0) onProgress(done);
      });
      inFlight.add(p);
      if (inFlight.size >= limit) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
  }

  /** Sends LOGOUT and closes the connection. */
  async logout(): Promise<void> {
    try {
      await this.send("LOGOUT");
    } catch {
      // The server may close before we read its OK; that is a normal logout.
    }
    this.close();
  }

  close(): void {
    if (!this.#closed) this.#fail(new Error("connection closed by client"));
  }

  #tag(): string {
    return `A${this.#nextTag++}`;
  }

  #expect(tag: string, options: CommandOptions): Promise<CommandResult> {
    if (this.#closed) return Promise.reject(this.#closed);
    return new Promise((resolve, reject) => {
      this.#pending.push({
        tag,
        collect: options.collect ?? true,
        untagged: [],
        untaggedCount: 0,
        bytes: 0,
        started: performance.now(),
        resolve,
        reject,
      });
    });
  }

  #writing: Promise<void> = Promise.resolve();

  /** Serialises writes so pipelined commands never interleave on the wire. */
  #write(bytes: Uint8Array): Promise<void> {
    const next = this.#writing.then(() => writeAll(this.#conn, bytes));
    this.#writing = next.catch(() => {});
    return next;
  }

  #fail(err: Error): void {
    if (this.#closed) return;
    this.#closed = err;
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
    for (const p of this.#pending.splice(0)) p.reject(err);
    this.#resolveGreeting("");
  }

  #noteCapabilities(line: string): void {
    const m = line.match(/^\* CAPABILITY (.*)$/i) ?? line.match(/\[CAPABILITY ([^\]]*)\]/i);
    if (m) this.capabilities = new Set(m[1].toUpperCase().split(" ").filter(Boolean));
  }

  #dispatch(response: ImapResponse, bytes: number): void {
    const { text } = response;
    if (text.startsWith("+")) {
      this.#continuation.shift()?.(text);
      return;
    }
    if (text.startsWith("* ")) {
      if (/^\* (OK|PREAUTH|BYE)\b/i.test(text) && !this.#greetingSeen) {
        this.#greetingSeen = true;
        this.#resolveGreeting(text);
        return;
      }
      if (/^\* CAPABILITY /i.test(text) || /^\* OK \[CAPABILITY /i.test(text)) {
        this.#noteCapabilities(text);
      }
      const owner = this.#pending[0];
      if (owner) {
        owner.untaggedCount++;
        owner.bytes += bytes;
        if (owner.collect) owner.untagged.push(response);
      }
      return;
    }
    const space = text.indexOf(" ");
    const tag = text.slice(0, space);
    const index = this.#pending.findIndex((p) => p.tag === tag);
    if (index < 0) return;
    const [p] = this.#pending.splice(index, 1);
    this.#noteCapabilities(text);
    p.resolve({
      tag,
      status: text.slice(space + 1).split(" ", 1)[0].toUpperCase(),
      tagged: text,
      untagged: p.untagged,
      untaggedCount: p.untaggedCount,
      bytes: p.bytes + bytes,
      ms: performance.now() - p.started,
    });
  }

  #greetingSeen = false;

  /** Frames responses: a line, and when it ends in `{N}` (or `{N+}`, `~{N}`), N literal bytes. */
  async #readLoop(): Promise<void> {
    let buf = new Uint8Array(256 * 1024);
    let start = 0;
    let end = 0;
    let parts: string[] = [];
    let literals: Uint8Array[] = [];
    let responseBytes = 0;
    let literal: Uint8Array | undefined;
    let literalFilled = 0;

    for (;;) {
      // Consume everything we can from the buffer.
      for (;;) {
        if (literal) {
          const take = Math.min(literal.length - literalFilled, end - start);
          literal.set(buf.subarray(start, start + take), literalFilled);
          literalFilled += take;
          start += take;
          responseBytes += take;
          if (literalFilled < literal.length) break;
          literals.push(literal);
          literal = undefined;
          continue;
        }
        const lf = buf.subarray(start, end).indexOf(LF);
        if (lf < 0) break;
        const lineEnd = start + lf;
        const textEnd = lineEnd > start && buf[lineEnd - 1] === CR ? lineEnd - 1 : lineEnd;
        const line = decoder.decode(buf.subarray(start, textEnd));
        responseBytes += lineEnd + 1 - start;
        start = lineEnd + 1;
        parts.push(line);
        const size = literalSize(line);
        if (size !== undefined) {
          literal = new Uint8Array(size);
          literalFilled = 0;
          if (size === 0) {
            literals.push(literal);
            literal = undefined;
          }
          continue;
        }
        this.#dispatch({ text: parts.join(""), literals }, responseBytes);
        parts = [];
        literals = [];
        responseBytes = 0;
      }
      // Make room, then read more.
      if (start === end) {
        start = end = 0;
      } else if (start > 0 && (end === buf.length || start > buf.length / 2)) {
        buf.copyWithin(0, start, end);
        end -= start;
        start = 0;
      }
      if (end === buf.length) {
        const bigger = new Uint8Array(buf.length * 2);
        bigger.set(buf.subarray(0, end));
        buf = bigger;
      }
      const n = await this.#conn.read(buf.subarray(end));
      if (n === null) {
        this.#fail(new Error("connection closed by server"));
        return;
      }
      end += n;
    }
  }
}

/** The size of the literal announced at the end of a line, if any (RFC 9051 §4.3, RFC 7888). */
export function literalSize(line: string): number | undefined {
  if (!line.endsWith("}")) return undefined;
  const open = line.lastIndexOf("{");
  if (open < 0) return undefined;
  let digits = line.slice(open + 1, -1);
  if (digits.endsWith("+") || digits.endsWith("-")) digits = digits.slice(0, -1);
  if (!/^\d+$/.test(digits)) return undefined;
  return Number(digits);
}

/** Quotes a string as an IMAP quoted string (RFC 9051 §4.3). */
export function quote(s: string): string {
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await conn.write(bytes.subarray(written));
}

/** Reads one line byte by byte; used only for the few lines before STARTTLS. */
async function readLine(conn: Deno.Conn): Promise<string> {
  const bytes: number[] = [];
  const one = new Uint8Array(1);
  for (;;) {
    const n = await conn.read(one);
    if (n === null) throw new Error("connection closed before STARTTLS completed");
    if (one[0] === LF) break;
    if (one[0] !== CR) bytes.push(one[0]);
  }
  return decoder.decode(new Uint8Array(bytes));
}

function concat(...chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}
