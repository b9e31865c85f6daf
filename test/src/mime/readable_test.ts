import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { formatAddress, readableMessage, textBody } from "../../../src/mime/readable.ts";

const enc = (s: string) => new TextEncoder().encode(s);

Deno.test("readableMessage() decodes the headers a reader shows", () => {
  const m = readableMessage(enc(
    "From: =?utf-8?q?Ren=C3=A9e_M?= <renee@x.test>\r\n" +
      'To: a@y.test, "B, Jr." <b@y.test>\r\nCc: team: c@y.test;\r\n' +
      "Subject: =?utf-8?b?R3LDvMOfZQ==?= again\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\n" +
      "\r\nHello\r\n",
  ));
  assertEquals(m.from, [{ name: "Renée M", address: "renee@x.test" }]);
  assertEquals(m.to.map(formatAddress), ["a@y.test", "B, Jr. <b@y.test>"]);
  assertEquals(m.cc, [{ name: "", address: "c@y.test" }]);
  assertEquals(m.subject, "Grüße again");
  assertEquals(m.date, 760686745000);
  assertEquals(m.text, "Hello\n");
});

Deno.test("textBody() prefers the plain part of an alternative and skips attachments", () => {
  const raw = enc(
    'Content-Type: multipart/mixed; boundary="m"\r\n\r\n--m\r\n' +
      "Content-Type: text/plain; name=a.txt\r\nContent-Disposition: attachment\r\n\r\nATTACHED\r\n" +
      '--m\r\nContent-Type: multipart/alternative; boundary="a"\r\n\r\n--a\r\n' +
      "Content-Type: text/html\r\n\r\n<p>html</p>\r\n--a\r\n" +
      "Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n" +
      "\r\nCaf=E9 au lait\r\n--a--\r\n--m--\r\n",
  );
  assertEquals(textBody(raw), "Café au lait");
});

Deno.test("textBody() turns an HTML-only body into text", () => {
  const raw = enc(
    "Content-Type: text/html; charset=utf-8\r\n\r\n<html><head><style>p{}</style></head>" +
      "<body><p>Hi &amp; welcome</p><p>Line&nbsp;two &#x2764;</p></body></html>",
  );
  assertEquals(textBody(raw), "Hi & welcome\nLine two ❤");
});

Deno.test("textBody() of a message without text is empty", () => {
  assertEquals(textBody(enc("Content-Type: image/png\r\n\r\nxxxx")), "");
});
