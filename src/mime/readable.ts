import { missingDomain, missingMailbox, parseAddressList } from "./address.ts";
import { decodeCharset } from "./charset.ts";
import { parseMailDate } from "./date.ts";
import { decodeEncodedWords } from "./encoded_words.ts";
import { decodePartBody } from "./fetch_binary.ts";
import { findField, type HeaderField, unfoldedValue } from "./header.ts";
import { type MimePart, parseMime } from "./parse.ts";

/** One mailbox of an address field; `name` decoded (RFC 2047), "" when there is none. */
export interface MailboxAddress {
  name: string;
  address: string;
}

/** What a reader shows of a message: decoded headers and the text of its body. */
export interface ReadableMessage {
  /** The mailboxes of From, To and Cc (group markers left out). */
  from: MailboxAddress[];
  to: MailboxAddress[];
  cc: MailboxAddress[];
  subject: string;
  /** The Date: header in ms since the epoch, or null when absent or unreadable. */
  date: number | null;
  /** The body as text (see {@linkcode textBody}). */
  text: string;
}

/**
 * Decodes what a mail reader shows of a message. Never throws.
 *
 * @example
 * ```ts
 * const m = readableMessage(new TextEncoder().encode(
 *   "From: =?utf-8?q?Ren=C3=A9e?= <r@x.test>\r\nSubject: Hi\r\n\r\nHello\r\n",
 * ));
 * m.from; // [{ name: "Renée", address: "r@x.test" }]
 * m.text; // "Hello\n"
 * ```
 */
export function readableMessage(raw: Uint8Array): ReadableMessage {
  const root = parseMime(raw);
  const value = (name: string) => {
    const f = findField(root.fields, name);
    return f ? unfoldedValue(raw, f) : null;
  };
  const date = value("date");
  return {
    from: addresses(raw, root.fields, "from"),
    to: addresses(raw, root.fields, "to"),
    cc: addresses(raw, root.fields, "cc"),
    subject: decodeEncodedWords(value("subject") ?? ""),
    date: date === null ? null : parseMailDate(date),
    text: bodyText(raw, root),
  };
}

/**
 * The text a reader shows for a message body: the first text/plain part that
 * is not an attachment (in a multipart/alternative, the plain version), else
 * the first text/html part with its markup removed; transfer encoding and
 * charset undone, line ends as `\n`. Empty when the message has no text.
 *
 * @example
 * ```ts
 * textBody(new TextEncoder().encode("Content-Type: text/html\r\n\r\n<p>Hi&amp;bye</p>"));
 * // "Hi&bye"
 * ```
 */
export function textBody(raw: Uint8Array): string {
  return bodyText(raw, parseMime(raw));
}

function bodyText(raw: Uint8Array, root: MimePart): string {
  const plain = findText(root, "plain");
  if (plain) return decodedText(raw, plain);
  const html = findText(root, "html");
  return html ? htmlToText(decodedText(raw, html)) : "";
}

/** Depth first; attachments and embedded messages are not the body. */
function findText(part: MimePart, subtype: string): MimePart | null {
  if (part.kind === "multipart") {
    for (const child of part.children) {
      const hit = findText(child, subtype);
      if (hit) return hit;
    }
    return null;
  }
  if (part.kind !== "leaf" || part.opaque) return null;
  // RFC 2183 §2.2: an attachment is not shown as the body.
  if (part.disposition?.value.toLowerCase() === "attachment") return null;
  const isText = part.type.toLowerCase() === "text" && part.subtype.toLowerCase() === subtype;
  return isText ? part : null;
}

function decodedText(raw: Uint8Array, part: MimePart): string {
  const bytes = decodePartBody(raw, part);
  if (!bytes) return "";
  const charset = part.contentType?.params.get("charset") ?? "us-ascii";
  return decodeCharset(bytes, charset).replace(/\r\n?/g, "\n");
}

const entities: Record<string, string> = {
  amp: "&",
  lt: "<",
  gt: ">",
  quot: '"',
  apos: "'",
  nbsp: " ",
};

/** Markup removed, block ends as line breaks, the common entities decoded. */
function htmlToText(html: string): string {
  return html
    .replace(/<(script|style|head)\b[^>]*>[\s\S]*?<\/\1\s*>/gi, "")
    .replace(/<!--[\s\S]*?-->/g, "")
    .replace(/<\s*(br|\/p|\/div|\/li|\/tr|\/h[1-6])\b[^>]*>/gi, "\n")
    .replace(/<[^>]*>/g, "")
    .replace(/[ \t]+/g, " ")
    .replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (m, e: string) => {
      if (e[0] !== "#") return entities[e.toLowerCase()] ?? m;
      const code = e[1] === "x" || e[1] === "X" ? parseInt(e.slice(2), 16) : Number(e.slice(1));
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : m;
    })
    .replace(/\n[ \t]+/g, "\n")
    .replace(/\n{3,}/g, "\n\n")
    .trim();
}

/**
 * An address as a reader shows it: "Name <local@domain>", or the address alone.
 *
 * @example
 * ```ts
 * formatAddress({ name: "Renée", address: "r@x.test" }); // "Renée <r@x.test>"
 * ```
 */
export function formatAddress(a: MailboxAddress): string {
  return a.name ? `${a.name} <${a.address}>` : a.address;
}

function addresses(raw: Uint8Array, fields: HeaderField[], name: string): MailboxAddress[] {
  const f = findField(fields, name);
  if (!f) return [];
  const out: MailboxAddress[] = [];
  for (const a of parseAddressList(unfoldedValue(raw, f))) {
    if (a.host === null) continue; // group markers
    const local = a.mailbox === missingMailbox ? "" : a.mailbox ?? "";
    const address = a.host === missingDomain ? local : `${local}@${a.host}`;
    out.push({ name: a.name === null ? "" : decodeEncodedWords(a.name).trim(), address });
  }
  return out;
}
