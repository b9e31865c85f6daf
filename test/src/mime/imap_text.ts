import type { ImapValue } from "../../../src/mime/imap_value.ts";

/**
 * Test helper: an ImapValue written as IMAP text with every string quoted,
 * the form the `.dovecot.txt` fixtures use (Dovecot's literals were turned
 * into quoted strings when they were recorded). Dovecot leaves out the space
 * between some adjacent lists, so compare through sameSpacing().
 *
 * @example
 * ```ts
 * imapText(["a", null, 3]); // '("a" NIL 3)'
 * ```
 */
export function imapText(value: ImapValue): string {
  if (value === null) return "NIL";
  if (typeof value === "number") return String(value);
  if (typeof value === "string") return `"${value.replace(/[\\"]/g, (c) => "\\" + c)}"`;
  if (value instanceof Uint8Array) return imapText(new TextDecoder("latin1").decode(value));
  if (Array.isArray(value)) {
    return "(" + value.map(imapText).join(" ") + ")";
  }
  return value.atom;
}

/**
 * IMAP text with the space between adjacent lists removed, as Dovecot writes
 * address lists and multipart children: "(a) (b)" becomes "(a)(b)".
 *
 * @example
 * ```ts
 * sameSpacing('(("a") ("b"))'); // '(("a")("b"))'
 * ```
 */
export function sameSpacing(text: string): string {
  return text.replaceAll(") (", ")(");
}
