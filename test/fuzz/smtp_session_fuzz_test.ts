// Property-based fuzzing of the SMTP session (issue 8) against a live MX listener on loopback:
// random sequences of real commands with random arguments, and random DATA bodies. Every reply
// line is well formed (3-digit code), the box keeps serving a fresh connection, and INBOX grows
// only by messages whose end of DATA was answered 250.
import { ok as assert } from "node:assert/strict";
import fc from "fast-check";
import { RawImap } from "../e2e/raw_imap.ts";
import { startTestBox, testAddress } from "../e2e/harness.ts";
import { fuzzParams } from "./budget.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const replyTimeoutMs = 10_000;

/** A raw connection that checks the form of every reply line. */
class Client {
  #buf = new Uint8Array(0);
  closed = false;
  private constructor(readonly conn: Deno.Conn) {}

  static async open(port: number): Promise<Client> {
    return new Client(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  async #fill(): Promise<boolean> {
    const chunk = new Uint8Array(16 * 1024);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error("no SMTP reply within the time limit")),
        replyTimeoutMs,
      );
    });
    try {
      const n = await Promise.race([this.conn.read(chunk), timeout]);
      if (n === null) return false;
      const next = new Uint8Array(this.#buf.length + n);
      next.set(this.#buf);
      next.set(chunk.subarray(0, n), this.#buf.length);
      this.#buf = next;
      return true;
    } finally {
      clearTimeout(timer);
    }
  }

  /** One reply's code, or null when the server closed the connection. */
  async reply(): Promise<number | null> {
    for (;;) {
      const lf = this.#buf.indexOf(0x0a);
      if (lf < 0) {
        if (!(await this.#fill())) {
          this.closed = true;
          return null;
        }
        continue;
      }
      const line = dec.decode(this.#buf.subarray(0, lf + 1));
      this.#buf = this.#buf.slice(lf + 1);
      // RFC 5321 §4.2: Reply-code [ SP / "-" textstring ] CRLF, codes 2xx-5xx.
      assert(
        /^[2-5][0-9]{2}([ -][\x20-\x7e\t]*)?\r\n$/.test(line),
        `malformed reply line ${JSON.stringify(line)}`,
      );
      if (line[3] !== "-") return Number(line.slice(0, 3));
    }
  }

  async write(bytes: Uint8Array): Promise<void> {
    let off = 0;
    try {
      while (off < bytes.length) off += await this.conn.write(bytes.subarray(off));
    } catch {
      this.closed = true; // the server closed first; its last reply says why
    }
  }

  close() {
    try {
      this.conn.close();
    } catch { /* already closed */ }
  }
}

/** Bytes with no CR or LF: an argument stays on its command line. */
const argBytes = fc.oneof(
  fc.constantFrom(
    `<${testAddress}>`,
    "<>",
    "<someone@example.org>",
    "<me@HEARTH.localhost>",
    "<nobody@hearth.localhost>",
    "<@route:a@b>",
    " SIZE=100",
    " SIZE=99999999999",
    " BODY=8BITMIME",
    " SMTPUTF8",
    " AUTH=<>",
    '<"quoted local"@example.org>',
    "<a@[127.0.0.1]>",
    "<a@b>,<c@d>",
    ":",
    "<",
    "\x00",
    "\xff\xfe",
  ).map((s) => Uint8Array.from(s, (c) => c.charCodeAt(0))),
  fc.uint8Array({ maxLength: 40 }).map((b) => b.map((x) => (x === 0x0a || x === 0x0d ? 0x20 : x))),
  fc.constant(enc.encode("x".repeat(1100))),
);

type Step = { kind: "cmd"; verb: string; arg: Uint8Array } | { kind: "data"; body: Uint8Array };

const verb = fc.constantFrom(
  "EHLO client.example",
  "HELO client.example",
  "MAIL FROM:",
  "RCPT TO:",
  "RSET",
  "NOOP",
  "VRFY",
  "EXPN",
  "HELP",
  "STARTTLS",
  "AUTH PLAIN",
  "BDAT 10",
  "XCLIENT ADDR=1.2.3.4",
  "GARBAGE",
  "",
  "mail from:",
  "rcpt to:",
  "QUIT",
);

/** A DATA body with every line starting with "." dot-stuffed, so it cannot end the data early. */
const dataBody = fc.oneof(
  fc.uint8Array({ maxLength: 300 }),
  fc.array(
    fc.constantFrom(
      "From: a@example.org",
      "Subject: x",
      "",
      "body",
      ".",
      "..",
      ".x",
      "\x00",
      "\xff",
      "Content-Type: multipart/mixed; boundary=b",
      "--b",
      "\tfolded",
      "x".repeat(1200),
    ),
    { maxLength: 12 },
  ).map((lines) => enc.encode(lines.join(["\r\n", "\n", "\r"][lines.length % 3]))),
).map((b) => {
  const out: number[] = [];
  let lineStart = true;
  for (const x of b) {
    if (lineStart && x === 0x2e) out.push(0x2e); // RFC 5321 §4.5.2 transparency
    out.push(x);
    lineStart = x === 0x0a || x === 0x0d;
  }
  return Uint8Array.from(out);
});

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.tuple(verb, argBytes).map(([v, arg]) => ({ kind: "cmd" as const, verb: v, arg })),
  },
  { weight: 2, arbitrary: dataBody.map((body) => ({ kind: "data" as const, body })) },
);

/** A plausible transaction first, then random steps: most runs reach DATA. */
const session = fc.tuple(fc.boolean(), fc.array(step, { maxLength: 10 })).map(([prefix, steps]) => {
  const head: Step[] = prefix
    ? [
      { kind: "cmd", verb: "EHLO client.example", arg: new Uint8Array() },
      { kind: "cmd", verb: "MAIL FROM:", arg: enc.encode("<someone@example.org>") },
      { kind: "cmd", verb: "RCPT TO:", arg: enc.encode(`<${testAddress}>`) },
    ]
    : [];
  return [...head, ...steps];
});

async function messageCount(port: number): Promise<number> {
  const c = await RawImap.connect(port);
  try {
    await c.ok(`LOGIN ${testAddress} "correct horse battery staple"`);
    const res = await c.ok("STATUS INBOX (MESSAGES)");
    const text = res.untagged.map((u) => u.text).join("\n");
    const m = text.match(/MESSAGES (\d+)/);
    assert(m, text);
    return Number(m[1]);
  } finally {
    c.close();
  }
}

Deno.test({
  name: "fuzz: random SMTP sessions get well-formed replies, and mail is stored only after 250",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const box = await startTestBox({ messages: [] });
    try {
      const port = box.mxPort!;
      let stored = await messageCount(box.port);
      await fc.assert(
        fc.asyncProperty(session, async (steps) => {
          const c = await Client.open(port);
          let accepted = 0; // recipients accepted in the current transaction
          let maxNew = 0; // messages the server may have stored: recipients of 250-ed DATA
          let minNew = 0; // 250-ed DATA: at least one message each
          try {
            if ((await c.reply()) !== 220) throw new Error("no 220 greeting");
            for (const s of steps) {
              if (c.closed) break;
              if (s.kind === "cmd") {
                const line = Uint8Array.from([...enc.encode(s.verb), ...s.arg, 0x0d, 0x0a]);
                await c.write(line);
                const code = await c.reply();
                if (code === null) break;
                const v = s.verb.toUpperCase();
                if (v.startsWith("RCPT") && code === 250) accepted++;
                if (v.startsWith("MAIL") && code === 250) accepted = 0;
                if (
                  (v === "RSET" || v.startsWith("EHLO") || v.startsWith("HELO")) && code === 250
                ) accepted = 0;
                if (v === "QUIT") break;
              } else {
                await c.write(enc.encode("DATA\r\n"));
                const go = await c.reply();
                if (go === null) break;
                if (go !== 354) continue;
                // Only CRLF "." CRLF ends DATA (RFC 5321 §4.1.1.4): a body ending in a bare LF
                // still needs its own CRLF before the dot, or the server rightly keeps waiting.
                const n = s.body.length;
                const end = n >= 2 && s.body[n - 2] === 0x0d && s.body[n - 1] === 0x0a
                  ? ".\r\n"
                  : "\r\n.\r\n";
                await c.write(Uint8Array.from([...s.body, ...enc.encode(end)]));
                const code = await c.reply();
                if (code === null) break;
                if (code === 250) {
                  minNew++;
                  maxNew += accepted;
                }
                accepted = 0;
              }
            }
          } finally {
            c.close();
          }
          // The box still serves a fresh connection.
          const fresh = await Client.open(port);
          try {
            assert((await fresh.reply()) === 220, "no greeting on a fresh connection");
            await fresh.write(enc.encode("NOOP\r\n"));
            assert((await fresh.reply()) === 250, "NOOP refused on a fresh connection");
          } finally {
            fresh.close();
          }
          const now = await messageCount(box.port);
          const added = now - stored;
          stored = now;
          assert(
            added >= minNew && added <= maxNew,
            `INBOX grew by ${added}; 250s allow ${minNew}..${maxNew}`,
          );
        }),
        fuzzParams(12, 0.005),
      );
    } finally {
      await box.stop();
    }
  },
});
