/**
 * A line-oriented TCP client for hardening tests, on node:net so that it can
 * bind its own local address: connecting from 127.0.0.2 makes the server see
 * another client address (Linux routes all of 127/8 to loopback; Deno.connect
 * has no local-address option).
 *
 * @example
 * ```ts
 * const c = await LineClient.connect(port, "127.0.0.2");
 * console.log(await c.line()); // "* OK …"
 * c.close();
 * ```
 */
import net from "node:net";

export class LineClient {
  readonly socket: net.Socket;
  #buf = "";
  #waiters: (() => void)[] = [];
  #ended = false;
  /** Bytes received in total. */
  received = 0;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setEncoding("latin1");
    socket.on("data", (s: string) => {
      this.received += s.length;
      this.#buf += s;
      this.#wake();
    });
    const end = () => {
      this.#ended = true;
      this.#wake();
    };
    socket.on("end", end);
    socket.on("close", end);
    socket.on("error", end);
  }

  #wake() {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  static connect(port: number, localAddress = "127.0.0.1"): Promise<LineClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: "127.0.0.1", port, localAddress });
      s.once("connect", () => resolve(new LineClient(s)));
      s.once("error", reject);
    });
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** Resolves when more input arrives, the connection ends, or after `ms`. */
  #more(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.#waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  /** The next line (without CRLF); null when the connection ended first; throws after `timeoutMs`. */
  async line(timeoutMs = 10_000): Promise<string | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.#buf.indexOf("\n");
      if (i >= 0) {
        const line = this.#buf.slice(0, i).replace(/\r$/, "");
        this.#buf = this.#buf.slice(i + 1);
        return line;
      }
      if (this.#ended) return null;
      if (Date.now() > deadline) throw new Error(`no line within ${timeoutMs} ms: ${this.#buf}`);
      await this.#more(deadline - Date.now());
    }
  }

  /** Lines until one matches (returned), or null when the connection ended. */
  async until(re: RegExp, timeoutMs = 10_000): Promise<string | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const l = await this.line(Math.max(1, deadline - Date.now()));
      if (l === null || re.test(l)) return l;
    }
  }

  /** Resolves true once the server closed the connection, false after `timeoutMs`. */
  async closedWithin(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#ended && Date.now() < deadline) await this.#more(deadline - Date.now());
    return this.#ended;
  }

  write(data: string | Uint8Array): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed) return resolve();
      this.socket.write(data, () => resolve());
    });
  }

  close() {
    this.socket.destroy();
  }
}
