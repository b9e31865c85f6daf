/**
 * In-memory messages for SEARCH, SORT and THREAD tests: each counts its
 * info() and text() calls so tests can assert what a search paid for.
 */

import type { AddressInfo, MessageInfo } from "../../../src/mime/message_info.ts";
import type { SearchableMessage } from "../../../home/imap/search.ts";

export interface FakeSpec {
  uid?: number;
  flags?: string[];
  /** ISO date or ms; default 2024-01-01T12:00:00Z. */
  internalDate?: string | number;
  size?: number;
  modseq?: bigint;
  recent?: boolean;
  /** Header fields as [name, decoded value]; From/To/Cc/Subject/Date/ids below are added to them. */
  headers?: [string, string][];
  subject?: string;
  baseSubject?: string;
  from?: string;
  to?: string;
  cc?: string;
  /** Raw Date: header text, e.g. "Mon, 1 Jan 2024 23:30:00 -0800". */
  date?: string;
  messageId?: string;
  inReplyTo?: string;
  references?: string[];
  body?: string;
}

export interface FakeMessage extends SearchableMessage {
  calls: { info: number; text: number };
}

/** Builds a mailbox: sequence numbers follow the order given, UIDs default to them. */
export function fakeMailbox(specs: FakeSpec[]): FakeMessage[] {
  return specs.map((spec, i) => fakeMessage(i + 1, spec));
}

export function fakeMessage(seq: number, spec: FakeSpec): FakeMessage {
  const fields: [string, string][] = [];
  if (spec.date !== undefined) fields.push(["Date", spec.date]);
  if (spec.from !== undefined) fields.push(["From", spec.from]);
  if (spec.to !== undefined) fields.push(["To", spec.to]);
  if (spec.cc !== undefined) fields.push(["Cc", spec.cc]);
  if (spec.subject !== undefined) fields.push(["Subject", spec.subject]);
  if (spec.messageId) fields.push(["Message-ID", `<${spec.messageId}>`]);
  if (spec.inReplyTo) fields.push(["In-Reply-To", `<${spec.inReplyTo}>`]);
  if (spec.references?.length) {
    fields.push(["References", spec.references.map((r) => `<${r}>`).join(" ")]);
  }
  fields.push(...(spec.headers ?? []));
  const subject = spec.subject ?? "";
  const parsedDate = spec.date === undefined ? NaN : Date.parse(spec.date);
  const info: MessageInfo = {
    envelope: null,
    body: null,
    bodyStructure: null,
    headers: {
      fields,
      date: Number.isNaN(parsedDate) ? null : parsedDate,
      from: firstAddress(spec.from),
      to: firstAddress(spec.to),
      cc: firstAddress(spec.cc),
      subject,
      baseSubject: spec.baseSubject ?? simpleBaseSubject(subject),
      messageId: spec.messageId ?? null,
      inReplyTo: spec.inReplyTo ?? null,
      references: spec.references ?? [],
    },
    size: spec.size ?? 1000,
  };
  const body = spec.body ?? "";
  const headerText = fields.map(([n, v]) => `${n}: ${v}\r\n`).join("");
  const calls = { info: 0, text: 0 };
  return {
    seq,
    uid: spec.uid ?? seq,
    flags: new Set(spec.flags ?? []),
    internalDate: typeof spec.internalDate === "number"
      ? spec.internalDate
      : Date.parse(spec.internalDate ?? "2024-01-01T12:00:00Z"),
    size: spec.size ?? 1000,
    modseq: spec.modseq ?? 1n,
    recent: spec.recent ?? false,
    calls,
    info() {
      calls.info++;
      return Promise.resolve(info);
    },
    text() {
      calls.text++;
      return Promise.resolve({ headers: headerText, body });
    },
  };
}

/** `Name <local@host>` or `local@host`; enough for tests. */
function firstAddress(text: string | undefined): AddressInfo | null {
  if (text === undefined) return null;
  const first = text.split(",")[0].trim();
  const m = /^(.*?)\s*<([^@>]*)@([^>]*)>$/.exec(first) ?? /^()([^@\s]+)@(\S+)$/.exec(first);
  if (!m) return { name: first || null, mailbox: null, host: null };
  return { name: m[1].replace(/^"|"$/g, "") || null, mailbox: m[2], host: m[3] };
}

/** A small RFC 5256 §2.1 stand-in: strips Re:/Fwd: leaders, [blobs] and (fwd) trailers. */
function simpleBaseSubject(subject: string): string {
  let s = subject.replace(/\s+/g, " ").trim();
  for (;;) {
    const next = s.replace(/\s*\(fwd\)$/i, "").replace(/^(\[[^\][]*\]\s*)*(re|fwd?)\s*:\s*/i, "")
      .replace(/^\[[^\][]*\]\s*(?=\S)/, "")
      .replace(/^\[fwd:\s*(.*)\]$/i, "$1").trim();
    if (next === s) return s;
    s = next;
  }
}
