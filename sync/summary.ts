/**
 * Message summaries: what a phone needs to list a message (sender, subject,
 * date, a snippet of the text), made by the home box from the stored message
 * or by the phone from a sealed blob it holds, so both give the same result.
 * They travel inside sealed sync envelopes (sync/messages.ts), many in one
 * gzip-compressed batch:
 *
 * `u8 version=1`, then per message `u8 n | n key bytes | varint date (seconds,
 * 0 unknown) | str from | str subject | str snippet`, where `str` is `varint
 * length | UTF-8`. The key is the first 64 bits of the blob id
 * ({@linkcode summaryKey}): a full id would be a fifth of a compressed batch,
 * and two messages of one account sharing 64 bits is beyond likely (about
 * 3 in 10^8 at a million messages).
 *
 * @example
 * ```ts
 * const s = summarize(raw);
 * const bytes = await encodeSummaries([[blobId, s]]);
 * const back = await decodeSummaries(bytes); // [[summaryKey(blobId), s]]
 * ```
 */
import { gzip } from "../src/compress.ts";
import { toHex } from "../src/encoding.ts";
import { limits } from "../src/limits.ts";
import { readableMessage } from "../src/mime/readable.ts";

export interface Summary {
  /** The first From mailbox as a list shows it: its display name, else its address. */
  from: string;
  subject: string;
  /** The Date: header in ms since the epoch (whole seconds), or 0 when unknown. */
  date: number;
  /** The start of the text body, quoted lines left out, blanks collapsed. */
  snippet: string;
}

/** Longest from and subject kept in a summary (a listing shows one line of each). */
const fieldChars = 200;
/** Most decompressed bytes of one batch (a batch holds at most a few thousand summaries). */
const maxBatchBytes = 16 * 1024 * 1024;
const version = 1;

function fromHex(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** The key a summary is kept and sent under: the first 64 bits of the blob id, in hex. */
export function summaryKey(blob: string): string {
  return blob.slice(0, 16);
}

/** Cuts `s` to at most `n` UTF-16 units without splitting a surrogate pair. */
function cut(s: string, n: number): string {
  if (s.length <= n) return s;
  const code = s.charCodeAt(n - 1);
  return s.slice(0, code >= 0xd800 && code <= 0xdbff ? n - 1 : n);
}

/**
 * The summary of a message. Never throws.
 *
 * @example
 * ```ts
 * summarize(new TextEncoder().encode("From: A <a@x.test>\r\nSubject: Hi\r\n\r\nHello\r\n"));
 * // { from: "A", subject: "Hi", date: 0, snippet: "Hello" }
 * ```
 */
export function summarize(
  raw: Uint8Array,
  snippetChars: number = limits.phoneSnippetChars,
): Summary {
  const m = readableMessage(raw);
  const text = m.text.split("\n").filter((line) => !line.startsWith(">")).join(" ");
  return {
    from: cut(m.from[0]?.name || m.from[0]?.address || "", fieldChars),
    subject: cut(m.subject.replace(/\s+/g, " ").trim(), fieldChars),
    date: m.date === null || m.date < 0 ? 0 : Math.floor(m.date / 1000) * 1000,
    snippet: cut(text.replace(/\s+/g, " ").trim(), snippetChars),
  };
}

class Writer {
  bytes: number[] = [];
  varint(n: number) {
    // Unsigned LEB128; dates and lengths stay below 2^53.
    while (n >= 0x80) {
      this.bytes.push((n % 0x80) | 0x80);
      n = Math.floor(n / 0x80);
    }
    this.bytes.push(n);
  }
  str(s: string) {
    const b = new TextEncoder().encode(s);
    this.varint(b.length);
    for (const x of b) this.bytes.push(x);
  }
}

/**
 * Encodes summaries keyed by blob id (lower-case hex) into one compressed batch; they come
 * back keyed by {@linkcode summaryKey}.
 */
export async function encodeSummaries(entries: [string, Summary][]): Promise<Uint8Array> {
  const w = new Writer();
  w.bytes.push(version);
  for (const [id, s] of entries) {
    if (!/^(?:[0-9a-f]{2})+$/.test(id)) throw new RangeError(`not a blob id: ${id}`);
    const b = fromHex(summaryKey(id));
    w.bytes.push(b.length, ...b);
    w.varint(Math.max(0, Math.floor(s.date / 1000)));
    w.str(s.from);
    w.str(s.subject);
    w.str(s.snippet);
  }
  return await gzip(new Uint8Array(w.bytes));
}

/** Decompresses at most `max` bytes; a larger result is refused. */
async function gunzipBounded(data: Uint8Array, max: number): Promise<Uint8Array> {
  const stream = new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new DecompressionStream("gzip"),
  );
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for await (const chunk of stream) {
      size += chunk.length;
      if (size > max) throw new RangeError("summary batch is too large");
      chunks.push(chunk);
    }
  } catch (e) {
    if (e instanceof RangeError) throw e;
    throw new RangeError("summary batch is not gzip");
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Decodes a batch from {@linkcode encodeSummaries}; throws RangeError on anything malformed. */
export async function decodeSummaries(bytes: Uint8Array): Promise<[string, Summary][]> {
  const b = await gunzipBounded(bytes, maxBatchBytes);
  if (b[0] !== version) throw new RangeError("unknown summary batch version");
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  let at = 1;
  const need = (n: number) => {
    if (at + n > b.length) throw new RangeError("summary batch is truncated");
  };
  const varint = () => {
    let n = 0;
    for (let shift = 1;; shift *= 0x80) {
      need(1);
      const x = b[at++];
      n += (x & 0x7f) * shift;
      if (x < 0x80) return n;
      if (shift > 2 ** 42) throw new RangeError("summary varint is too long");
    }
  };
  const str = () => {
    const n = varint();
    need(n);
    try {
      return utf8.decode(b.subarray(at, at += n));
    } catch {
      throw new RangeError("summary text is not UTF-8");
    }
  };
  const out: [string, Summary][] = [];
  while (at < b.length) {
    const n = b[at++];
    if (n === 0) throw new RangeError("empty blob id in a summary");
    need(n);
    const id = toHex(b.subarray(at, at += n));
    const date = varint() * 1000;
    out.push([id, { from: str(), subject: str(), date, snippet: str() }]);
  }
  return out;
}
