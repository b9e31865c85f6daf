import type { ContentValue } from "./content_params.ts";
import { buildEnvelope } from "./envelope.ts";
import type { ImapValue } from "./imap_value.ts";
import { countLines, type MimePart } from "./parse.ts";

/**
 * BODY (extended = false) or BODYSTRUCTURE (extended = true) of a parsed
 * part, per RFC 9051 §7.5.2, matching Dovecot's output: media type, subtype,
 * parameter names and encodings are quoted strings as written in the message
 * (defaults lower-case: "text" "plain" ("charset" "us-ascii") "7bit"); text
 * parts without a charset get ("charset" "us-ascii") appended; sizes count the
 * body octets as stored; lines count line feeds.
 *
 * @example
 * ```ts
 * const raw = new TextEncoder().encode("Subject: x\r\n\r\nhello\r\n");
 * buildBodyStructure(raw, parseMime(raw), false);
 * // ["text", "plain", ["charset", "us-ascii"], null, null, "7bit", 7, 1]
 * ```
 */
export function buildBodyStructure(raw: Uint8Array, part: MimePart, extended: boolean): ImapValue {
  if (part.kind === "multipart") {
    // RFC 9051 §7.5.2 body-type-mpart: the parts, then the subtype.
    const out: ImapValue[] = part.children.length > 0
      ? part.children.map((c) => buildBodyStructure(raw, c, extended))
      : [emptyTextPart(extended)]; // Dovecot's stand-in for a multipart without parts
    out.push(part.subtype);
    if (extended) {
      // body-ext-mpart: parameters, disposition, language, location.
      out.push(paramList(part), disposition(part.disposition), part.language, part.location);
    }
    return out;
  }
  const opaque = part.opaque && part.type.toLowerCase() !== "message";
  const out: ImapValue[] = [
    opaque ? "application" : part.type,
    opaque ? "octet-stream" : part.subtype,
    opaque ? null : paramList(part),
    part.id,
    part.description,
    part.encoding ?? "7bit", // RFC 2045 §6.1 default
    part.bodyEnd - part.bodyStart,
  ];
  if (part.kind === "message" && part.children.length === 1) {
    // body-type-msg: envelope, body and line count of the embedded message.
    const inner = part.children[0];
    out.push(
      buildEnvelope(raw, inner.fields),
      buildBodyStructure(raw, inner, extended),
      countLines(raw, part.bodyStart, part.bodyEnd),
    );
  } else if (!opaque && part.type.toLowerCase() === "text") {
    out.push(countLines(raw, part.bodyStart, part.bodyEnd)); // body-type-text: body-fld-lines
  }
  if (extended) {
    // body-ext-1part: md5, disposition, language, location.
    out.push(part.md5, disposition(part.disposition), part.language, part.location);
  }
  return out;
}

function emptyTextPart(extended: boolean): ImapValue {
  const basic: ImapValue[] = ["text", "plain", ["charset", "us-ascii"], null, null, "7bit", 0, 0];
  return extended ? [...basic, null, null, null, null] : basic;
}

function paramList(part: MimePart): ImapValue {
  let params: [string, string][];
  if (part.contentType) params = part.contentType.imapParams;
  else params = part.type === "text" ? [["charset", "us-ascii"]] : []; // RFC 2045 §5.2 default
  if (part.type.toLowerCase() === "text" && !part.contentType?.params.has("charset")) {
    if (part.contentType) params = [...params, ["charset", "us-ascii"]];
  }
  return params.length === 0 ? null : params.flat();
}

function disposition(value: ContentValue | null): ImapValue {
  if (!value) return null;
  const params = value.imapParams.flat();
  return [value.value, params.length === 0 ? null : params];
}
