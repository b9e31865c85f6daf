/**
 * IMAP response encoding (RFC 9051 §7, §9): {@linkcode ImapValue}s and
 * response lines written into large byte chunks, so that a 10,000-line
 * FETCH response costs a handful of socket writes and no string
 * concatenation.
 *
 * @example
 * ```ts
 * const w = new ResponseWriter();
 * w.untagged("3 FETCH", [atom("UID"), 17, atom("FLAGS"), [atom("\\Seen")]]);
 * w.tagged("a1", "OK", "FETCH completed");
 * for (const chunk of w.take()) await conn.write(chunk);
 * ```
 * @module
 */

import { concatBytes } from "../../src/encoding.ts";
import type { ImapValue } from "../../src/mime/imap_value.ts";

/** How values are written. */
export interface ValueOptions {
  /** Write byte strings as `~{n}` literal8 (RFC 3516 BINARY[] responses). */
  binary?: boolean;
}

const DEFAULT_CHUNK_BYTES = 64 * 1024;
const utf8 = new TextEncoder();

/** Whether `s` can be sent as a quoted string: 7-bit, no NUL, CR or LF (RFC 9051 §9 `quoted`). */
export function isQuotable(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0 || c === 0x0a || c === 0x0d || c > 0x7f) return false;
  }
  return true;
}

/** Response text must stay on one line (RFC 9051 §9 `text` excludes CR and LF). */
function oneLine(text: string): string {
  return /[\r\n\0]/.test(text) ? text.replace(/[\r\n\0]+/g, " ") : text;
}

/**
 * Accumulates response bytes in chunks of about `chunkBytes`. Large byte
 * strings (message bodies) are passed through without copying.
 */
export class ResponseWriter {
  readonly #chunkBytes: number;
  #chunks: Uint8Array[] = [];
  #taken = 0; // bytes in #chunks
  #buf: Uint8Array;
  #len = 0;

  constructor(chunkBytes = DEFAULT_CHUNK_BYTES) {
    this.#chunkBytes = chunkBytes;
    this.#buf = new Uint8Array(chunkBytes);
  }

  /** Bytes written and not yet taken. */
  get byteLength(): number {
    return this.#taken + this.#len;
  }

  /** The bytes written so far, as chunks for socket writes; the writer is empty afterwards. */
  take(): Uint8Array[] {
    if (this.#len > 0) {
      if (this.#len < 4096) {
        this.#chunks.push(this.#buf.slice(0, this.#len));
      } else {
        this.#chunks.push(this.#buf.subarray(0, this.#len));
        this.#buf = new Uint8Array(this.#chunkBytes);
      }
      this.#len = 0;
    }
    const out = this.#chunks;
    this.#chunks = [];
    this.#taken = 0;
    return out;
  }

  #seal(): void {
    if (this.#len === 0) return;
    this.#chunks.push(this.#buf.subarray(0, this.#len));
    this.#taken += this.#len;
    this.#buf = new Uint8Array(this.#chunkBytes);
    this.#len = 0;
  }

  #room(n: number): void {
    if (this.#buf.length - this.#len < n) this.#seal();
  }

  /** Write text as it is (UTF-8); the caller is responsible for its syntax. */
  text(s: string): this {
    // Worst case 3 bytes per UTF-16 unit.
    if (s.length * 3 > this.#chunkBytes) return this.bytes(utf8.encode(s));
    this.#room(s.length * 3);
    const buf = this.#buf;
    let len = this.#len;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) {
        len += utf8.encodeInto(s.slice(i), buf.subarray(len)).written;
        break;
      }
      buf[len++] = c;
    }
    this.#len = len;
    return this;
  }

  /** Write bytes as they are; large arrays are kept by reference, not copied. */
  bytes(b: Uint8Array): this {
    if (b.length <= 1024 && b.length <= this.#chunkBytes) {
      this.#room(b.length);
      this.#buf.set(b, this.#len);
      this.#len += b.length;
    } else {
      this.#seal();
      this.#chunks.push(b);
      this.#taken += b.length;
    }
    return this;
  }

  /** Write CRLF. */
  crlf(): this {
    this.#room(2);
    this.#buf[this.#len++] = 0x0d;
    this.#buf[this.#len++] = 0x0a;
    return this;
  }

  /** Write a literal, `{n}\r\n` then the bytes, or `~{n}\r\n` with `binary`. */
  literal(data: Uint8Array, binary = false): this {
    this.text(`${binary ? "~" : ""}{${data.length}}\r\n`);
    return this.bytes(data);
  }

  /** Write a string as a quoted string when it can be, else as a literal of its UTF-8 bytes. */
  string(s: string): this {
    if (!isQuotable(s)) return this.literal(utf8.encode(s));
    if (s.length * 2 + 2 > this.#chunkBytes) return this.text(`"${s.replace(/["\\]/g, "\\$&")}"`);
    // Quoting can at most double the length.
    this.#room(s.length * 2 + 2);
    const buf = this.#buf;
    let len = this.#len;
    buf[len++] = 0x22;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c === 0x22 || c === 0x5c) buf[len++] = 0x5c;
      buf[len++] = c;
    }
    buf[len++] = 0x22;
    this.#len = len;
    return this;
  }

  /** Write an {@linkcode ImapValue} (RFC 9051 §4). */
  value(v: ImapValue, opts: ValueOptions = {}): this {
    if (v === null) return this.text("NIL");
    if (typeof v === "number") {
      if (!Number.isSafeInteger(v) || v < 0) {
        throw new RangeError(`IMAP numbers are non-negative integers, got ${v}`);
      }
      return this.text(String(v));
    }
    if (typeof v === "string") return this.string(v);
    if (v instanceof Uint8Array) return this.literal(v, opts.binary === true);
    if (Array.isArray(v)) {
      this.text("(");
      for (let i = 0; i < v.length; i++) {
        if (i > 0) this.text(" ");
        this.value(v[i], opts);
      }
      return this.text(")");
    }
    return this.text(v.atom);
  }

  /** Write `* text[ value...]\r\n`, e.g. `untagged("3 EXISTS")` or `untagged("5 FETCH", [...])`. */
  untagged(text: string, ...values: ImapValue[]): this {
    this.text("* ").text(text);
    for (const v of values) this.text(" ").value(v);
    return this.crlf();
  }

  /**
   * Write a status response: `tag OK [CODE] text\r\n`; `tag` `"*"` makes it
   * untagged. `code` is written as it is (e.g. `"COPYUID 7 1:3 10:12"`).
   */
  status(
    tag: string,
    status: "OK" | "NO" | "BAD" | "BYE" | "PREAUTH",
    text: string,
    code?: string,
  ): this {
    this.text(tag).text(" ").text(status).text(" ");
    if (code) this.text("[").text(oneLine(code)).text("] ");
    return this.text(oneLine(text)).crlf();
  }

  /** Write a tagged completion, `tag OK|NO|BAD [CODE] text\r\n`. */
  tagged(tag: string, status: "OK" | "NO" | "BAD", text: string, code?: string): this {
    return this.status(tag, status, text, code);
  }

  /** Write a continuation request, `+ text\r\n` (RFC 9051 §7.6). */
  continuation(text = "Ready for literal data"): this {
    return this.text("+ ").text(oneLine(text)).crlf();
  }
}

/**
 * Encode one value to bytes.
 *
 * @example
 * ```ts
 * new TextDecoder().decode(encodeValue(["a\"b", null, 3])); // '("a\\"b" NIL 3)'
 * ```
 */
export function encodeValue(v: ImapValue, opts: ValueOptions = {}): Uint8Array {
  const chunks = new ResponseWriter(4096).value(v, opts).take();
  return concatChunks(chunks);
}

/** Join chunks into one array. */
export const concatChunks: (chunks: Uint8Array[]) => Uint8Array = concatBytes;

/** The bytes of a tagged or untagged status line, `tag OK [CODE] text\r\n`. */
export function statusLine(
  tag: string,
  status: "OK" | "NO" | "BAD" | "BYE" | "PREAUTH",
  text: string,
  code?: string,
): Uint8Array {
  return concatChunks(new ResponseWriter(512).status(tag, status, text, code).take());
}

/** The bytes of a continuation request, `+ text\r\n`. */
export function continuationLine(text = "Ready for literal data"): Uint8Array {
  return concatChunks(new ResponseWriter(512).continuation(text).take());
}
