import { type EnvelopeAddress, parseAddressList } from "./address.ts";
import { findField, type HeaderField, unfoldedValueBytes } from "./header.ts";
import type { ImapValue } from "./imap_value.ts";
import { headerText, isUtf8, latin1 } from "./octets.ts";

/**
 * Builds the ENVELOPE of a message (RFC 9051 §7.5.2) from its header fields:
 * date, subject, from, sender, reply-to, to, cc, bcc, in-reply-to,
 * message-id. Strings are the raw header values unfolded and trimmed, encoded
 * words left undecoded (as Dovecot does); 8-bit values that are not UTF-8
 * come back as Uint8Array so the encoder sends the octets as written.
 *
 * @example
 * ```ts
 * const raw = new TextEncoder().encode("From: a@b.c\r\n\r\n");
 * buildEnvelope(raw, parseHeaderFields(raw, 0, 13));
 * // [null, null, [[null, null, "a", "b.c"]], (same), (same), null, null, null, null, null]
 * ```
 */
export function buildEnvelope(raw: Uint8Array, fields: HeaderField[]): ImapValue {
  const from = addresses(raw, fields, "from");
  // RFC 9051 §7.5.2: Sender and Reply-To default to From when absent or empty.
  const sender = addresses(raw, fields, "sender") ?? from;
  const replyTo = addresses(raw, fields, "reply-to") ?? from;
  return [
    nstring(raw, fields, "date"),
    nstring(raw, fields, "subject"),
    from,
    sender,
    replyTo,
    addresses(raw, fields, "to"),
    addresses(raw, fields, "cc"),
    addresses(raw, fields, "bcc"),
    nstring(raw, fields, "in-reply-to"),
    nstring(raw, fields, "message-id"),
  ];
}

function nstring(raw: Uint8Array, fields: HeaderField[], name: string): ImapValue {
  const f = findField(fields, name);
  if (!f) return null;
  const bytes = unfoldedValueBytes(raw, f);
  return isUtf8(bytes) ? headerText(bytes) : bytes.slice();
}

/** An address list as ENVELOPE wants it, or NIL when the field is absent or has no address. */
function addresses(raw: Uint8Array, fields: HeaderField[], name: string): ImapValue {
  const f = findField(fields, name);
  if (!f) return null;
  const bytes = unfoldedValueBytes(raw, f);
  const text = isUtf8(bytes) ? headerText(bytes) : latin1(bytes);
  const list = parseAddressList(text);
  return list.length === 0 ? null : list.map(addressValue);
}

function addressValue(a: EnvelopeAddress): ImapValue {
  return [a.name, a.route, a.mailbox, a.host];
}
