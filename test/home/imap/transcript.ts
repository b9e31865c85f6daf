/**
 * Replays IMAP protocol transcripts (`test/fixtures/imap/*.txt`) against a
 * fresh home box over real TCP connections.
 *
 * A transcript is a list of lines; blank lines and `#` comments are ignored.
 *
 * - `@messages a.eml b.eml` (header, optional): the messages delivered to
 *   INBOX before the dialogue, from `test/fixtures/imap/messages/`, in order
 *   (UIDs 1, 2, …). Default: the `.eml` files there whose names start with a
 *   digit, sorted by name.
 *   `@messages none` starts with an empty INBOX.
 * - `C: text` sends `text` CRLF on connection 1; `C2: text` on connection 2
 *   (opened on first use; its greeting is checked and consumed). Client
 *   lines are buffered and sent together at the next expectation, so
 *   consecutive `C:` lines are pipelined.
 * - `C+: text` is a line of a literal. In a `C:` line, `{#}`, `{#+}` or
 *   `~{#}` is replaced by the size of the `C+:` lines that follow (each with
 *   its CRLF); the command then continues with the next `C:` line.
 * - `CX: text` (and `C+X:` in a literal) decodes `\xNN` escapes to raw bytes; `CN: text` sends without
 *   CRLF. In every client line, `<<abc*N>>` repeats `abc` N times.
 * - `S: pattern` expects the next server line. Patterns match the whole line;
 *   `<*>` matches any text, `<n>` a number, `<name=n>` / `<name=*>` capture it
 *   into a variable, and `${name}` (in client and server lines) is its value.
 * - `S~ regex` expects the next line to match a regular expression.
 * - `S& pattern`: consecutive `S&` lines match the next lines in any order.
 * - `!deliver file.eml` delivers a message to INBOX (as an MTA would) and waits
 *   until open sessions have been told. `!closed` expects the server to close
 *   the connection (`!closed 2` for connection 2). `!sleep ms` waits.
 *   `!starttls [k]` starts TLS on a connection after its STARTTLS OK.
 *
 * When the dialogue ends, no server line may be left unread.
 *
 * @example
 * ```sh
 * # Print what the server answers to the client lines of a transcript:
 * deno run -A test/home/imap/transcript.ts record test/fixtures/imap/select.txt
 * ```
 * @module
 */
import { loadConfig } from "../../../src/config.ts";
import { type HomeBox, initDataDir, startHome } from "../../../home/box.ts";
import { createAccount } from "../../../home/store/accounts.ts";
import { deliverLocally } from "../../../home/store/deliver.ts";
import { Connection } from "../../transcript_connection.ts";
import { compilePattern, type Pattern } from "../../transcript_pattern.ts";
import { concatBytes } from "../../../src/encoding.ts";

export const fixtureDir = new URL("../../fixtures/imap/", import.meta.url);
const messageDir = new URL("messages/", fixtureDir);
export const user = "me@hearth.localhost";
export const password = "password123";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

type Step =
  | { kind: "send"; conn: number; bytes: Uint8Array; lineNo: number }
  | { kind: "expect"; conn: number; matchers: Matcher[]; ordered: boolean; lineNo: number }
  | { kind: "directive"; conn: number; name: string; args: string[]; lineNo: number };

/** One expected server line: a compiled pattern, built when it is reached (variables). */
type Matcher = Pattern;

/** A transcript, parsed. */
export interface Transcript {
  messages: string[] | null;
  steps: Step[];
}

const linePattern = /^(C|S)(\d*)(\+X|[+XN]?)([:~&])(?: (.*))?$/;

/** Parses a transcript's text into steps (see the module documentation). */
export function parseTranscript(text: string): Transcript {
  const raw = text.split(/\r?\n/);
  const lines: { no: number; text: string }[] = [];
  raw.forEach((t, i) => {
    if (t.trim() === "" || t.startsWith("#")) return;
    lines.push({ no: i + 1, text: t });
  });
  let messages: string[] | null = null;
  const steps: Step[] = [];
  for (let i = 0; i < lines.length; i++) {
    const { no, text: t } = lines[i];
    if (t.startsWith("@messages")) {
      const names = t.slice("@messages".length).trim().split(/\s+/).filter(Boolean);
      messages = names.length === 1 && names[0] === "none" ? [] : names;
      continue;
    }
    if (t.startsWith("!")) {
      const [name, ...args] = t.slice(1).trim().split(/\s+/);
      let conn = 1;
      if ((name === "closed" || name === "starttls") && args[0]) conn = Number(args[0]);
      steps.push({ kind: "directive", conn, name, args, lineNo: no });
      continue;
    }
    const m = linePattern.exec(t);
    if (!m) throw new Error(`line ${no}: not a transcript line: ${JSON.stringify(t)}`);
    const [, who, connText, mod, sep] = m;
    const body = m[5] ?? "";
    const conn = connText ? Number(connText) : 1;
    if (who === "C") {
      if (sep !== ":") throw new Error(`line ${no}: client lines use "C:"`);
      let bytes: Uint8Array;
      if (mod.endsWith("X")) bytes = unescapeBytes(expandRepeats(body));
      else {
        let line = expandRepeats(body);
        if (mod === "" && /\{#\+?\}$/.test(line)) {
          line = line.replace(
            /\{#(\+?)\}$/,
            (_, plus) => `{${literalSize(lines, i, conn)}${plus}}`,
          );
        }
        bytes = encoder.encode(line);
      }
      if (mod !== "N") bytes = concatBytes([bytes, encoder.encode("\r\n")]);
      steps.push({ kind: "send", conn, bytes, lineNo: no });
      continue;
    }
    if (mod) throw new Error(`line ${no}: server lines take no modifier`);
    const matcher: Matcher = { source: body, regex: sep === "~", lineNo: no };
    const last = steps[steps.length - 1];
    if (
      sep === "&" && last?.kind === "expect" && !last.ordered && last.conn === conn &&
      lines[i - 1] && /^S\d*&/.test(lines[i - 1].text)
    ) {
      last.matchers.push(matcher);
      continue;
    }
    steps.push({ kind: "expect", conn, matchers: [matcher], ordered: sep !== "&", lineNo: no });
  }
  return { messages, steps };
}

/** Size of the `C+:` lines that follow line `i` for connection `conn`. */
function literalSize(lines: { no: number; text: string }[], i: number, conn: number): number {
  let size = 0;
  for (let j = i + 1; j < lines.length; j++) {
    const m = linePattern.exec(lines[j].text);
    if (!m) break;
    const c = m[2] ? Number(m[2]) : 1;
    if (m[1] === "S") continue;
    if (c !== conn) continue;
    if (!m[3].startsWith("+")) break;
    const text = expandRepeats(m[5] ?? "");
    size += (m[3] === "+X" ? unescapeBytes(text) : encoder.encode(text)).length + 2;
  }
  return size;
}

function expandRepeats(s: string): string {
  return s.replace(/<<(.+?)\*(\d+)>>/g, (_, text: string, n: string) => text.repeat(Number(n)));
}

function unescapeBytes(s: string): Uint8Array {
  const parts: Uint8Array[] = [];
  let last = 0;
  for (const m of s.matchAll(/\\x([0-9a-fA-F]{2})/g)) {
    parts.push(encoder.encode(s.slice(last, m.index)));
    parts.push(new Uint8Array([parseInt(m[1], 16)]));
    last = m.index! + m[0].length;
  }
  parts.push(encoder.encode(s.slice(last)));
  return concatBytes(parts);
}

/** A fresh home box with one account and the transcript's messages delivered. */
export class TestBox {
  box!: HomeBox;
  dir!: string;
  accountId!: string;

  static async start(messages: string[] | null): Promise<TestBox> {
    const t = new TestBox();
    t.dir = await Deno.makeTempDir({ prefix: "hearth-transcript-" });
    const config = await loadConfig(t.dir, {
      imapPort: 0,
      imapsPort: 0,
      mxPort: null,
      submissionPort: null,
      submissionsPort: null,
      scryptLogN: 10,
    });
    await initDataDir(config);
    t.box = await startHome(config, { allowPlaintextAuth: true });
    t.accountId = (await createAccount(t.box.kv, t.box.blobs, user, password, 10)).id;
    for (const name of messages ?? await defaultMessages()) await t.deliver(name);
    return t;
  }

  /** Delivers a fixture message and waits until an unlocked account has indexed it. */
  async deliver(name: string) {
    const raw = await Deno.readFile(new URL(name, messageDir));
    await deliverLocally(this.box.kv, this.box.blobs, user, raw);
    await this.box.registry.unlocked(this.accountId)?.ingestArrivals();
  }

  async connect(): Promise<Connection> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: this.box.imap.port! });
    return new Connection(conn);
  }

  async stop() {
    await this.box.close();
    await Deno.remove(this.dir, { recursive: true });
  }
}

async function defaultMessages(): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(messageDir)) {
    if (/^\d.*\.eml$/.test(e.name)) names.push(e.name);
  }
  return names.sort();
}

export class TranscriptFailure extends Error {}

const lineTimeoutMs = 3000;

/**
 * Runs a transcript against a fresh box. With `record`, server lines are not
 * checked but printed (to write a new transcript).
 */
export async function runTranscript(
  text: string,
  opts: { name?: string; record?: boolean } = {},
): Promise<void> {
  const t = parseTranscript(text);
  const box = await TestBox.start(t.messages);
  const conns = new Map<number, Connection>();
  const outgoing = new Map<number, Uint8Array[]>();
  const vars = new Map<string, string>();
  const out = (s: string) => console.log(s);

  const fail = (lineNo: number, message: string): never => {
    const recent = [...conns].map(([k, c]) =>
      `  connection ${k}, last lines received:\n` +
      c.log.slice(-12).map((l) => `    ${l}`).join("\n")
    ).join("\n");
    throw new TranscriptFailure(`${opts.name ?? "transcript"}:${lineNo}: ${message}\n${recent}`);
  };

  const connection = async (k: number, lineNo: number): Promise<Connection> => {
    let c = conns.get(k);
    if (c) return c;
    c = await box.connect();
    conns.set(k, c);
    const greeting = await c.line(lineTimeoutMs);
    if (!greeting?.startsWith("* OK")) fail(lineNo, `no greeting on connection ${k}: ${greeting}`);
    return c;
  };

  const flush = async () => {
    for (const [k, chunks] of outgoing) {
      if (!chunks.length) continue;
      await conns.get(k)!.write(concatBytes(chunks));
      if (opts.record) {
        for (const l of decoder.decode(concatBytes(chunks)).split("\r\n").slice(0, -1)) {
          out(`C${k === 1 ? "" : k}: ${l}`);
        }
      }
      chunks.length = 0;
    }
  };

  const drain = async (k: number) => {
    const c = conns.get(k)!;
    let l: string | null;
    while ((l = await c.line(150)) !== null) out(`S${k === 1 ? "" : k}: ${l}`);
  };

  try {
    for (const step of t.steps) {
      if (step.kind === "send") {
        await connection(step.conn, step.lineNo);
        let bytes = step.bytes;
        if (vars.size && bytes.includes(0x24)) {
          const s = decoder.decode(bytes).replace(
            /\$\{(\w+)\}/g,
            (all, name: string) => vars.get(name) ?? all,
          );
          bytes = encoder.encode(s);
        }
        const list = outgoing.get(step.conn) ?? [];
        list.push(bytes);
        outgoing.set(step.conn, list);
        continue;
      }
      await flush();
      const c = await connection(step.conn, step.lineNo);
      if (step.kind === "directive") {
        switch (step.name) {
          case "deliver":
            for (const name of step.args) await box.deliver(name);
            break;
          case "sleep":
            await new Promise((r) => setTimeout(r, Number(step.args[0] ?? 50)));
            break;
          case "closed": {
            if (opts.record) {
              await drain(step.conn);
              out(`!closed ${step.conn}`);
              break;
            }
            const l = await c.line(lineTimeoutMs);
            if (l !== null) fail(step.lineNo, `expected the connection to close, got: ${l}`);
            if (!c.eof) fail(step.lineNo, "the server did not close the connection");
            break;
          }
          case "starttls":
            if (opts.record) await drain(step.conn);
            await c.startTls(await Deno.readTextFile(`${box.dir}/tls/ca.pem`));
            break;
          default:
            fail(step.lineNo, `unknown directive !${step.name}`);
        }
        continue;
      }
      if (opts.record) {
        await drain(step.conn);
        continue;
      }
      const got: string[] = [];
      for (let i = 0; i < step.matchers.length; i++) {
        const l = await c.line(lineTimeoutMs);
        if (l === null) {
          fail(
            step.matchers[i].lineNo,
            `expected ${JSON.stringify(step.matchers[i].source)}, got ${
              c.eof ? "end of connection" : "nothing"
            }`,
          );
        }
        got.push(l!);
      }
      if (step.ordered) {
        const m = step.matchers[0];
        const match = compilePattern(m, vars).exec(got[0]);
        if (!match) {
          fail(
            m.lineNo,
            `expected ${JSON.stringify(m.source)}\n       got ${JSON.stringify(got[0])}`,
          );
        }
        for (const [k, v] of Object.entries(match!.groups ?? {})) vars.set(k, v);
        continue;
      }
      const left = [...got];
      for (const m of step.matchers) {
        const re = compilePattern(m, vars);
        const i = left.findIndex((l) => re.test(l));
        if (i < 0) {
          fail(
            m.lineNo,
            `expected ${JSON.stringify(m.source)} among ${JSON.stringify(left)} (any order)`,
          );
        }
        const match = re.exec(left[i])!;
        for (const [k, v] of Object.entries(match.groups ?? {})) vars.set(k, v);
        left.splice(i, 1);
      }
    }
    await flush();
    for (const [k, c] of conns) {
      if (opts.record) {
        await drain(k);
        continue;
      }
      if (c.eof) continue;
      const extra = await c.line(30);
      if (extra !== null) {
        fail(t.steps.at(-1)?.lineNo ?? 0, `unexpected line on connection ${k}: ${extra}`);
      }
    }
  } finally {
    for (const c of conns.values()) c.close();
    await box.stop();
  }
}

if (import.meta.main) {
  const [mode, file] = Deno.args;
  if (mode !== "record" && mode !== "run" || !file) {
    console.error("usage: transcript.ts record|run FILE");
    Deno.exit(2);
  }
  await runTranscript(await Deno.readTextFile(file), { name: file, record: mode === "record" });
}
