/**
 * Replays SMTP protocol transcripts (`test/fixtures/smtp/*.txt`) against a
 * fresh in-process home box over real TCP connections.
 *
 * A transcript is a list of lines; blank lines and `#` comments are ignored.
 *
 * - `@listener mx|submission` (header, optional): where connections go;
 *   default `mx` (submission is the STARTTLS port).
 * - `@plaintext-auth off` (header): the box refuses AUTH before TLS, as in
 *   production (tests otherwise allow it; `!inbox` needs it).
 * - `C: text` sends `text` CRLF on connection 1; `C2: text` on connection 2
 *   (opened on first use; its `220` greeting is checked and consumed).
 *   Client lines are buffered and sent together at the next expectation or
 *   directive, so consecutive `C:` lines are pipelined in one write.
 * - `CX: text` sends raw bytes with no CRLF added and no line-ending
 *   normalisation: `\r`, `\n`, `\\` and `\xNN` are decoded (the SMTP
 *   smuggling set is written this way).
 * - In every client line, `<<abc*N>>` repeats `abc` N times (innermost first,
 *   so `<<<<x*998>>\r\n*10>>` is ten lines of 998 `x`), and `${name}` is a
 *   variable: `messageBytes` (the size limit) and `overLimit` (one more) are
 *   preset.
 * - `S: pattern` expects the next server line (each line of a multi-line
 *   reply is its own `S:`). Patterns match the whole line; `<*>` matches any
 *   text, `<n>` a number, `<name=n>` / `<name=*>` capture into a variable.
 * - `S~ regex` expects the next line to match a regular expression.
 * - `!starttls [k]` starts TLS on a connection (after its `220` to STARTTLS).
 * - `!closed [k]` expects the server to close the connection.
 * - `!inbox N` reads INBOX over IMAP and expects exactly N messages.
 * - `!sleep ms` waits.
 *
 * When the dialogue ends, no server line may be left unread.
 *
 * @example
 * ```sh
 * # Print what the server answers to the client lines of a transcript:
 * deno run -A test/home/smtp/transcript.ts record test/fixtures/smtp/relay.txt
 * ```
 * @module
 */
import { limits } from "../../../src/limits.ts";
import { inbox, startTestBox, type TestBox } from "../../e2e/harness.ts";
import { Connection } from "../../transcript_connection.ts";
import { compilePattern } from "../../transcript_pattern.ts";
import { concatBytes } from "../../../src/encoding.ts";

export const fixtureDir = new URL("../../fixtures/smtp/", import.meta.url);

const encoder = new TextEncoder();
const decoder = new TextDecoder();

type Listener = "mx" | "submission";

type Step =
  | { kind: "send"; conn: number; text: string; raw: boolean; lineNo: number }
  | { kind: "expect"; conn: number; source: string; regex: boolean; lineNo: number }
  | { kind: "directive"; conn: number; name: string; args: string[]; lineNo: number };

/** A transcript, parsed. */
export interface Transcript {
  listener: Listener;
  /** False after `@plaintext-auth off`: AUTH (and IMAP LOGIN, so no `!inbox`) need TLS. */
  plaintextAuth: boolean;
  steps: Step[];
}

const linePattern = /^(C|S)(\d*)(X?)([:~])(?: (.*))?$/;
const connDirectives = new Set(["closed", "starttls"]);

/** Parses a transcript's text into steps (see the module documentation). */
export function parseTranscript(text: string): Transcript {
  let listener: Listener = "mx";
  let plaintextAuth = true;
  const steps: Step[] = [];
  for (const [i, t] of text.split(/\r?\n/).entries()) {
    const lineNo = i + 1;
    if (t.trim() === "" || t.startsWith("#")) continue;
    if (t.startsWith("@listener")) {
      const name = t.slice("@listener".length).trim();
      if (name !== "mx" && name !== "submission") {
        throw new Error(`line ${lineNo}: unknown listener ${name}`);
      }
      listener = name;
      continue;
    }
    if (t.trim() === "@plaintext-auth off") {
      plaintextAuth = false;
      continue;
    }
    if (t.startsWith("!")) {
      const [name, ...args] = t.slice(1).trim().split(/\s+/);
      const conn = connDirectives.has(name) && args[0] ? Number(args[0]) : 1;
      steps.push({ kind: "directive", conn, name, args, lineNo });
      continue;
    }
    const m = linePattern.exec(t);
    if (!m) throw new Error(`line ${lineNo}: not a transcript line: ${JSON.stringify(t)}`);
    const [, who, connText, raw, sep] = m;
    const body = m[5] ?? "";
    const conn = connText ? Number(connText) : 1;
    if (who === "C") {
      if (sep !== ":") throw new Error(`line ${lineNo}: client lines use "C:" or "CX:"`);
      steps.push({ kind: "send", conn, text: body, raw: raw === "X", lineNo });
      continue;
    }
    if (raw) throw new Error(`line ${lineNo}: server lines take no modifier`);
    steps.push({ kind: "expect", conn, source: body, regex: sep === "~", lineNo });
  }
  return { listener, plaintextAuth, steps };
}

function expandRepeats(s: string): string {
  const inner = /<<([^<>]+?)\*(\d+)>>/g;
  while (inner.test(s)) {
    s = s.replace(inner, (_, text: string, n: string) => text.repeat(Number(n)));
  }
  return s;
}

/** Decodes `\r`, `\n`, `\\` and `\xNN` to the bytes they name. */
export function unescapeBytes(s: string): Uint8Array {
  const decoded = s.replace(/\\(r|n|\\|x[0-9a-fA-F]{2})/g, (_, e: string) => {
    if (e === "r") return "\r";
    if (e === "n") return "\n";
    if (e === "\\") return "\\";
    return String.fromCharCode(parseInt(e.slice(1), 16));
  });
  // Escaped bytes above 0x7f are single bytes, not UTF-8 sequences.
  const hasHigh = /\\x[89a-fA-F][0-9a-fA-F]/.test(s);
  return hasHigh ? Uint8Array.from(decoded, (c) => c.charCodeAt(0)) : encoder.encode(decoded);
}

function substitute(s: string, vars: Map<string, string>, lineNo: number): string {
  return s.replace(/\$\{(\w+)\}/g, (_, name: string) => {
    const v = vars.get(name);
    if (v === undefined) throw new Error(`line ${lineNo}: variable ${name} is not set`);
    return v;
  });
}

export class TranscriptFailure extends Error {}

const lineTimeoutMs = 5000;

async function connect(box: TestBox, listener: Listener): Promise<Connection> {
  const port = listener === "mx" ? box.mxPort! : box.submissionPort!;
  return new Connection(await Deno.connect({ hostname: "127.0.0.1", port }));
}

/**
 * Runs a transcript against a fresh box with an empty INBOX.
 * With `record`, server lines are not checked but printed (to write a new
 * transcript).
 */
export async function runTranscript(
  text: string,
  opts: { name?: string; record?: boolean } = {},
): Promise<void> {
  const t = parseTranscript(text);
  const box = await startTestBox({ messages: [], allowPlaintextAuth: t.plaintextAuth });
  const conns = new Map<number, Connection>();
  const outgoing = new Map<number, Uint8Array[]>();
  const vars = new Map<string, string>([
    ["messageBytes", String(limits.messageBytes)],
    ["overLimit", String(limits.messageBytes + 1)],
  ]);
  const out = (s: string) => console.log(s);
  const tag = (k: number) => k === 1 ? "" : String(k);

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
    c = await connect(box, t.listener);
    conns.set(k, c);
    const greeting = await c.line(lineTimeoutMs);
    if (!greeting?.startsWith("220 ")) fail(lineNo, `no greeting on connection ${k}: ${greeting}`);
    return c;
  };

  const flush = async () => {
    for (const [k, chunks] of outgoing) {
      if (!chunks.length) continue;
      const bytes = concatBytes(chunks);
      chunks.length = 0;
      if (opts.record) out(`C${tag(k)}X: ${JSON.stringify(decoder.decode(bytes)).slice(1, 200)}`);
      await conns.get(k)!.write(bytes);
    }
  };

  const drain = async (k: number) => {
    const c = conns.get(k)!;
    let l: string | null;
    while ((l = await c.line(300)) !== null) out(`S${tag(k)}: ${l}`);
  };

  try {
    for (const step of t.steps) {
      if (step.kind === "send") {
        await connection(step.conn, step.lineNo);
        const text = substitute(expandRepeats(step.text), vars, step.lineNo);
        const bytes = step.raw ? unescapeBytes(text) : encoder.encode(text + "\r\n");
        const list = outgoing.get(step.conn) ?? [];
        list.push(bytes);
        outgoing.set(step.conn, list);
        continue;
      }
      await flush();
      if (step.kind === "directive") {
        switch (step.name) {
          case "sleep":
            await new Promise((r) => setTimeout(r, Number(step.args[0] ?? 50)));
            break;
          case "inbox": {
            if (opts.record) { for (const k of conns.keys()) await drain(k); }
            const n = (await inbox(box)).length;
            if (opts.record) out(`!inbox ${n}`);
            else if (n !== Number(step.args[0])) {
              fail(step.lineNo, `expected ${step.args[0]} messages in INBOX, found ${n}`);
            }
            break;
          }
          case "closed": {
            const c = await connection(step.conn, step.lineNo);
            if (opts.record) {
              await drain(step.conn);
              out(`!closed ${step.conn} (${c.eof ? "closed" : "still open"})`);
              break;
            }
            const l = await c.line(lineTimeoutMs);
            if (l !== null) fail(step.lineNo, `expected the connection to close, got: ${l}`);
            if (!c.eof) fail(step.lineNo, "the server did not close the connection");
            break;
          }
          case "starttls": {
            const c = await connection(step.conn, step.lineNo);
            if (opts.record) await drain(step.conn);
            await c.startTls(box.caPem);
            break;
          }
          default:
            fail(step.lineNo, `unknown directive !${step.name}`);
        }
        continue;
      }
      const c = await connection(step.conn, step.lineNo);
      if (opts.record) {
        await drain(step.conn);
        continue;
      }
      const got = await c.line(lineTimeoutMs);
      if (got === null) {
        fail(
          step.lineNo,
          `expected ${JSON.stringify(step.source)}, got ${c.eof ? "end of connection" : "nothing"}`,
        );
      }
      const match = compilePattern(step, vars).exec(got!);
      if (!match) {
        fail(
          step.lineNo,
          `expected ${JSON.stringify(step.source)}\n       got ${JSON.stringify(got)}`,
        );
      }
      for (const [k, v] of Object.entries(match!.groups ?? {})) vars.set(k, v);
    }
    await flush();
    for (const [k, c] of conns) {
      if (opts.record) {
        await drain(k);
        continue;
      }
      if (c.eof) continue;
      const extra = await c.line(50);
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
