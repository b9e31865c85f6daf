/**
 * Token reader over a framed IMAP command (RFC 9051 §4, §9): atoms, numbers,
 * quoted strings, literals and parentheses, with the syntax limits of
 * `src/limits.ts`. The parser builds commands on top of it.
 * @module
 */

import { ProtocolError } from "../../src/errors.ts";
import { limits } from "../../src/limits.ts";
import type { Frame } from "./framing.ts";
import { decodeMutf7 } from "./mutf7.ts";

/** A BAD response for malformed syntax. */
export function bad(text: string): ProtocolError {
  return new ProtocolError("BAD", text);
}

const SP = 0x20;
const DQUOTE = 0x22;
const BACKSLASH = 0x5c;
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

/** RFC 9051 §9 ATOM-CHAR: any CHAR except atom-specials. */
export function isAtomChar(b: number): boolean {
  return b > 0x20 && b < 0x7f && b !== 0x28 && b !== 0x29 && b !== 0x7b && b !== 0x25 &&
    b !== 0x2a && b !== 0x22 && b !== 0x5c && b !== 0x5d;
}
/** ASTRING-CHAR: ATOM-CHAR or "]". */
function isAstringChar(b: number): boolean {
  return isAtomChar(b) || b === 0x5d;
}
/** list-char: ATOM-CHAR, list-wildcards or "]". */
function isListChar(b: number): boolean {
  return isAstringChar(b) || b === 0x25 || b === 0x2a;
}

function ascii(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    s += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return s;
}

/** Decode bytes as UTF-8; invalid UTF-8 is a BAD. */
export function decodeUtf8(bytes: Uint8Array, what = "String"): string {
  try {
    return utf8Strict.decode(bytes);
  } catch {
    throw bad(`${what} is not valid UTF-8`);
  }
}

/** Reads one command, segment by segment. */
export class Reader {
  readonly utf8: boolean;
  readonly #lines: Uint8Array[];
  readonly #literals: Frame["literals"];
  #seg = 0;
  #line: Uint8Array;
  #pos = 0;
  #depth = 0;
  #parens = 0;

  constructor(frame: Frame, opts: { utf8: boolean }) {
    this.utf8 = opts.utf8;
    this.#lines = frame.lines;
    this.#literals = frame.literals;
    this.#line = frame.lines[0] ?? new Uint8Array(0);
    if (frame.literals.length > limits.imapLiteralsPerCommand) {
      throw bad(`More than ${limits.imapLiteralsPerCommand} literals in one command`);
    }
    for (const line of frame.lines) {
      if (line.indexOf(0) >= 0) throw bad("NUL characters are not allowed in commands");
    }
  }

  /** Whether the whole command has been read. */
  atEnd(): boolean {
    return this.#seg >= this.#lines.length - 1 && this.#pos >= this.#line.length;
  }

  /** The next byte of the current line, or -1 at its end. */
  peek(offset = 0): number {
    const i = this.#pos + offset;
    return i < this.#line.length ? this.#line[i] : -1;
  }

  /** Whether the next bytes are `word` (ASCII, case-insensitive) followed by a delimiter. */
  peekWord(word: string): boolean {
    for (let i = 0; i < word.length; i++) {
      const b = this.peek(i);
      if (b < 0 || (b | 0x20) !== (word.charCodeAt(i) | 0x20)) return false;
    }
    const after = this.peek(word.length);
    return after === -1 || after === SP || after === 0x29 || after === 0x28;
  }

  /** Consume byte `b` or fail with `what` in the message. */
  expect(b: number, what: string): void {
    if (this.peek() !== b) throw bad(`Expected ${what} ${this.#where()}`);
    this.#pos++;
  }

  /** Consume byte `b` if it is next. */
  maybe(b: number): boolean {
    if (this.peek() !== b) return false;
    this.#pos++;
    return true;
  }

  /** Exactly one space. */
  sp(): void {
    if (this.peek() !== SP) {
      if (this.atEnd()) {
        throw bad(this.#parens > 0 ? 'Missing ")" at end of command' : "Missing arguments");
      }
      throw bad(`Expected a space ${this.#where()}`);
    }
    this.#pos++;
  }

  /** Fail unless the command has been fully read. */
  end(): void {
    if (!this.atEnd()) {
      throw bad(
        `Unexpected ${this.peek() === SP ? "extra arguments" : "characters"} ${this.#where()}`,
      );
    }
  }

  /** `(`; `countDepth` false when the caller counts nesting itself. */
  open(countDepth = true): void {
    this.expect(0x28, '"("');
    this.#parens++;
    if (countDepth) this.enter();
  }

  /** `)`. */
  close(countDepth = true): void {
    this.expect(0x29, '")"');
    this.#parens--;
    if (countDepth) this.leave();
  }

  /** `)` if it is next, closing an `open()`. */
  maybeClose(): boolean {
    if (this.peek() !== 0x29) return false;
    this.close();
    return true;
  }

  /** Count one level of nesting (parentheses or nested search keys). */
  enter(): void {
    if (++this.#depth > limits.imapNestingDepth) {
      throw bad(`Nesting deeper than ${limits.imapNestingDepth} levels`);
    }
  }

  leave(): void {
    this.#depth--;
  }

  /** A description of the current position for error messages. */
  #where(): string {
    if (this.atEnd()) return "at end of command";
    if (this.#pos >= this.#line.length) return "before a literal";
    const rest = ascii(this.#line.subarray(this.#pos, this.#pos + 20)).replace(
      /[^\x20-\x7e]/g,
      "?",
    );
    return `at "${rest}"`;
  }

  #run(accept: (b: number) => boolean): Uint8Array {
    const start = this.#pos;
    while (this.#pos < this.#line.length && accept(this.#line[this.#pos])) this.#pos++;
    return this.#line.subarray(start, this.#pos);
  }

  #checkNot8bit(): void {
    if (this.peek() >= 0x80) {
      throw bad(
        "8-bit characters are not allowed in atoms; send them as a quoted string or literal",
      );
    }
  }

  /** 1*ATOM-CHAR. */
  atom(what = "an atom"): string {
    const bytes = this.#run(isAtomChar);
    this.#checkNot8bit();
    if (bytes.length === 0) throw bad(`Expected ${what} ${this.#where()}`);
    return ascii(bytes);
  }

  /** Bytes matching `accept` (e.g. a sequence set or a fetch item name); may be empty. */
  chars(accept: (b: number) => boolean): string {
    const bytes = this.#run(accept);
    this.#checkNot8bit();
    return ascii(bytes);
  }

  /** number (RFC 9051 §9): 32-bit unsigned. */
  number(what = "a number"): number {
    const digits = this.chars((b) => b >= 0x30 && b <= 0x39);
    if (digits === "" || digits.length > 10 || Number(digits) > 0xffffffff) {
      throw bad(`Expected ${what} ${this.#where()}`);
    }
    return Number(digits);
  }

  /** number64: 63-bit unsigned, returned as a safe integer. */
  number64(what = "a number"): number {
    const digits = this.chars((b) => b >= 0x30 && b <= 0x39);
    if (digits === "" || digits.length > 16 || !Number.isSafeInteger(Number(digits))) {
      throw bad(`Expected ${what} ${this.#where()}`);
    }
    return Number(digits);
  }

  /** mod-sequence-valzer (RFC 7162 §7): 63-bit unsigned. */
  modseq(what = "a mod-sequence"): bigint {
    const digits = this.chars((b) => b >= 0x30 && b <= 0x39);
    if (digits === "" || digits.length > 19 || BigInt(digits) > 0x7fffffffffffffffn) {
      throw bad(`Expected ${what} ${this.#where()}`);
    }
    return BigInt(digits);
  }

  /** Whether a string (quoted or literal) starts here. */
  atString(): boolean {
    const b = this.peek();
    return b === DQUOTE || b === 0x7b || (b === 0x7e && this.peek(1) === 0x7b);
  }

  /** quoted / literal (RFC 9051 §9 `string`), as bytes. */
  string(what = "a string"): Uint8Array {
    const b = this.peek();
    if (b === DQUOTE) return this.#quoted();
    if (b === 0x7b || b === 0x7e) {
      const lit = this.literal();
      if (lit.binary) throw bad("Binary literals ~{n} are only allowed for APPEND message data");
      if (lit.data.indexOf(0) >= 0) throw bad("NUL characters are not allowed in literals");
      return lit.data;
    }
    throw bad(`Expected ${what} ${this.#where()}`);
  }

  #quoted(): Uint8Array {
    this.#pos++;
    const line = this.#line;
    let out: number[] | null = null;
    const start = this.#pos;
    while (this.#pos < line.length) {
      const c = line[this.#pos];
      if (c === DQUOTE) {
        const bytes = out ? Uint8Array.from(out) : line.subarray(start, this.#pos);
        this.#pos++;
        return bytes;
      }
      if (c === BACKSLASH) {
        const e = line[this.#pos + 1];
        // RFC 9051 §9 quoted-specials: only \" and \\ are escapes.
        if (e !== DQUOTE && e !== BACKSLASH) {
          throw bad('Only \\" and \\\\ may be escaped in a quoted string');
        }
        out ??= Array.from(line.subarray(start, this.#pos));
        out.push(e);
        this.#pos += 2;
        continue;
      }
      out?.push(c);
      this.#pos++;
    }
    throw bad("Unterminated quoted string");
  }

  /** A literal `{n}`, `{n+}` or `~{n}` ending the current line: its data. */
  literal(): { data: Uint8Array; binary: boolean } {
    const binary = this.maybe(0x7e);
    this.expect(0x7b, '"{"');
    const size = this.number64("a literal size");
    this.maybe(0x2b);
    this.expect(0x7d, '"}"');
    const lit = this.#literals[this.#seg];
    if (this.#pos !== this.#line.length || !lit) {
      throw bad("A literal announcement must end the line");
    }
    if (lit.data.length !== size || lit.binary !== binary) throw bad("Literal size mismatch");
    this.#seg++;
    this.#line = this.#lines[this.#seg];
    this.#pos = 0;
    return lit;
  }

  /** astring: 1*ASTRING-CHAR or a string, as bytes. */
  astring(what = "a string"): Uint8Array {
    if (this.atString()) return this.string(what);
    const bytes = this.#run(isAstringChar);
    this.#checkNot8bit();
    if (bytes.length === 0) throw bad(`Expected ${what} ${this.#where()}`);
    return bytes;
  }

  /** An astring decoded as UTF-8 text. */
  astringText(what = "a string"): string {
    return decodeUtf8(this.astring(what), what);
  }

  /** nstring: a string or NIL. */
  nstring(what = "a string or NIL"): Uint8Array | null {
    if (!this.atString() && this.peekWord("NIL")) {
      this.#pos += 3;
      return null;
    }
    return this.string(what);
  }

  /** list-mailbox: 1*list-char or a string (LIST patterns may hold % and *). */
  listMailbox(): string {
    if (this.atString()) return this.#mailboxName(this.string("a mailbox pattern"));
    const bytes = this.#run(isListChar);
    this.#checkNot8bit();
    if (bytes.length === 0) throw bad(`Expected a mailbox pattern ${this.#where()}`);
    return this.#mailboxName(bytes);
  }

  /** mailbox: an astring, decoded (UTF-8 or modified UTF-7), INBOX in any case as "INBOX". */
  mailbox(): string {
    return this.#mailboxName(this.astring("a mailbox name"));
  }

  #mailboxName(bytes: Uint8Array): string {
    let name: string;
    if (this.utf8) {
      name = decodeUtf8(bytes, "Mailbox name");
    } else {
      // RFC 3501 §5.1.3: IMAP4rev1 mailbox names are 7-bit modified UTF-7.
      for (const b of bytes) {
        if (b >= 0x80) {
          throw bad("8-bit mailbox names need UTF8=ACCEPT; encode the name as modified UTF-7");
        }
      }
      name = decodeMutf7(ascii(bytes));
    }
    // RFC 9051 §5.1: INBOX is case-insensitive.
    return name.length === 5 && name.toUpperCase() === "INBOX" ? "INBOX" : name;
  }
}
