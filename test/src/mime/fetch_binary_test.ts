import { strictEqual } from "node:assert/strict";
import { binarySize, fetchBinary } from "../../../src/mime/fetch_binary.ts";
import { fixture, message, text } from "./fixtures.ts";

Deno.test("fetchBinary() removes base64 from an attachment", async () => {
  const raw = await fixture("mixed_attachment.eml");
  strictEqual(text(fetchBinary(raw, [2])), "Hello, world!");
  strictEqual(binarySize(raw, [2]), 13);
});

Deno.test("fetchBinary() removes quoted-printable, soft line breaks included", async () => {
  const raw = await fixture("alternative.eml");
  const got = text(fetchBinary(raw, [1]));
  strictEqual(got, "Grüße aus München! Dies ist eine sehr lange Zeile, die weich umbrochen wird.");
  strictEqual(binarySize(raw, [1]), new TextEncoder().encode(got!).length);
});

Deno.test("fetchBinary() returns 7bit and 8bit bodies as stored", async () => {
  const raw = await fixture("alternative.eml");
  strictEqual(text(fetchBinary(raw, [2])), "<p>Grüße aus München!</p>");
});

Deno.test("fetchBinary() returns null for an unknown transfer encoding", () => {
  const raw = message("Content-Transfer-Encoding: x-uuencode", "", "begin 644 a");
  strictEqual(fetchBinary(raw, [1]), null);
  strictEqual(binarySize(raw, [1]), null);
});

Deno.test("fetchBinary() gives an empty array for a part that does not exist", async () => {
  strictEqual(fetchBinary(await fixture("simple_text.eml"), [4])?.length, 0);
});
