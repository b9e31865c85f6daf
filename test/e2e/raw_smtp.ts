/**
 * A minimal SMTP client over raw TCP for protocol tests: it sends exactly
 * the bytes it is given (bare LF, odd dots, pipelined commands) and reads
 * replies, every read bounded by a timeout.
 *
 * @example
 * ```ts
 * const c = await RawSmtp.connect(port);
 * await c.command("EHLO client.example");
 * c.close();
 * ```
 */
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface SmtpReply {
  code: number;
  /** Every line of the reply joined by "\n", without the codes. */
  text: string;
}

export class RawSmtp {
  #conn: Deno.Conn;
  #buf = "";
  readonly timeoutMs: number;

  private constructor(conn: Deno.Conn, timeoutMs: number) {
    this.#conn = conn;
    this.timeoutMs = timeoutMs;
  }

  /** Connects and reads the 220 greeting. */
  static async connect(port: number, timeoutMs = 10_000): Promise<RawSmtp> {
    const c = new RawSmtp(await Deno.connect({ hostname: "127.0.0.1", port }), timeoutMs);
    const greeting = await c.reply();
    if (greeting.code !== 220) throw new Error(`unexpected greeting: ${greeting.text}`);
    return c;
  }

  async #fill() {
    const chunk = new Uint8Array(16 * 1024);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.close();
        reject(new Error(`no SMTP reply within ${this.timeoutMs} ms; buffered: ${this.#buf}`));
      }, this.timeoutMs);
    });
    try {
      const n = await Promise.race([this.#conn.read(chunk), timeout]);
      if (n === null) throw new Error(`connection closed by server; buffered: ${this.#buf}`);
      this.#buf += decoder.decode(chunk.subarray(0, n));
    } finally {
      clearTimeout(timer);
    }
  }

  /** Reads one (possibly multi-line) reply. */
  async reply(): Promise<SmtpReply> {
    const lines: string[] = [];
    for (;;) {
      const i = this.#buf.indexOf("\r\n");
      if (i < 0) {
        await this.#fill();
        continue;
      }
      const line = this.#buf.slice(0, i);
      this.#buf = this.#buf.slice(i + 2);
      lines.push(line.slice(4));
      if (line[3] !== "-") return { code: Number(line.slice(0, 3)), text: lines.join("\n") };
    }
  }

  /** Writes bytes as they are. */
  async write(data: string | Uint8Array) {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    let off = 0;
    while (off < bytes.length) off += await this.#conn.write(bytes.subarray(off));
  }

  /** Sends one command line (CRLF added) and reads its reply. */
  async command(line: string): Promise<SmtpReply> {
    await this.write(line + "\r\n");
    return await this.reply();
  }

  /** Sends `DATA`, then the given bytes as they are (they must include the final `.`). */
  async data(bytes: string | Uint8Array): Promise<SmtpReply> {
    const go = await this.command("DATA");
    if (go.code !== 354) return go;
    await this.write(bytes);
    return await this.reply();
  }

  /**
   * Upgrades to TLS after a `220` to STARTTLS. Bytes the server sent before
   * the handshake (there should be none) are returned, then dropped.
   */
  async startTls(caPem: string): Promise<string> {
    const early = this.#buf;
    this.#buf = "";
    this.#conn = await Deno.startTls(this.#conn as Deno.TcpConn, {
      hostname: "localhost",
      caCerts: [caPem],
    });
    return early;
  }

  close() {
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }
}
