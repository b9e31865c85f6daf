import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  domainOf,
  headerAddresses,
  headerValues,
  recipientSyntaxProblem,
} from "../../../src/smtp/addresses.ts";
import { senderProblem } from "../../../home/smtp/submission.ts";

const bytes = (s: string) => new TextEncoder().encode(s);

Deno.test("recipientSyntaxProblem() accepts plain addresses", () => {
  for (const a of ["me@hearth.localhost", "first.last+tag@example.org", "ünï@example.org"]) {
    assertEquals(recipientSyntaxProblem(a, `<${a}>`), null, a);
  }
});

Deno.test("recipientSyntaxProblem() refuses every routing form", () => {
  const cases: [string, string | undefined, RegExp][] = [
    ["a%b@hearth.localhost", undefined, /percent-hack/],
    ["a%b.example@hearth.localhost", undefined, /percent-hack/],
    // The library strips "@x:" before we see the address; the raw path still shows it.
    ["me@hearth.localhost", "<@x.example:me@hearth.localhost>", /source routes/],
    ["me@hearth.localhost", "<@a.example,@b.example:me@hearth.localhost>", /source routes/],
    ["@x.example:me@hearth.localhost", undefined, /source routes/],
    ['"a@b"@hearth.localhost', undefined, /quoted local parts/],
    ['"me"@hearth.localhost', undefined, /quoted local parts/],
    ["host!user@hearth.localhost", undefined, /bang paths/],
    ["nodomain", undefined, /local part and a domain/],
  ];
  for (const [address, raw, want] of cases) {
    const problem = recipientSyntaxProblem(address, raw);
    assert(problem && want.test(problem), `${address} ${raw}: ${problem}`);
  }
});

Deno.test("domainOf() lower-cases the part after the last @", () => {
  assertEquals(domainOf("Me@Hearth.LOCALHOST"), "hearth.localhost");
  assertEquals(domainOf("postmaster"), "");
});

Deno.test("headerAddresses() ignores display names and comments", () => {
  assertEquals(headerAddresses("Me <Me@Hearth.Localhost>"), ["me@hearth.localhost"]);
  assertEquals(headerAddresses("me@hearth.localhost (Me)"), ["me@hearth.localhost"]);
  assertEquals(headerAddresses('"boss@corp.example, x" <me@h.l>'), ["me@h.l"]);
  assertEquals(headerAddresses("a@x.example, B <b@y.example>"), ["a@x.example", "b@y.example"]);
});

Deno.test("headerValues() unfolds and stops at the body", () => {
  const raw = bytes("From: Me\r\n <me@h.l>\r\nSubject: x\r\n\r\nFrom: not@header.example\r\n");
  assertEquals(headerValues(raw, "from"), ["Me <me@h.l>"]);
});

Deno.test("senderProblem() allows only the user's own From: address", () => {
  const user = "me@hearth.localhost";
  assertEquals(senderProblem(user, bytes("From: Me <ME@hearth.localhost>\r\n\r\nx")), null);
  assert(
    /may not send as boss@/.test(
      senderProblem(user, bytes("From: boss@hearth.localhost\r\n\r\n"))!,
    ),
  );
  assert(/exactly one From/.test(senderProblem(user, bytes("Subject: x\r\n\r\n"))!));
  assert(
    /exactly one From/.test(
      senderProblem(user, bytes(`From: ${user}\r\nFrom: boss@hearth.localhost\r\n\r\n`))!,
    ),
  );
  assert(
    /may not send as/.test(senderProblem(user, bytes(`From: ${user}, x@evil.example\r\n\r\n`))!),
  );
});
