import { missingDomain, missingMailbox, parseAddressList } from "./address.ts";
import { baseSubject } from "./base_subject.ts";
import { buildBodyStructure } from "./body_structure.ts";
import { parseMailDate } from "./date.ts";
import { decodeEncodedWords } from "./encoded_words.ts";
import { buildEnvelope } from "./envelope.ts";
import { findField, type HeaderField, unfoldedValue } from "./header.ts";
import type { AddressInfo, MessageInfo } from "./message_info.ts";
import { parseMime } from "./parse.ts";

/**
 * Computes what Hearth stores about a message: ENVELOPE, BODY and
 * BODYSTRUCTURE (RFC 9051 §7.5.2), decoded headers for SEARCH, SORT and THREAD
 * (RFC 5256), and the size. Never throws, whatever the input.
 *
 * @example
 * ```ts
 * const info = analyzeMessage(new TextEncoder().encode("Subject: Re: hi\r\n\r\nx"));
 * info.headers.baseSubject; // "hi"
 * info.size; // 20
 * ```
 */
export function analyzeMessage(raw: Uint8Array): MessageInfo {
  const root = parseMime(raw);
  const fields = root.fields;
  const subject = decoded(raw, fields, "subject") ?? "";
  const date = findField(fields, "date");
  return {
    envelope: buildEnvelope(raw, fields),
    body: buildBodyStructure(raw, root, false),
    bodyStructure: buildBodyStructure(raw, root, true),
    headers: {
      fields: fields.filter((f) => f.name !== "").map((
        f,
      ) => [f.name, decodeEncodedWords(unfoldedValue(raw, f))]),
      date: date ? parseMailDate(unfoldedValue(raw, date)) : null,
      from: firstAddress(raw, fields, "from"),
      to: firstAddress(raw, fields, "to"),
      cc: firstAddress(raw, fields, "cc"),
      subject,
      baseSubject: baseSubject(subject),
      messageId: firstMessageId(raw, fields, "message-id"),
      inReplyTo: firstMessageId(raw, fields, "in-reply-to"),
      references: messageIds(raw, fields, "references"),
    },
    size: raw.length,
  };
}

function decoded(raw: Uint8Array, fields: HeaderField[], name: string): string | null {
  const f = findField(fields, name);
  return f ? decodeEncodedWords(unfoldedValue(raw, f)) : null;
}

/** The first mailbox (not a group marker) of an address field, its name decoded. */
function firstAddress(raw: Uint8Array, fields: HeaderField[], name: string): AddressInfo | null {
  const f = findField(fields, name);
  if (!f) return null;
  for (const a of parseAddressList(unfoldedValue(raw, f))) {
    if (a.host === null) continue;
    return {
      name: a.name === null ? null : decodeEncodedWords(a.name),
      mailbox: a.mailbox === missingMailbox ? null : a.mailbox,
      host: a.host === missingDomain ? null : a.host,
    };
  }
  return null;
}

/** Message ids (RFC 5322 §3.6.4) of a field, without angle brackets. */
function messageIds(raw: Uint8Array, fields: HeaderField[], name: string): string[] {
  const f = findField(fields, name);
  if (!f) return [];
  const text = unfoldedValue(raw, f).replace(/\([^()]*\)/g, " ");
  const ids = [...text.matchAll(/<([^<>\s]+)>/g)].map((m) => m[1]);
  if (ids.length === 0 && /^[^\s<>]+@[^\s<>]+$/.test(text.trim())) ids.push(text.trim());
  return ids;
}

function firstMessageId(raw: Uint8Array, fields: HeaderField[], name: string): string | null {
  return messageIds(raw, fields, name)[0] ?? null;
}
