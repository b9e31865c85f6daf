/**
 * A section of a message as IMAP addresses it (RFC 9051 §6.4.5):
 * `BODY[1.2.HEADER.FIELDS (Subject)]` is `{ part: [1, 2], text: "HEADER.FIELDS", fields: ["SUBJECT"] }`.
 */
export interface Section {
  /** Part numbers, empty for the top level. */
  part: number[];
  /** The text specifier, if any. */
  text?: "HEADER" | "HEADER.FIELDS" | "HEADER.FIELDS.NOT" | "TEXT" | "MIME";
  /** Field names for HEADER.FIELDS and HEADER.FIELDS.NOT, upper-cased. */
  fields?: string[];
}
