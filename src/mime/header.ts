import { headerText, latin1 } from "./octets.ts";

/**
 * One header field as it lies in the raw message: offsets into the raw
 * octets, so that HEADER.FIELDS can return it exactly as written.
 */
export interface HeaderField {
  /** Field name as written, without the colon or trailing blanks. */
  name: string;
  /** Offset of the first octet of the field. */
  start: number;
  /** Offset just after the colon (or after the line, for a line without one). */
  valueStart: number;
  /** Offset just after the field's final line break. */
  end: number;
}

/**
 * Splits a header block into fields (RFC 5322 §2.2). A line that starts with
 * a blank continues the previous field (§2.2.3); a line without a colon is
 * kept as a field with an empty name, so that nothing is lost.
 *
 * @example
 * ```ts
 * const raw = new TextEncoder().encode("Subject: a\r\n b\r\nTo: x@y\r\n");
 * parseHeaderFields(raw, 0, raw.length).map((f) => f.name); // ["Subject", "To"]
 * ```
 */
export function parseHeaderFields(raw: Uint8Array, start: number, end: number): HeaderField[] {
  const fields: HeaderField[] = [];
  let pos = start;
  let current: HeaderField | null = null;
  while (pos < end) {
    let eol = raw.indexOf(0x0a, pos);
    eol = eol < 0 || eol >= end ? end : eol + 1;
    const first = raw[pos];
    if ((first === 0x20 || first === 0x09) && current) {
      current.end = eol; // RFC 5322 §2.2.3: folded continuation
    } else if (first === 0x0d || first === 0x0a) {
      // an empty line inside the block: only the terminator normally, nothing to keep
      current = null;
    } else {
      let colon = pos;
      while (colon < eol && raw[colon] !== 0x3a && raw[colon] !== 0x0a) colon++;
      if (colon < eol && raw[colon] === 0x3a) {
        let nameEnd = colon;
        while (nameEnd > pos && (raw[nameEnd - 1] === 0x20 || raw[nameEnd - 1] === 0x09)) nameEnd--;
        current = { name: latin1(raw, pos, nameEnd), start: pos, valueStart: colon + 1, end: eol };
      } else {
        current = { name: "", start: pos, valueStart: pos, end: eol };
      }
      fields.push(current);
    }
    pos = eol;
  }
  return fields;
}

/**
 * The value of a field with folding undone (RFC 5322 §2.2.3: CRLF before a
 * blank removed, the blank kept) and surrounding blanks trimmed, as octets.
 *
 * @example
 * ```ts
 * // "Subject: Lunch on\r\n Thursday?\r\n" gives "Lunch on Thursday?"
 * ```
 */
export function unfoldedValueBytes(raw: Uint8Array, field: HeaderField): Uint8Array {
  let s = field.valueStart;
  let e = field.end;
  const out = new Uint8Array(e - s);
  let n = 0;
  for (let i = s; i < e; i++) {
    const c = raw[i];
    if (c === 0x0d || c === 0x0a) continue;
    out[n++] = c;
  }
  s = 0;
  e = n;
  while (s < e && isBlank(out[s])) s++;
  while (e > s && isBlank(out[e - 1])) e--;
  return out.subarray(s, e);
}

/**
 * The unfolded, trimmed value of a field as a string (UTF-8 or ISO-8859-1),
 * encoded words left as written.
 *
 * @example
 * ```ts
 * // "To: a@b.c\r\n" gives "a@b.c"
 * ```
 */
export function unfoldedValue(raw: Uint8Array, field: HeaderField): string {
  return headerText(unfoldedValueBytes(raw, field));
}

/**
 * The first field with this name (case-insensitive), or undefined.
 *
 * @example
 * ```ts
 * findField(fields, "content-type");
 * ```
 */
export function findField(fields: HeaderField[], name: string): HeaderField | undefined {
  const lower = name.toLowerCase();
  for (const f of fields) if (f.name.toLowerCase() === lower) return f;
  return undefined;
}

function isBlank(c: number): boolean {
  return c === 0x20 || c === 0x09;
}
