import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { authenticate } from "mailauth";
import { Buffer } from "node:buffer";
import {
  partToVerify,
  removeForgedResults,
  VerdictCache,
  verifyInbound,
} from "../../../src/smtp/authenticate.ts";
import { mailauthResolver, TestResolver } from "../../../src/dns.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

Deno.test("removeForgedResults() drops only Authentication-Results that claim our authserv-id", () => {
  const raw = "Authentication-Results: LocalHost;\r\n dkim=pass header.d=bank.example\r\n" +
    "Authentication-Results: mx.other.example; spf=pass\r\n" +
    "From: a@b.example\r\nauthentication-results:localhost; dmarc=pass\r\n\r\n" +
    "Authentication-Results: localhost; in the body stays\r\n";
  assertEquals(
    dec(removeForgedResults(enc(raw), "localhost")),
    "Authentication-Results: mx.other.example; spf=pass\r\nFrom: a@b.example\r\n\r\n" +
      "Authentication-Results: localhost; in the body stays\r\n",
  );
});

Deno.test("removeForgedResults() returns the message itself when nothing is forged", () => {
  const raw = enc("Subject: x\r\n\r\nbody\r\n");
  assert(removeForgedResults(raw, "localhost") === raw);
});

Deno.test("partToVerify() keeps the body only for messages with a DKIM or ARC signature", () => {
  const body = "\r\n\r\nDKIM-Signature: in the body is not a header\r\n";
  const unsigned = "From: a@b.example\r\nSubject: x\r\n";
  assertEquals(dec(partToVerify(enc(unsigned + body))), unsigned + "\r\n");
  for (
    const field of [
      "DKIM-Signature: v=1; d=b.example",
      "dkim-signature : v=1",
      "ARC-Seal: i=1; cv=none",
      "ARC-Message-Signature: i=1",
      "ARC-Authentication-Results: i=1; mx.example",
    ]
  ) {
    const raw = enc(unsigned + field + "\r\n" + body);
    assert(partToVerify(raw) === raw, field);
  }
  // No empty line: all of it is header.
  const headOnly = enc(unsigned);
  assertEquals(dec(partToVerify(headOnly)), unsigned);
});

Deno.test("verifyInbound() gives an unsigned message the same verdict as mailauth on all of it", async () => {
  const raw = enc(
    "From: <a@b.example>\r\nSubject: x\r\n\r\n" + "a line of body text\r\n".repeat(500),
  );
  const resolver = new TestResolver().txt("b.example", "v=spf1 ip4:192.0.2.1 -all")
    .txt("_dmarc.b.example", "v=DMARC1; p=reject");
  const opts = {
    ip: "192.0.2.1",
    helo: "mail.b.example",
    sender: "a@b.example",
    mta: "mx.hearth.test",
    resolver: mailauthResolver(resolver),
    trustReceived: false,
    disableBimi: true,
  };
  const whole = await authenticate(Buffer.from(raw), opts);
  const ours = await verifyInbound(raw, { ...opts, hostname: opts.mta, resolver });
  assertEquals(ours.headers, whole.headers);
  assert(ours.headers.includes("dmarc=pass"));
});

Deno.test("VerdictCache gives an unsigned message of the same sender and From the verdict mailauth gives it", async () => {
  const resolver = new TestResolver().txt("b.example", "v=spf1 ip4:192.0.2.1 -all")
    .txt("_dmarc.b.example", "v=DMARC1; p=reject")
    .txt("_dmarc.c.example", "v=DMARC1; p=reject");
  const ctx = { ip: "192.0.2.1", helo: "mail.b.example", sender: "a@b.example", hostname: "mx" };
  let now = 0;
  const cache = new VerdictCache({ ttlMs: 1_000, now: () => now });
  const message = (from: string, subject: string) =>
    enc(`From: ${from}\r\nSubject: ${subject}\r\n\r\n${subject} body\r\n`);
  const first = await verifyInbound(message("<a@b.example>", "one"), { ...ctx, resolver }, cache);
  assert(first.headers.includes("dmarc=pass"));
  // Another message, same connection and From: the same verdict, now from the cache, and equal
  // to what mailauth says of it.
  const second = message("<a@b.example>", "two");
  const direct = await verifyInbound(second, { ...ctx, resolver });
  resolver.txt("b.example", "v=spf1 -all");
  const cached = await verifyInbound(second, { ...ctx, resolver }, cache);
  assert(cached === first, "the second verdict came from the cache");
  assertEquals(cached, direct);
  // A different From field is its own case: c.example fails DMARC, and that is never kept.
  const other = message("<a@c.example>", "three");
  const failed = await verifyInbound(other, { ...ctx, resolver }, cache);
  assert(failed.dmarcReject, "c.example's DMARC p=reject applies");
  assert(
    failed !== await verifyInbound(other, { ...ctx, resolver }, cache),
    "failures are not kept",
  );
  // Signed messages are always verified.
  const signed = enc(
    "DKIM-Signature: v=1; d=b.example; s=x; b=; bh=\r\nFrom: <a@b.example>\r\n\r\nx\r\n",
  );
  const s1 = await verifyInbound(signed, { ...ctx, resolver }, cache);
  assert(s1 !== await verifyInbound(signed, { ...ctx, resolver }, cache));
  // Past the TTL, the answer is asked again: SPF now fails for b.example.
  now = 2_000;
  const fresh = await verifyInbound(second, { ...ctx, resolver }, cache);
  assert(fresh !== first && !fresh.headers.includes("spf=pass"), fresh.headers);
});
