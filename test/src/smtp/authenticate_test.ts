import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { removeForgedResults } from "../../../src/smtp/authenticate.ts";

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
