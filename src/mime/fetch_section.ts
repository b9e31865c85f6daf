import type { HeaderField } from "./header.ts";
import { type MimePart, parseMime } from "./parse.ts";
import { resolvePart } from "./part_number.ts";
import type { Section } from "./section.ts";

const CRLF = new Uint8Array([0x0d, 0x0a]);

/**
 * The octets of BODY[section] (RFC 9051 §6.4.5). An empty section is the
 * whole message; HEADER and MIME include the blank line that ends the header;
 * HEADER.FIELDS returns the matching fields as written (folding kept) plus a
 * blank line; HEADER, HEADER.FIELDS and TEXT after a part number address the
 * message embedded in a message/rfc822 part. A part that does not exist, or a
 * specifier that does not apply to it, gives an empty array.
 *
 * @example
 * ```ts
 * fetchSection(raw, { part: [] }); // the whole message
 * fetchSection(raw, { part: [], text: "HEADER.FIELDS", fields: ["SUBJECT"] }); // "Subject: hi\r\n\r\n"
 * fetchSection(raw, { part: [2, 1] }); // body of part 2.1
 * ```
 */
export function fetchSection(raw: Uint8Array, section: Section): Uint8Array {
  if (section.part.length === 0 && section.text === undefined) return raw;
  const root = parseMime(raw);
  return sectionOfTree(raw, root, section);
}

/**
 * Like fetchSection() on an already parsed tree, for FETCH commands asking
 * for several sections of one message.
 *
 * @example
 * ```ts
 * const root = parseMime(raw);
 * sectionOfTree(raw, root, { part: [1], text: "MIME" });
 * ```
 */
export function sectionOfTree(raw: Uint8Array, root: MimePart, section: Section): Uint8Array {
  const empty = new Uint8Array(0);
  const part = resolvePart(root, section.part);
  if (!part) return empty;
  if (section.text === undefined) {
    return section.part.length === 0 ? raw : raw.subarray(part.bodyStart, part.bodyEnd);
  }
  if (section.text === "MIME") {
    // RFC 9051 §6.4.5: MIME is the part's own header; it needs a part number.
    if (section.part.length === 0) return empty;
    return raw.subarray(part.headerStart, part.headerEnd);
  }
  // HEADER, HEADER.FIELDS[.NOT] and TEXT address a message: the top level or a message/rfc822 part.
  let message: MimePart | null = part;
  if (section.part.length > 0) message = part.kind === "message" ? part.children[0] ?? null : null;
  if (!message) return empty;
  switch (section.text) {
    case "HEADER":
      return raw.subarray(message.headerStart, message.headerEnd);
    case "TEXT":
      return raw.subarray(message.bodyStart, message.bodyEnd);
    case "HEADER.FIELDS":
    case "HEADER.FIELDS.NOT":
      return selectFields(
        raw,
        message.fields,
        section.fields ?? [],
        section.text === "HEADER.FIELDS",
      );
  }
  return empty;
}

/** The fields whose names are (or are not) listed, as written, then a blank line. */
function selectFields(
  raw: Uint8Array,
  fields: HeaderField[],
  names: string[],
  wanted: boolean,
): Uint8Array {
  const set = new Set(names.map((n) => n.toLowerCase()));
  const chosen = fields.filter((f) => f.name !== "" && set.has(f.name.toLowerCase()) === wanted);
  let size = CRLF.length;
  for (const f of chosen) size += f.end - f.start + (endsWithLf(raw, f) ? 0 : CRLF.length);
  const out = new Uint8Array(size);
  let n = 0;
  for (const f of chosen) {
    out.set(raw.subarray(f.start, f.end), n);
    n += f.end - f.start;
    if (!endsWithLf(raw, f)) {
      // A last field cut short by the end of the message still ends its line.
      out.set(CRLF, n);
      n += CRLF.length;
    }
  }
  out.set(CRLF, n);
  return out;
}

function endsWithLf(raw: Uint8Array, f: HeaderField): boolean {
  return f.end > f.start && raw[f.end - 1] === 0x0a;
}
