import { type ContentValue, parseContentValue } from "./content_params.ts";
import { findField, type HeaderField, parseHeaderFields, unfoldedValue } from "./header.ts";
import { mimeLimits } from "./mime_limits.ts";

/**
 * One MIME entity of a message, located by byte offsets into the raw
 * message. Offsets are half-open: `raw.subarray(bodyStart, bodyEnd)` is the body.
 */
export interface MimePart {
  /** First octet of the header. */
  headerStart: number;
  /** Just after the blank line ending the header (equals bodyStart). */
  headerEnd: number;
  /** First octet of the body. */
  bodyStart: number;
  /** Just after the body; the line break before a boundary is not part of it (RFC 2046 §5.1.1). */
  bodyEnd: number;
  /** Header fields, in order. */
  fields: HeaderField[];
  /** Media type and subtype as written ("TEXT", "Plain"), or the RFC 2045 §5.2 default. */
  type: string;
  subtype: string;
  /** Parsed Content-Type, or null when absent or unparseable (the default applies). */
  contentType: ContentValue | null;
  /** Content-Transfer-Encoding as written, or null (7bit, RFC 2045 §6.1). */
  encoding: string | null;
  /** Content-ID, Content-Description, Content-MD5 and Content-Location, unfolded, as written. */
  id: string | null;
  description: string | null;
  md5: string | null;
  location: string | null;
  /** Content-Disposition (RFC 2183), or null. */
  disposition: ContentValue | null;
  /** Content-Language tags (RFC 3282), or null. */
  language: string[] | null;
  /** "multipart": children are its body parts; "message": children[0] is the embedded message. */
  kind: "multipart" | "message" | "leaf";
  /** True when nesting or part-count limits stopped parsing: the body is opaque data. */
  opaque: boolean;
  children: MimePart[];
}

/**
 * Parses a raw RFC 5322 message into its MIME part tree, byte-exact, in one
 * linear pass. Never throws: malformed input yields a best-effort tree (bare LF
 * line ends, missing blank line, missing or garbled boundaries, NUL octets).
 *
 * @example
 * ```ts
 * const root = parseMime(new TextEncoder().encode("Subject: hi\r\n\r\nhello\r\n"));
 * root.type; // "text"
 * root.bodyStart; // 15
 * ```
 */
export function parseMime(raw: Uint8Array): MimePart {
  return new MimeScanner(raw).parseEntity(0, 0, false).part;
}

const DASH = 0x2d;
const LF = 0x0a;
const CR = 0x0d;

class MimeScanner {
  /** Boundaries of the enclosing multiparts, innermost last, without the leading "--". */
  private boundaries: Uint8Array[] = [];
  /** Index in `boundaries` of the boundary found by the last findBoundary(), or -1. */
  private hit = -1;
  private parts = 0;
  private readonly end: number;

  constructor(private readonly raw: Uint8Array) {
    this.end = raw.length;
  }

  /** Parses the entity whose header starts at `start`; returns it and where it stopped. */
  parseEntity(start: number, depth: number, inDigest: boolean): { part: MimePart; next: number } {
    const out = this.parseEntityAt(start, depth, inDigest);
    // RFC 2046 §5.1.1: the line break before a boundary belongs to the boundary. A header that
    // ends right at a boundary line must not keep it, or the part (and its embedded message)
    // would reach past its parent's body, which ends before that line break (found by fuzzing).
    const end = this.bodyEndBefore(out.next, start);
    if (out.part.bodyEnd > end) clampPart(out.part, end);
    return out;
  }

  private parseEntityAt(
    start: number,
    depth: number,
    inDigest: boolean,
  ): { part: MimePart; next: number } {
    this.parts++;
    const part = this.readHeader(start, inDigest);
    if (part.bodyStart === part.bodyEnd && this.hit >= 0) {
      // The header ran into a boundary line: the part has no body.
      return { part, next: part.bodyEnd };
    }
    const tooDeep = depth >= mimeLimits.nestingDepth || this.parts >= mimeLimits.parts;
    const boundary = part.contentType?.params.get("boundary") ?? "";
    if (part.kind === "multipart" && boundary !== "" && !tooDeep) {
      return { part, next: this.parseMultipartBody(part, boundary, depth) };
    }
    if (part.kind === "message" && !tooDeep) {
      const inner = this.parseEntity(part.bodyStart, depth + 1, false);
      part.children.push(inner.part);
      part.bodyEnd = this.bodyEndBefore(inner.next, part.bodyStart);
      return { part, next: inner.next };
    }
    if (tooDeep && part.kind !== "leaf") {
      part.opaque = true;
      part.kind = "leaf";
    }
    // A multipart without a boundary (RFC 2046 §5.1.1 requires one) keeps no children.
    const next = this.findBoundary(part.bodyStart);
    part.bodyEnd = this.bodyEndBefore(next, part.bodyStart);
    return { part, next };
  }

  private parseMultipartBody(part: MimePart, boundary: string, depth: number): number {
    const b = new TextEncoder().encode(boundary);
    this.boundaries.push(b);
    const own = this.boundaries.length - 1;
    let p = this.findBoundary(part.bodyStart); // the preamble is skipped (RFC 2046 §5.1.1)
    const childInDigest = part.subtype.toLowerCase() === "digest";
    while (this.hit === own) {
      const after = p + 2 + b.length;
      const lineEnd = this.nextLine(p);
      if (this.raw[after] === DASH && this.raw[after + 1] === DASH) {
        // close-delimiter: the epilogue runs to an enclosing boundary or the end
        this.boundaries.pop();
        const next = this.findBoundary(lineEnd);
        part.bodyEnd = this.bodyEndBefore(next, part.bodyStart);
        return next;
      }
      if (this.parts >= mimeLimits.parts) break; // the rest is treated as epilogue
      const child = this.parseEntity(lineEnd, depth + 1, childInDigest);
      part.children.push(child.part);
      p = child.next;
    }
    // No close-delimiter (or too many parts): the multipart ends where an
    // enclosing boundary or the message ends.
    this.boundaries.pop();
    if (this.hit === own) p = this.findBoundary(p);
    part.bodyEnd = this.bodyEndBefore(p, part.bodyStart);
    return p;
  }

  /** Reads the header at `start` and the content fields that shape the part. */
  private readHeader(start: number, inDigest: boolean): MimePart {
    const raw = this.raw;
    let pos = start;
    let fieldsEnd = this.end;
    let headerEnd = this.end;
    this.hit = -1;
    while (pos < this.end) {
      const c = raw[pos];
      if (c === LF || (c === CR && raw[pos + 1] === LF)) {
        fieldsEnd = pos;
        headerEnd = pos + (c === LF ? 1 : 2);
        break;
      }
      if (c === DASH && this.isBoundaryLine(pos)) {
        fieldsEnd = headerEnd = pos;
        break;
      }
      pos = this.nextLine(pos);
    }
    const fields = parseHeaderFields(raw, start, fieldsEnd);
    const part: MimePart = {
      headerStart: start,
      headerEnd,
      bodyStart: headerEnd,
      bodyEnd: headerEnd,
      fields,
      type: inDigest ? "message" : "text",
      subtype: inDigest ? "rfc822" : "plain",
      contentType: null,
      encoding: this.simpleField(fields, "content-transfer-encoding"),
      id: this.simpleField(fields, "content-id"),
      description: this.simpleField(fields, "content-description"),
      md5: this.simpleField(fields, "content-md5"),
      location: this.simpleField(fields, "content-location"),
      disposition: null,
      language: null,
      kind: "leaf",
      opaque: false,
      children: [],
    };
    const ct = findField(fields, "content-type");
    if (ct) {
      const value = parseContentValue(unfoldedValue(raw, ct));
      // RFC 2045 §5.1: type "/" subtype, both tokens; anything else falls back to the default.
      const m = /^([^\s/]+)\s*\/\s*([^\s/]+)$/.exec(value.value);
      if (m) {
        part.type = m[1];
        part.subtype = m[2];
        part.contentType = value;
      }
    }
    const type = part.type.toLowerCase();
    const subtype = part.subtype.toLowerCase();
    if (type === "multipart") part.kind = "multipart";
    else if (type === "message" && (subtype === "rfc822" || subtype === "global")) {
      part.kind = "message"; // RFC 9051 §7.5.2 body-type-msg, RFC 6532 §3.7
    }
    const disposition = findField(fields, "content-disposition");
    if (disposition) {
      const value = parseContentValue(unfoldedValue(raw, disposition));
      if (value.value !== "") part.disposition = value;
    }
    const language = this.simpleField(fields, "content-language");
    if (language !== null) {
      // RFC 3282 §2: a comma-separated list of language tags, comments allowed.
      const tags = language.replace(/\([^)]*\)/g, "").split(",").map((t) => t.trim())
        .filter((t) => t !== "");
      if (tags.length > 0) part.language = tags;
    }
    return part;
  }

  private simpleField(fields: HeaderField[], name: string): string | null {
    const f = findField(fields, name);
    return f ? unfoldedValue(this.raw, f) : null;
  }

  /** Offset just after the line starting at `pos`. */
  private nextLine(pos: number): number {
    const nl = this.raw.indexOf(LF, pos);
    return nl < 0 ? this.end : nl + 1;
  }

  /** Whether the line at `pos` starts with "--" and an enclosing boundary; sets `hit`. */
  private isBoundaryLine(pos: number): boolean {
    const raw = this.raw;
    if (raw[pos] !== DASH || raw[pos + 1] !== DASH) return false;
    // Innermost first, so that an inner boundary that extends an outer one wins.
    outer: for (let i = this.boundaries.length - 1; i >= 0; i--) {
      const b = this.boundaries[i];
      if (pos + 2 + b.length > this.end) continue;
      for (let k = 0; k < b.length; k++) if (raw[pos + 2 + k] !== b[k]) continue outer;
      // Like Dovecot, text after the boundary on the same line is tolerated.
      this.hit = i;
      return true;
    }
    return false;
  }

  /** The start of the next boundary line at or after line start `pos`, or the end; sets `hit`. */
  private findBoundary(pos: number): number {
    this.hit = -1;
    if (this.boundaries.length === 0) return this.end;
    const raw = this.raw;
    let p = pos;
    while (p < this.end) {
      if (raw[p] === DASH && this.isBoundaryLine(p)) return p;
      const nl = raw.indexOf(LF, p);
      if (nl < 0) break;
      p = nl + 1;
    }
    this.hit = -1;
    return this.end;
  }

  /** Body end for a body cut by a boundary line at `next`: its preceding line break belongs to the boundary. */
  private bodyEndBefore(next: number, bodyStart: number): number {
    if (next >= this.end) return this.end;
    let e = next;
    if (e > bodyStart && this.raw[e - 1] === LF) e--;
    if (e > bodyStart && this.raw[e - 1] === CR) e--;
    return Math.max(e, bodyStart);
  }
}

/** Cuts a part (and its descendants) so that nothing of it lies past `end`. */
function clampPart(part: MimePart, end: number): void {
  part.headerStart = Math.min(part.headerStart, end);
  part.headerEnd = Math.min(part.headerEnd, end);
  part.bodyStart = Math.min(part.bodyStart, end);
  part.bodyEnd = Math.min(part.bodyEnd, end);
  for (const c of part.children) clampPart(c, end);
}

/**
 * Number of lines in a range: its line feeds, as Dovecot counts for the
 * BODYSTRUCTURE body-fld-lines of text/* and message/rfc822 parts.
 *
 * @example
 * ```ts
 * countLines(new TextEncoder().encode("a\r\nb"), 0, 4); // 1
 * ```
 */
export function countLines(raw: Uint8Array, start: number, end: number): number {
  // Four bytes at a time over the aligned middle: `indexOf` per line cost 50–200 µs for 10 KB of
  // short lines, a plain loop 21 µs, this about a third of that.
  let n = 0;
  let i = start;
  const head = Math.min(end, start + ((4 - ((raw.byteOffset + start) & 3)) & 3));
  for (; i < head; i++) if (raw[i] === LF) n++;
  const words = (end - i) >>> 2;
  if (words > 0) {
    const view = new Uint32Array(raw.buffer, raw.byteOffset + i, words);
    for (let w = 0; w < words; w++) {
      // A byte of x is zero exactly where the byte was LF; t gets 0x80 in those bytes only
      // (no carry between bytes: each is at most 0x7F + 0x7F).
      const x = view[w] ^ 0x0a0a0a0a;
      let t = ~(((x & 0x7f7f7f7f) + 0x7f7f7f7f) | x | 0x7f7f7f7f);
      t = (t >>> 7) & 0x01010101;
      n += Math.imul(t, 0x01010101) >>> 24;
    }
    i += words * 4;
  }
  for (; i < end; i++) if (raw[i] === LF) n++;
  return n;
}
