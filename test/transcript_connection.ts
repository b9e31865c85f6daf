/**
 * The client side shared by the protocol transcript runners (IMAP and SMTP):
 * a connection read line by line with timeouts, written in full, upgradable
 * to TLS.
 */

import { concatBytes } from "../src/encoding.ts";

const decoder = new TextDecoder();

/** A client connection that reads the server's answer line by line. */
export class Connection {
  conn: Deno.Conn;
  #buf: Uint8Array<ArrayBuffer> = new Uint8Array(0);
  #pending: Promise<number | null> | null = null;
  #readBuf = new Uint8Array(64 * 1024);
  eof = false;
  /** Every line received, for failure reports. */
  readonly log: string[] = [];

  constructor(conn: Deno.Conn) {
    this.conn = conn;
  }

  /** The next CRLF-terminated line (without CRLF), or null on timeout or end of stream. */
  async line(timeoutMs: number): Promise<string | null> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const i = this.#indexOfCrlf();
      if (i >= 0) {
        const line = decoder.decode(this.#buf.subarray(0, i));
        this.#buf = this.#buf.slice(i + 2);
        this.log.push(line);
        return line;
      }
      if (this.eof) return null;
      const left = deadline - Date.now();
      if (left <= 0) return null;
      this.#pending ??= this.conn.read(this.#readBuf).catch(() => null);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), left));
      const n = await Promise.race([this.#pending, timeout]);
      clearTimeout(timer);
      if (n === "timeout") return null;
      this.#pending = null;
      if (n === null) {
        this.eof = true;
        continue;
      }
      this.#buf = concatBytes([this.#buf, this.#readBuf.slice(0, n)]) as Uint8Array<ArrayBuffer>;
    }
  }

  #indexOfCrlf(): number {
    for (let i = 0; i + 1 < this.#buf.length; i++) {
      if (this.#buf[i] === 13 && this.#buf[i + 1] === 10) return i;
    }
    return -1;
  }

  get buffered(): number {
    return this.#buf.length;
  }

  /** Writes everything; a server that closes mid-write (too-long line) is not an error here. */
  async write(bytes: Uint8Array) {
    let off = 0;
    try {
      while (off < bytes.length) off += await this.conn.write(bytes.subarray(off));
    } catch (e) {
      if (!(e instanceof Deno.errors.BrokenPipe || e instanceof Deno.errors.ConnectionReset)) {
        throw e;
      }
    }
  }

  async startTls(caCert: string) {
    if (this.#pending || this.#buf.length) {
      throw new Error("bytes are pending on the connection before TLS starts");
    }
    this.conn = await Deno.startTls(this.conn as Deno.TcpConn, {
      hostname: "localhost",
      caCerts: [caCert],
    });
  }

  close() {
    try {
      this.conn.close();
    } catch { /* already closed */ }
  }
}
