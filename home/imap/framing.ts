/**
 * Incremental IMAP command framing: turns socket bytes into whole commands
 * (lines and literals), asks for literal continuations, and enforces the
 * size limits before buffering anything, so that memory stays bounded
 * whatever a client sends.
 *
 * The session drives it: `push()` each chunk read from the socket, then call
 * `next()` until it returns `undefined`; handle each event before calling
 * `next()` again (after IDLE or AUTHENTICATE, call `expectRawLine()` first).
 *
 * @example
 * ```ts
 * const framer = new CommandFramer({ onContinuation: () => write("+ Ready for literal data\r\n") });
 * framer.push(new TextEncoder().encode("a1 LOGIN {3}\r\n"));
 * framer.next(); // undefined, and onContinuation was called
 * framer.push(new TextEncoder().encode("bob pw\r\n"));
 * framer.next(); // { type: "command", frame: { lines: [...2], literals: [...1] } }
 * ```
 * @module
 */

import { limits } from "../../src/limits.ts";

/** A literal of a command: the bytes after `{n}` / `{n+}`, or `~{n}` (`binary`, RFC 3516). */
export interface FrameLiteral {
  data: Uint8Array;
  binary: boolean;
}

/**
 * One complete command. `lines` has one more entry than `literals`: each line
 * but the last ends with a literal announcement (`{n}`, `{n+}`, `~{n}`) and is
 * followed by `literals[i]`. Lines exclude the CRLF.
 */
export interface Frame {
  lines: Uint8Array[];
  literals: FrameLiteral[];
}

/** What the session learns from {@linkcode CommandFramer.next}. */
export type FramerEvent =
  /** A complete command, for the parser. */
  | { type: "command"; frame: Frame }
  /** The line asked for by {@linkcode CommandFramer.expectRawLine}, without CRLF. */
  | { type: "line"; line: Uint8Array }
  /**
   * A command refused before it was complete (a line too long, a literal too
   * big, too many literals). Write `tag status [code] text` (`*` when `tag`
   * is null); the framer discards the rest of that command by itself.
   */
  | { type: "reject"; tag: string | null; status: "BAD" | "NO"; code?: "TOOBIG"; text: string };

/** Size limits of the framer; the defaults come from `src/limits.ts`. */
export interface FramerLimits {
  lineBytes: number;
  literalBytes: number;
  appendLiteralBytes: number;
  commandBytes: number;
  appendCommandBytes: number;
  literalsPerCommand: number;
}

export interface FramerOptions {
  /**
   * Called when a synchronising literal `{n}` has passed the size checks: the
   * session writes `+ Ready for literal data\r\n` so that the client sends it.
   */
  onContinuation?: () => void;
  limits?: Partial<FramerLimits>;
}

/** A literal announcement at the end of a line. */
interface Announcement {
  size: number;
  sync: boolean;
  binary: boolean;
}

const LF = 0x0a;
const CR = 0x0d;
const TAIL_BYTES = 48;

/**
 * Split a stream of IMAP client bytes into commands (RFC 9051 §2.2, §4.3).
 * See the module documentation for how a session drives it.
 */
export class CommandFramer {
  readonly #limits: FramerLimits;
  readonly #onContinuation: () => void;

  #chunks: Uint8Array[] = [];
  #pos = 0; // offset in #chunks[0]

  // The line being read. Past the line limit it is dropped; only its tail
  // is kept, to notice a literal announcement at its end.
  #line = new Uint8Array(1024);
  #lineLen = 0;
  #overflow = false;
  #tail = new Uint8Array(TAIL_BYTES);
  #tailLen = 0;

  // The literal being read.
  #literalLeft = -1; // -1: reading a line
  #literal: Uint8Array | null = null; // null: discard the bytes
  #literalLen = 0;
  #literalBinary = false;

  // The command being assembled.
  #inCommand = false;
  #lines: Uint8Array[] = [];
  #literals: FrameLiteral[] = [];
  #tag: string | null = null;
  #isAppend = false;
  #commandBytes = 0;
  #discarding = false;

  #rawLine = false;

  constructor(options: FramerOptions = {}) {
    this.#limits = {
      lineBytes: limits.imapLineBytes,
      literalBytes: limits.imapLiteralBytes,
      appendLiteralBytes: limits.messageBytes,
      commandBytes: limits.imapCommandBytes,
      appendCommandBytes: limits.imapMultiAppendBytes,
      literalsPerCommand: limits.imapLiteralsPerCommand,
      ...options.limits,
    };
    this.#onContinuation = options.onContinuation ?? (() => {});
  }

  /**
   * Add bytes read from the socket. The framer keeps a reference to `chunk`
   * until `next()` has returned `undefined`: do not reuse its buffer before.
   */
  push(chunk: Uint8Array): void {
    if (chunk.length > 0) this.#chunks.push(chunk);
  }

  /** Bytes pushed but not yet consumed by `next()`. */
  get bufferedBytes(): number {
    let n = 0;
    for (const c of this.#chunks) n += c.length;
    return n === 0 ? 0 : n - this.#pos;
  }

  /**
   * Deliver the next complete line as it is (a `line` event), not as a
   * command: for IDLE's `DONE` and AUTHENTICATE's continuation lines.
   * Call it between commands, before the next call to `next()`.
   */
  expectRawLine(): void {
    this.#rawLine = true;
  }

  /** The next event, or `undefined` when more bytes are needed. */
  next(): FramerEvent | undefined {
    while (this.#chunks.length > 0) {
      const chunk = this.#chunks[0];
      if (this.#literalLeft >= 0) {
        const n = Math.min(this.#literalLeft, chunk.length - this.#pos);
        if (this.#literal) this.#appendLiteral(chunk.subarray(this.#pos, this.#pos + n));
        this.#advance(n);
        this.#literalLeft -= n;
        if (this.#literalLeft > 0) continue;
        this.#finishLiteral();
        continue;
      }
      const lf = chunk.indexOf(LF, this.#pos);
      const end = lf < 0 ? chunk.length : lf;
      this.#appendLine(chunk.subarray(this.#pos, end));
      this.#advance(end - this.#pos + (lf < 0 ? 0 : 1));
      if (lf < 0) continue;
      const event = this.#endOfLine();
      if (event) return event;
    }
    return undefined;
  }

  #advance(n: number): void {
    this.#pos += n;
    if (this.#pos >= this.#chunks[0].length) {
      this.#chunks.shift();
      this.#pos = 0;
    }
  }

  #appendLine(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    if (this.#overflow) {
      this.#keepTail(bytes);
      return;
    }
    // One extra byte for the CR of a CRLF line end.
    const capacity = this.#limits.lineBytes + 1;
    const need = this.#lineLen + bytes.length;
    if (need > this.#line.length) {
      const grown = new Uint8Array(Math.min(Math.max(need, this.#line.length * 2), capacity));
      grown.set(this.#line.subarray(0, this.#lineLen));
      this.#line = grown;
    }
    if (need > capacity) {
      // Keep the start (for the tag) and the tail (for a literal announcement).
      this.#keepTail(this.#line.subarray(0, this.#lineLen));
      this.#keepTail(bytes);
      this.#line.set(bytes.subarray(0, capacity - this.#lineLen), this.#lineLen);
      this.#lineLen = capacity;
      this.#overflow = true;
      return;
    }
    this.#line.set(bytes, this.#lineLen);
    this.#lineLen = need;
  }

  #keepTail(bytes: Uint8Array): void {
    if (bytes.length >= TAIL_BYTES) {
      this.#tail.set(bytes.subarray(bytes.length - TAIL_BYTES));
      this.#tailLen = TAIL_BYTES;
      return;
    }
    const keep = Math.min(this.#tailLen, TAIL_BYTES - bytes.length);
    this.#tail.copyWithin(0, this.#tailLen - keep, this.#tailLen);
    this.#tail.set(bytes, keep);
    this.#tailLen = keep + bytes.length;
  }

  #appendLiteral(bytes: Uint8Array): void {
    const lit = this.#literal!;
    const need = this.#literalLen + bytes.length;
    if (need > lit.length) {
      // Grow as the bytes arrive, not on the announcement alone.
      const grown = new Uint8Array(
        Math.min(Math.max(need, lit.length * 2), this.#literalLeft + this.#literalLen),
      );
      grown.set(lit.subarray(0, this.#literalLen));
      this.#literal = grown;
    }
    this.#literal!.set(bytes, this.#literalLen);
    this.#literalLen = need;
  }

  #finishLiteral(): void {
    if (this.#literal) {
      this.#literals.push({
        data: this.#literal.subarray(0, this.#literalLen),
        binary: this.#literalBinary,
      });
    }
    this.#literal = null;
    this.#literalLen = 0;
    this.#literalLeft = -1;
  }

  /** A line is complete: decide what it means. */
  #endOfLine(): FramerEvent | undefined {
    const overflow = this.#overflow;
    let line: Uint8Array;
    if (overflow) {
      let n = this.#tailLen;
      if (n > 0 && this.#tail[n - 1] === CR) n--;
      line = this.#tail.slice(0, n);
    } else {
      let n = this.#lineLen;
      if (n > 0 && this.#line[n - 1] === CR) n--;
      line = this.#line.slice(0, n);
    }
    const head = this.#line.subarray(0, this.#lineLen);
    this.#lineLen = 0;
    this.#tailLen = 0;
    this.#overflow = false;

    if (this.#rawLine && !this.#inCommand) {
      this.#rawLine = false;
      if (overflow) {
        return { type: "reject", tag: null, status: "BAD", text: "Line too long" };
      }
      return { type: "line", line };
    }

    if (!this.#inCommand) {
      if (line.length === 0 && !overflow) return undefined; // empty lines are ignored
      this.#inCommand = true;
      // An overlong first line keeps only its tail: take the tag from the
      // start of the buffer, which still holds the first bytes.
      this.#tag = tagOf(head);
      this.#isAppend = commandNameOf(head) === "APPEND";
    }
    // Give back the memory of an unusually long line.
    if (this.#line.length > 16 * 1024) this.#line = new Uint8Array(1024);

    const announced = announcementAt(line);
    let reject: FramerEvent | undefined;
    if (overflow) {
      reject = this.#reject(
        "BAD",
        undefined,
        `Command line longer than ${this.#limits.lineBytes} bytes`,
      );
    } else if (!this.#discarding) {
      this.#commandBytes += line.length;
      if (announced) {
        const limit = this.#isAppend ? this.#limits.appendLiteralBytes : this.#limits.literalBytes;
        const total = this.#isAppend ? this.#limits.appendCommandBytes : this.#limits.commandBytes;
        if (this.#literals.length + 1 > this.#limits.literalsPerCommand) {
          reject = this.#reject(
            "BAD",
            undefined,
            `More than ${this.#limits.literalsPerCommand} literals in one command`,
          );
        } else if (announced.size > limit) {
          // RFC 9051 §7.1 TOOBIG; RFC 7888 §4: a refused non-synchronising
          // literal is still sent by the client and must be read and dropped.
          reject = this.#reject(
            "NO",
            "TOOBIG",
            `Literal of ${announced.size} bytes is larger than the limit of ${limit} bytes`,
          );
        } else if (this.#commandBytes + announced.size > total) {
          reject = this.#reject(
            "NO",
            "TOOBIG",
            `Command is larger than the limit of ${total} bytes`,
          );
        }
      } else if (
        this.#commandBytes >
          (this.#isAppend ? this.#limits.appendCommandBytes : this.#limits.commandBytes)
      ) {
        reject = this.#reject("NO", "TOOBIG", "Command is too large");
      }
    }

    if (this.#discarding) {
      // Only non-synchronising literals of a refused command still arrive.
      if (announced && !announced.sync) {
        this.#startLiteral(announced, false);
      } else {
        this.#endCommand();
      }
      return reject;
    }

    this.#lines.push(line);
    if (!announced) {
      const frame: Frame = { lines: this.#lines, literals: this.#literals };
      this.#endCommand();
      return { type: "command", frame };
    }
    this.#commandBytes += announced.size;
    this.#startLiteral(announced, true);
    if (announced.sync) this.#onContinuation();
    if (this.#literalLeft === 0) this.#finishLiteral();
    return undefined;
  }

  #reject(status: "BAD" | "NO", code: "TOOBIG" | undefined, text: string): FramerEvent | undefined {
    if (this.#discarding) return undefined;
    this.#discarding = true;
    return code
      ? { type: "reject", tag: this.#tag, status, code, text }
      : { type: "reject", tag: this.#tag, status, text };
  }

  #startLiteral(a: Announcement, keep: boolean): void {
    this.#literalLeft = a.size;
    this.#literalBinary = a.binary;
    this.#literalLen = 0;
    this.#literal = keep ? new Uint8Array(Math.min(a.size, 64 * 1024)) : null;
    if (!keep && a.size === 0) this.#literalLeft = -1;
  }

  #endCommand(): void {
    this.#inCommand = false;
    this.#lines = [];
    this.#literals = [];
    this.#tag = null;
    this.#isAppend = false;
    this.#commandBytes = 0;
    this.#discarding = false;
  }
}

/** The literal announcement ending `line` (`{n}`, `{n+}`, `~{n}`), if any. */
function announcementAt(line: Uint8Array): Announcement | undefined {
  let i = line.length - 1;
  if (i < 2 || line[i] !== 0x7d) return undefined; // "}"
  i--;
  const sync = line[i] !== 0x2b; // "+"
  if (!sync) i--;
  const lastDigit = i;
  while (i >= 0 && line[i] >= 0x30 && line[i] <= 0x39) i--;
  if (i === lastDigit || i < 0 || line[i] !== 0x7b) return undefined; // "{"
  let size = 0;
  for (let k = i + 1; k <= lastDigit; k++) size = size * 10 + (line[k] - 0x30);
  // Beyond 2^53 the exact value no longer matters: it is over every limit.
  if (!Number.isSafeInteger(size)) size = Number.MAX_SAFE_INTEGER;
  return { size, sync, binary: i > 0 && line[i - 1] === 0x7e };
}

/** Whether `b` may appear in a tag (RFC 9051 §9: ASTRING-CHAR except "+"). */
export function isTagChar(b: number): boolean {
  return b > 0x20 && b < 0x7f && b !== 0x28 && b !== 0x29 && b !== 0x7b && b !== 0x25 &&
    b !== 0x2a && b !== 0x22 && b !== 0x5c && b !== 0x2b;
}

/** The tag at the start of a command line, or null when there is no valid one. */
export function tagOf(line: Uint8Array): string | null {
  let i = 0;
  while (i < line.length && isTagChar(line[i])) i++;
  if (i === 0 || (i < line.length && line[i] !== 0x20)) return null;
  return String.fromCharCode(...line.subarray(0, Math.min(i, 256)));
}

/** The upper-cased command name (skipping `UID`), enough to pick limits. */
function commandNameOf(line: Uint8Array): string {
  const words: string[] = [];
  let i = 0;
  for (let w = 0; w < 3 && i < line.length; w++) {
    const start = i;
    while (i < line.length && line[i] !== 0x20 && i - start < 16) i++;
    words.push(String.fromCharCode(...line.subarray(start, i)).toUpperCase());
    if (line[i] !== 0x20) break;
    i++;
  }
  return words[1] === "UID" ? (words[2] ?? "") : (words[1] ?? "");
}
