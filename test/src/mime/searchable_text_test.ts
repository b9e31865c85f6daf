import { strictEqual } from "node:assert/strict";
import { mimeLimits } from "../../../src/mime/mime_limits.ts";
import { searchableText } from "../../../src/mime/searchable_text.ts";
import { fixture, message } from "./fixtures.ts";

Deno.test("searchableText() decodes header values and text bodies", async () => {
  const t = searchableText(await fixture("alternative.eml"));
  strictEqual(t.headers.includes("Subject: Grüße aus München\n"), true);
  strictEqual(t.headers.includes("From: Renée Müller <renee@example.com>\n"), true);
  strictEqual(t.body.includes("Dies ist eine sehr lange Zeile, die weich umbrochen wird."), true);
  strictEqual(t.body.includes("<p>Grüße aus München!</p>"), true);
});

Deno.test("searchableText() decodes the charset of a quoted-printable ISO-8859-1 body", async () => {
  strictEqual(searchableText(await fixture("latin1_subject.eml")).body, "Café crème\r\n\n");
});

Deno.test("searchableText() skips non-text attachments", async () => {
  const t = searchableText(await fixture("mixed_attachment.eml"));
  strictEqual(t.body, "See the attached report.\n");
});

Deno.test("searchableText() includes headers and text of attached messages in the body", async () => {
  const t = searchableText(await fixture("nested_rfc822.eml"));
  strictEqual(t.body.includes("Subject: original\n"), true);
  strictEqual(t.body.includes("<b>HTML body.</b>"), true);
});

Deno.test("searchableText() caps its output at mimeLimits.searchableTextChars", () => {
  const big = "x".repeat(mimeLimits.searchableTextChars + 1000);
  strictEqual(
    searchableText(message("Subject: big", "", big)).body.length,
    mimeLimits.searchableTextChars,
  );
});
