import { decodeCharset } from "./charset.ts";
import { decodeEncodedWords } from "./encoded_words.ts";
import { decodePartBody } from "./fetch_binary.ts";
import { unfoldedValue } from "./header.ts";
import { mimeLimits } from "./mime_limits.ts";
import { type MimePart, parseMime } from "./parse.ts";

/**
 * Decoded Unicode text for SEARCH TEXT, BODY and HEADER (RFC 9051 §6.4.4):
 * `headers` is every top-level field as "Name: value" lines with encoded
 * words decoded (RFC 2047); `body` is the text of every text/* part, transfer
 * encoding and charset undone, plus the decoded headers of attached messages.
 * Other attachments are skipped; HTML stays as markup. Each string is capped
 * at mimeLimits.searchableTextChars.
 *
 * @example
 * ```ts
 * const t = searchableText(new TextEncoder().encode("Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n\r\nhallo"));
 * t.headers; // "Subject: Grüße\n"
 * t.body; // "hallo"
 * ```
 */
export function searchableText(raw: Uint8Array): { headers: string; body: string } {
  const root = parseMime(raw);
  const headers = new TextCollector();
  addHeaders(raw, root, headers);
  const body = new TextCollector();
  addBody(raw, root, body);
  return { headers: headers.text(), body: body.text() };
}

class TextCollector {
  private parts: string[] = [];
  private length = 0;

  get full(): boolean {
    return this.length >= mimeLimits.searchableTextChars;
  }

  add(text: string): void {
    if (this.full) return;
    const room = mimeLimits.searchableTextChars - this.length;
    const piece = text.length > room ? text.slice(0, room) : text;
    this.parts.push(piece);
    this.length += piece.length;
  }

  text(): string {
    return this.parts.join("");
  }
}

function addHeaders(raw: Uint8Array, part: MimePart, out: TextCollector): void {
  for (const f of part.fields) {
    if (f.name === "") continue;
    out.add(`${f.name}: ${decodeEncodedWords(unfoldedValue(raw, f))}\n`);
  }
}

function addBody(raw: Uint8Array, part: MimePart, out: TextCollector): void {
  if (out.full) return;
  if (part.kind === "multipart") {
    for (const child of part.children) addBody(raw, child, out);
    return;
  }
  if (part.kind === "message") {
    const inner = part.children[0];
    if (!inner) return;
    addHeaders(raw, inner, out);
    addBody(raw, inner, out);
    return;
  }
  if (part.opaque || part.type.toLowerCase() !== "text") return;
  const bytes = decodePartBody(raw, part);
  if (!bytes) return; // unknown transfer encoding: nothing trustworthy to index
  const charset = part.contentType?.params.get("charset") ?? "us-ascii";
  const maxBytes = mimeLimits.searchableTextChars * 4;
  out.add(decodeCharset(bytes.length > maxBytes ? bytes.subarray(0, maxBytes) : bytes, charset));
  out.add("\n");
}
