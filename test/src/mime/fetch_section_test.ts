import { strictEqual } from "node:assert/strict";
import { fetchSection } from "../../../src/mime/fetch_section.ts";
import { fixture, message, text } from "./fixtures.ts";

Deno.test("fetchSection() returns the whole message for an empty section", async () => {
  const raw = await fixture("simple_text.eml");
  strictEqual(fetchSection(raw, { part: [] }), raw);
});

Deno.test("fetchSection() returns HEADER with its blank line and TEXT after it", () => {
  const raw = message("Subject: hi", "", "body", "");
  strictEqual(text(fetchSection(raw, { part: [], text: "HEADER" })), "Subject: hi\r\n\r\n");
  strictEqual(text(fetchSection(raw, { part: [], text: "TEXT" })), "body\r\n");
});

Deno.test("fetchSection() returns HEADER.FIELDS as written, folding kept, plus a blank line", async () => {
  const raw = await fixture("simple_text.eml");
  const got = fetchSection(raw, { part: [], text: "HEADER.FIELDS", fields: ["SUBJECT", "TO"] });
  strictEqual(text(got), "Subject: Lunch on\r\n Thursday?\r\nTo: bob@example.net\r\n\r\n");
  const none = fetchSection(raw, { part: [], text: "HEADER.FIELDS", fields: ["X-NOPE"] });
  strictEqual(text(none), "\r\n");
});

Deno.test("fetchSection() returns HEADER.FIELDS.NOT without the listed fields", () => {
  const raw = message("A: 1", "B: 2", "C: 3", "", "x");
  const got = fetchSection(raw, { part: [], text: "HEADER.FIELDS.NOT", fields: ["B"] });
  strictEqual(text(got), "A: 1\r\nC: 3\r\n\r\n");
});

Deno.test("fetchSection() treats part 1 of a non-multipart message as its body", () => {
  const raw = message("Subject: hi", "", "body");
  strictEqual(text(fetchSection(raw, { part: [1] })), "body");
  strictEqual(text(fetchSection(raw, { part: [1], text: "MIME" })), "Subject: hi\r\n\r\n");
});

Deno.test("fetchSection() returns a part's MIME header and body by part number", async () => {
  const raw = await fixture("alternative.eml");
  strictEqual(
    text(fetchSection(raw, { part: [2], text: "MIME" })),
    'Content-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n',
  );
  strictEqual(text(fetchSection(raw, { part: [2] })), "<p>Grüße aus München!</p>");
});

Deno.test("fetchSection() reads HEADER and TEXT of a message/rfc822 part from the embedded message", async () => {
  const raw = await fixture("nested_rfc822.eml");
  const header = text(fetchSection(raw, { part: [2], text: "HEADER" }))!;
  strictEqual(header.startsWith("From: Original Author"), true);
  strictEqual(header.endsWith('boundary="inner"\r\n\r\n'), true);
  strictEqual(
    text(fetchSection(raw, { part: [2], text: "HEADER.FIELDS", fields: ["SUBJECT"] })),
    "Subject: original\r\n\r\n",
  );
  strictEqual(text(fetchSection(raw, { part: [2, 1] })), "Plain body.");
  strictEqual(
    text(fetchSection(raw, { part: [2, 2], text: "MIME" })),
    "Content-Type: text/html; charset=us-ascii\r\n\r\n",
  );
  strictEqual(
    text(fetchSection(raw, { part: [2], text: "MIME" })),
    "Content-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n",
  );
  strictEqual(text(fetchSection(raw, { part: [2, 1], text: "HEADER" })), "");
});

Deno.test("fetchSection() gives an empty array for a part that does not exist", async () => {
  const raw = await fixture("alternative.eml");
  strictEqual(fetchSection(raw, { part: [3] }).length, 0);
  strictEqual(fetchSection(raw, { part: [1, 1] }).length, 0);
  strictEqual(fetchSection(raw, { part: [0] }).length, 0);
});
