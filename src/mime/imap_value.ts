/**
 * A value in IMAP response syntax (RFC 9051 §4). The MIME layer builds
 * ENVELOPE and BODYSTRUCTURE as these; the IMAP encoder serialises them.
 *
 * - `null` is NIL
 * - `number` is a number
 * - `string` is a string: quoted when it can be, a literal otherwise
 * - `Uint8Array` is a string that must be sent as a literal (8-bit data)
 * - `{ atom }` is sent as is (flags, keywords, `BODYSTRUCTURE` names)
 * - arrays are parenthesised lists
 */
export type ImapValue =
  | null
  | number
  | string
  | Uint8Array
  | { atom: string }
  | ImapValue[];

/** An atom, sent without quoting. */
export function atom(text: string): { atom: string } {
  return { atom: text };
}
