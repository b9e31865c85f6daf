import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { normaliseLineEndings } from "../../../src/mail/line_endings.ts";
import { prependHeader, receivedHeader, rfc5322Date } from "../../../src/smtp/received.ts";

const text = (s: string) =>
  new TextDecoder().decode(normaliseLineEndings(new TextEncoder().encode(s)));

Deno.test("normaliseLineEndings() turns bare LF and bare CR into CRLF", () => {
  assertEquals(text("a\nb\rc\r\nd"), "a\r\nb\r\nc\r\nd");
  assertEquals(text("\n.\n"), "\r\n.\r\n");
  assertEquals(text("\r.\r"), "\r\n.\r\n");
  assertEquals(text("x\r\r\n"), "x\r\n\r\n");
  assertEquals(text("\n\r"), "\r\n\r\n");
});

Deno.test("normaliseLineEndings() returns CRLF-only input unchanged", () => {
  const raw = new TextEncoder().encode("a\r\nb\r\n");
  assert(normaliseLineEndings(raw) === raw);
});

Deno.test("receivedHeader() follows RFC 5321 §4.4 and cleans client text", () => {
  const h = receivedHeader({
    helo: "mx.example.org\r\nBcc: x",
    clientName: "[192.0.2.1]",
    clientIp: "192.0.2.1",
    by: "localhost",
    protocol: "ESMTPS",
    tls: "TLSv1.3 TLS_AES_256_GCM_SHA384",
    id: "abc123",
    recipient: "me@hearth.localhost",
    date: new Date(Date.UTC(2026, 10, 30, 11, 0, 0)),
  });
  assertEquals(
    h,
    "Received: from mx.example.org??Bcc:?x ([192.0.2.1])\r\n" +
      "\tby localhost (Hearth) with ESMTPS (TLSv1.3 TLS_AES_256_GCM_SHA384)\r\n" +
      "\tid abc123 for <me@hearth.localhost>;\r\n" +
      "\tMon, 30 Nov 2026 11:00:00 +0000\r\n",
  );
  const noFor = receivedHeader({
    helo: "c",
    clientName: "client.example",
    clientIp: "::1",
    by: "b",
    protocol: "ESMTPSA",
    id: "i",
    date: new Date(0),
  });
  assert(noFor.startsWith("Received: from c (client.example [IPv6:::1])\r\n"), noFor);
  assert(!noFor.includes(" for "), noFor);
});

Deno.test("rfc5322Date() and prependHeader()", () => {
  assertEquals(rfc5322Date(new Date(0)), "Thu, 01 Jan 1970 00:00:00 +0000");
  assertEquals(
    new TextDecoder().decode(prependHeader("X: y\r\n", new TextEncoder().encode("A: b\r\n"))),
    "X: y\r\nA: b\r\n",
  );
});
