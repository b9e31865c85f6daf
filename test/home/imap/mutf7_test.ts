import { deepStrictEqual as assertEquals, strictEqual, throws } from "node:assert/strict";
import { decodeMutf7, encodeMutf7 } from "../../../home/imap/mutf7.ts";
import { ProtocolError } from "../../../src/errors.ts";

const PAIRS: [string, string][] = [
  ["INBOX", "INBOX"],
  ["Entw&APw-rfe", "Entwürfe"],
  ["&ZeVnLIqe-", "日本語"],
  ["Tom &- Jerry", "Tom & Jerry"],
  ["&-", "&"],
  ["~peter/mail/&U,BTFw-/&ZeVnLIqe-", "~peter/mail/台北/日本語"],
  ["&2D3eAA-", "😀"],
  ["A&AAk-B", "A\tB"],
  ["", ""],
];

Deno.test("decodeMutf7() decodes the RFC 3501 examples and shifted sequences", () => {
  for (const [encoded, decoded] of PAIRS) strictEqual(decodeMutf7(encoded), decoded);
});

Deno.test("encodeMutf7() produces the canonical encoding", () => {
  for (const [encoded, decoded] of PAIRS) strictEqual(encodeMutf7(decoded), encoded);
});

Deno.test("encodeMutf7() and decodeMutf7() round-trip arbitrary Unicode", () => {
  const names = [
    "Données & résumés",
    "Ünïcödé/Ordner",
    "a\u0000b",
    "🙂🙃 x 🙂",
    "Привет мир",
    "&&&",
  ];
  for (const name of names) strictEqual(decodeMutf7(encodeMutf7(name)), name);
  assertEquals(encodeMutf7("日本語 & Co"), "&ZeVnLIqe- &- Co");
});

Deno.test("decodeMutf7() rejects malformed input with BAD", () => {
  const cases: [string, RegExp][] = [
    ["Entw&APw", /without closing/],
    ["&A-", /leftover bits/],
    ["&APy-", /leftover bits/],
    ["&AEE-", /printable ASCII/],
    ["&2D0-", /leftover bits|surrogate/],
    ["&2D3YPQ-", /surrogate/],
    ["&3gA-", /surrogate/],
    ["a&A/w-", /not modified BASE64/],
    ["Entwürfe", /raw non-ASCII/],
    ["tab\there", /raw non-ASCII or control/],
  ];
  for (const [input, text] of cases) {
    throws(() => decodeMutf7(input), (e) => {
      strictEqual(e instanceof ProtocolError, true);
      strictEqual((e as ProtocolError).status, "BAD");
      strictEqual(text.test((e as Error).message), true, `${input}: ${(e as Error).message}`);
      return true;
    });
  }
});
