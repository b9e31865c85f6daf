import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { readableMessage } from "../../../src/mime/readable.ts";
import { composeMail } from "../../../sync/phone/compose.ts";

Deno.test("composeMail() writes a text/plain mail that reads back the same", () => {
  const raw = composeMail({
    from: "me@x.test",
    to: ["a@y.test", "b@y.test"],
    subject: "Grüße aus Köln, with a rather long subject line that needs several words",
    text: "Line one\nline two ✓",
    date: new Date(Date.UTC(2024, 0, 2, 10)),
  });
  const text = new TextDecoder().decode(raw);
  assert(!text.includes("Chat-Version"));
  assert(text.split("\r\n").every((l) => l.length <= 998));
  const r = readableMessage(raw);
  assertEquals(r.from.map((a) => a.address), ["me@x.test"]);
  assertEquals(r.to.map((a) => a.address), ["a@y.test", "b@y.test"]);
  assertEquals(
    r.subject,
    "Grüße aus Köln, with a rather long subject line that needs several words",
  );
  assertEquals(r.date, Date.UTC(2024, 0, 2, 10));
  assertEquals(r.text, "Line one\nline two ✓\n");
});

Deno.test("composeMail() marks chat and refuses what is not an address", () => {
  const raw = composeMail({
    from: "me@x.test",
    to: ["a@y.test"],
    subject: "hi",
    text: "x",
    chat: true,
  });
  assert(new TextDecoder().decode(raw).includes("\r\nChat-Version: 1.0\r\n"));
  throws(
    () => composeMail({ from: "me@x.test", to: ["a@y.test>\r\nBcc: x@z"], subject: "", text: "" }),
    TypeError,
  );
  throws(() => composeMail({ from: "me@x.test", to: [], subject: "", text: "" }), TypeError);
});
