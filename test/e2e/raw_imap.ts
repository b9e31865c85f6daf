/**
 * A minimal IMAP client over raw TCP for the e2e tests: it sends exactly what
 * it is told and hands back responses with their literals as bytes, so tests
 * can compare messages byte for byte.
 */
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One response line; literals are replaced by `{n}` in `text` and kept in `literals`. */
export interface ImapResponse {
  text: string;
  literals: Uint8Array[];
}

export interface TaggedResult {
  status: "OK" | "NO" | "BAD";
  text: string;
  untagged: ImapResponse[];
}

export class RawImap {
  #conn: Deno.TcpConn;
  #buf = new Uint8Array(0);
  #tag = 0;

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  /** Connects and reads the greeting. */
  static async connect(port: number, hostname = "127.0.0.1"): Promise<RawImap> {
    const client = new RawImap(await Deno.connect({ hostname, port }));
    const greeting = await client.#readResponse();
    if (!greeting.text.startsWith("* OK")) throw new Error(`unexpected greeting: ${greeting.text}`);
    return client;
  }

  async #fill() {
    const chunk = new Uint8Array(64 * 1024);
    const n = await this.#conn.read(chunk);
    if (n === null) throw new Error("connection closed by server");
    const next = new Uint8Array(this.#buf.length + n);
    next.set(this.#buf);
    next.set(chunk.subarray(0, n), this.#buf.length);
    this.#buf = next;
  }

  async #readLine(): Promise<string> {
    for (;;) {
      const i = this.#buf.indexOf(0x0a);
      if (i >= 0) {
        const line = decoder.decode(this.#buf.subarray(0, i + 1));
        this.#buf = this.#buf.subarray(i + 1);
        return line.replace(/\r?\n$/, "");
      }
      await this.#fill();
    }
  }

  async #readBytes(n: number): Promise<Uint8Array> {
    while (this.#buf.length < n) await this.#fill();
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }

  async #readResponse(): Promise<ImapResponse> {
    let text = "";
    const literals: Uint8Array[] = [];
    for (;;) {
      const line = await this.#readLine();
      text += line;
      const m = line.match(/\{(\d+)\}$/);
      if (!m) return { text, literals };
      literals.push(await this.#readBytes(Number(m[1])));
    }
  }

  async #write(data: Uint8Array) {
    let off = 0;
    while (off < data.length) off += await this.#conn.write(data.subarray(off));
  }

  async #awaitTagged(tag: string): Promise<TaggedResult> {
    const untagged: ImapResponse[] = [];
    for (;;) {
      const r = await this.#readResponse();
      if (r.text.startsWith(`${tag} `)) {
        const m = r.text.slice(tag.length + 1).match(/^(OK|NO|BAD)\s?(.*)$/);
        if (!m) throw new Error(`malformed tagged response: ${r.text}`);
        return { status: m[1] as TaggedResult["status"], text: m[2], untagged };
      }
      untagged.push(r);
    }
  }

  /** Sends a command without literals and waits for its tagged response. */
  async command(line: string): Promise<TaggedResult> {
    const tag = `T${++this.#tag}`;
    await this.#write(encoder.encode(`${tag} ${line}\r\n`));
    return await this.#awaitTagged(tag);
  }

  /** Like {@linkcode command}, but throws unless the response is OK. */
  async ok(line: string): Promise<TaggedResult> {
    const r = await this.command(line);
    if (r.status !== "OK") throw new Error(`${line} → ${r.status} ${r.text}`);
    return r;
  }

  /** APPENDs one message with a synchronising literal. */
  async append(mailbox: string, message: Uint8Array, flags = ""): Promise<TaggedResult> {
    const tag = `T${++this.#tag}`;
    const flagPart = flags ? ` (${flags})` : "";
    await this.#write(
      encoder.encode(`${tag} APPEND ${mailbox}${flagPart} {${message.length}}\r\n`),
    );
    const cont = await this.#readResponse();
    if (!cont.text.startsWith("+")) {
      const m = cont.text.match(/^\S+ (OK|NO|BAD)\s?(.*)$/);
      return { status: (m?.[1] ?? "BAD") as TaggedResult["status"], text: cont.text, untagged: [] };
    }
    await this.#write(message);
    await this.#write(encoder.encode("\r\n"));
    return await this.#awaitTagged(tag);
  }

  /** UID FETCH of every message's full text: uid → bytes. */
  async fetchAllBodies(): Promise<Map<number, Uint8Array>> {
    const r = await this.ok("UID FETCH 1:* (UID BODY.PEEK[])");
    const out = new Map<number, Uint8Array>();
    for (const u of r.untagged) {
      const uid = u.text.match(/^\* \d+ FETCH \(.*UID (\d+)/)?.[1];
      if (!uid || !/BODY\[\] \{\d+\}/.test(u.text)) continue;
      if (out.has(Number(uid))) throw new Error(`UID ${uid} listed twice`);
      out.set(Number(uid), u.literals[0]);
    }
    return out;
  }

  close() {
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }
}
