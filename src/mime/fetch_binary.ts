import { parseMime } from "./parse.ts";
import type { MimePart } from "./parse.ts";
import { resolvePart } from "./part_number.ts";
import { base64DecodedLength, decodeBase64, decodeQuotedPrintable } from "./transfer_decoding.ts";

/**
 * BINARY[part] (RFC 3516 §4.2): the part's body with its
 * Content-Transfer-Encoding removed. 7bit, 8bit and binary bodies, and
 * multipart or message parts, come back as stored. Returns null for an
 * encoding Hearth cannot undo (the server answers NO [UNKNOWN-CTE]) and an
 * empty array for a part that does not exist.
 *
 * @example
 * ```ts
 * fetchBinary(raw, [2]); // the attachment's decoded octets
 * ```
 */
export function fetchBinary(raw: Uint8Array, part: number[]): Uint8Array | null {
  if (part.length === 0) return raw;
  const node = resolvePart(parseMime(raw), part);
  if (!node) return new Uint8Array(0);
  return decodePartBody(raw, node);
}

/**
 * BINARY.SIZE[part] (RFC 3516 §4.3): the length fetchBinary() would return,
 * or null for an unknown encoding. Base64 is sized without decoding.
 *
 * @example
 * ```ts
 * binarySize(raw, [2]); // 13
 * ```
 */
export function binarySize(raw: Uint8Array, part: number[]): number | null {
  if (part.length === 0) return raw.length;
  const node = resolvePart(parseMime(raw), part);
  if (!node) return 0;
  if (node.kind === "leaf" && transferEncoding(node) === "base64") {
    return base64DecodedLength(raw, node.bodyStart, node.bodyEnd);
  }
  return decodePartBody(raw, node)?.length ?? null;
}

/**
 * A part's body with its transfer encoding undone, or null for an unknown
 * encoding. Multipart and message parts are returned as stored.
 *
 * @example
 * ```ts
 * decodePartBody(raw, resolvePart(parseMime(raw), [1])!);
 * ```
 */
export function decodePartBody(raw: Uint8Array, node: MimePart): Uint8Array | null {
  const body = raw.subarray(node.bodyStart, node.bodyEnd);
  if (node.kind !== "leaf") return body;
  switch (transferEncoding(node)) {
    case "7bit":
    case "8bit":
    case "binary":
      return body; // RFC 2045 §6.2: identity encodings
    case "base64":
      return decodeBase64(raw, node.bodyStart, node.bodyEnd);
    case "quoted-printable":
      return decodeQuotedPrintable(raw, node.bodyStart, node.bodyEnd);
    default:
      return null;
  }
}

function transferEncoding(node: MimePart): string {
  // RFC 2045 §6.1: absent means 7bit; the value is case-insensitive.
  return (node.encoding ?? "7bit").replace(/\([^)]*\)/g, "").trim().toLowerCase() || "7bit";
}
