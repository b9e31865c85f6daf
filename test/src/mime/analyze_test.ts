import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { analyzeMessage } from "../../../src/mime/analyze.ts";
import { imapText } from "./imap_text.ts";
import { fixture, message } from "./fixtures.ts";

Deno.test("analyzeMessage() gives NIL from, sender and reply-to when no From header exists", async () => {
  const info = analyzeMessage(await fixture("no_from.eml"));
  const envelope = info.envelope as unknown[];
  deepStrictEqual(envelope.slice(2, 5), [null, null, null]);
  strictEqual(info.headers.from, null);
});

Deno.test("analyzeMessage() defaults sender and reply-to to from", () => {
  const info = analyzeMessage(message("From: Ann <ann@x.test>", "Sender:", "", "x"));
  const envelope = info.envelope as unknown[];
  deepStrictEqual(envelope[3], [["Ann", null, "ann", "x.test"]]);
  deepStrictEqual(envelope[4], [["Ann", null, "ann", "x.test"]]);
});

Deno.test("analyzeMessage() writes groups with RFC 3501 start and end markers", async () => {
  const envelope = analyzeMessage(await fixture("group_addresses.eml")).envelope as unknown[];
  deepStrictEqual(envelope[5], [
    [null, null, "A Group", null],
    ["Ed Jones", null, "c", "a.test"],
    [null, null, "joe", "where.test"],
    ["John", null, "jdoe", "one.test"],
    [null, null, null, null],
  ]);
  deepStrictEqual(envelope[6], [
    [null, null, "Undisclosed recipients", null],
    [null, null, null, null],
    ["Mary Smith", "@relay1.test,@relay2.test", "mary", "x.test"],
  ]);
});

Deno.test("analyzeMessage() keeps envelope strings raw but unfolded", async () => {
  const envelope = analyzeMessage(await fixture("latin1_subject.eml")).envelope as unknown[];
  strictEqual(
    envelope[1],
    "=?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?= =?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?=",
  );
});

Deno.test("analyzeMessage() decodes UTF-8 encoded words in headers", async () => {
  const { headers } = analyzeMessage(await fixture("alternative.eml"));
  strictEqual(headers.subject, "Grüße aus München");
  deepStrictEqual(headers.from, { name: "Renée Müller", mailbox: "renee", host: "example.com" });
  deepStrictEqual(headers.to, { name: "Bob Smith", mailbox: "bob", host: "example.net" });
  deepStrictEqual(headers.cc, { name: "Dave", mailbox: "dave", host: "example.net" });
  strictEqual(headers.messageId, "alt-1@example.com");
  strictEqual(headers.inReplyTo, "orig-7@example.net");
  deepStrictEqual(headers.references, ["orig-1@example.net", "orig-7@example.net"]);
  strictEqual(headers.date, Date.UTC(2024, 2, 12, 8, 15, 0));
});

Deno.test("analyzeMessage() decodes ISO-8859 encoded words and joins adjacent ones", async () => {
  const { headers } = analyzeMessage(await fixture("latin1_subject.eml"));
  strictEqual(headers.subject, "If you can read this you understand the example.");
  strictEqual(headers.from?.name, "André Pirard");
  strictEqual(headers.to?.name, "Keld Jørn Simonsen");
  strictEqual(headers.date, Date.UTC(2023, 0, 5, 23, 59, 0));
});

Deno.test("analyzeMessage() lists every header field decoded, in order", () => {
  const { headers } = analyzeMessage(
    message("Subject: =?utf-8?q?a_b?=", "X-Thing: one", " two", ""),
  );
  deepStrictEqual(headers.fields, [["Subject", "a b"], ["X-Thing", "one two"]]);
});

Deno.test("analyzeMessage() computes the RFC 5256 base subject", async () => {
  const { headers } = analyzeMessage(await fixture("group_addresses.eml"));
  strictEqual(headers.baseSubject, "Hello");
});

Deno.test("analyzeMessage() gives a body-type-msg with envelope, body and lines for message/rfc822", async () => {
  const info = analyzeMessage(await fixture("nested_rfc822.eml"));
  const forwarded = (info.body as unknown[])[1] as unknown[];
  strictEqual(forwarded[0], "message");
  strictEqual(forwarded[6], 389);
  strictEqual(forwarded[9], 17);
  strictEqual((forwarded[7] as unknown[])[1], "original");
});

Deno.test("analyzeMessage() writes BODYSTRUCTURE extension data for single parts and multiparts", async () => {
  const info = analyzeMessage(await fixture("mixed_attachment.eml"));
  strictEqual(
    imapText(info.bodyStructure),
    '(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 24 0 NIL NIL ("en" "de") NIL) ' +
      '("application" "octet-stream" ("name" "report.bin") "<part2@example.com>" "Quarterly report" ' +
      '"base64" 20 "Q2hlY2sgSW50ZWdyaXR5IQ==" ("attachment" ("size" "12" "filename*" ' +
      `"utf-8''%E2%82%AC%20report.bin")) NIL "report.bin") "mixed" ("boundary" "XYZ" "foo" "bar") ` +
      'NIL ("en") "http://example.com/msg")',
  );
  strictEqual(info.size, (await fixture("mixed_attachment.eml")).length);
});

Deno.test("analyzeMessage() returns 8-bit non-UTF-8 envelope strings as octets", () => {
  const raw = new Uint8Array([
    ...new TextEncoder().encode("Subject: caf"),
    0xe9,
    0x0d,
    0x0a,
    0x0d,
    0x0a,
  ]);
  const info = analyzeMessage(raw);
  deepStrictEqual((info.envelope as unknown[])[1], new Uint8Array([0x63, 0x61, 0x66, 0xe9]));
  strictEqual(info.headers.subject, "café");
});

Deno.test("analyzeMessage() gives a null date for an unreadable Date header", () => {
  strictEqual(analyzeMessage(message("Date: someday", "", "")).headers.date, null);
});
