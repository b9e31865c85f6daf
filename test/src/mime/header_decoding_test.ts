import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { parseAddressList } from "../../../src/mime/address.ts";
import { baseSubject } from "../../../src/mime/base_subject.ts";
import { parseContentValue } from "../../../src/mime/content_params.ts";
import { parseMailDate } from "../../../src/mime/date.ts";
import { decodeEncodedWords } from "../../../src/mime/encoded_words.ts";
import { decodeBase64, decodeQuotedPrintable } from "../../../src/mime/transfer_decoding.ts";
import { text } from "./fixtures.ts";

Deno.test("decodeEncodedWords() joins a UTF-8 character split across two encoded words", () => {
  strictEqual(decodeEncodedWords("=?UTF-8?B?w6k=?= =?UTF-8?B?4oKs?= x"), "é€ x");
  strictEqual(decodeEncodedWords("=?utf-8?B?w6k=?=\r\n =?UTF-8?Q?=E2=82?= =?UTF-8?Q?=AC?="), "é€");
});

Deno.test("decodeEncodedWords() keeps blanks between an encoded word and plain text", () => {
  strictEqual(decodeEncodedWords("Hi =?iso-8859-1?q?J=F8rn?= !"), "Hi Jørn !");
});

Deno.test("decodeEncodedWords() keeps unknown charsets as latin1 and never throws", () => {
  strictEqual(decodeEncodedWords("=?x-martian?Q?caf=E9?="), "café");
  strictEqual(decodeEncodedWords("=?utf-8?B?!!!?= =?broken"), " =?broken");
});

Deno.test("decodeEncodedWords() accepts an RFC 2231 language after the charset", () => {
  strictEqual(decodeEncodedWords("=?US-ASCII*EN?Q?Keith_Moore?="), "Keith Moore");
});

Deno.test("baseSubject() strips reply, forward, blob and trailer markers per RFC 5256", () => {
  strictEqual(baseSubject("Re: RE: fwd: hello"), "hello");
  strictEqual(baseSubject("[PATCH] Re: fix"), "fix");
  strictEqual(baseSubject("[only blob]"), "[only blob]");
  strictEqual(baseSubject("[Fwd: Re: lunch (fwd)]"), "lunch");
  strictEqual(baseSubject("Re[2]: tabs\tand   spaces"), "tabs and spaces");
  strictEqual(baseSubject(""), "");
});

Deno.test("parseMailDate() reads numeric and obsolete zones and two-digit years", () => {
  strictEqual(parseMailDate("Fri, 21 Nov 1997 09:55:06 -0600"), Date.UTC(1997, 10, 21, 15, 55, 6));
  strictEqual(parseMailDate("21 Nov 97 09:55 EST"), Date.UTC(1997, 10, 21, 14, 55, 0));
  strictEqual(parseMailDate("1 Jan 05 00:00:00 GMT"), Date.UTC(2005, 0, 1));
  strictEqual(parseMailDate("32 Jan 2005 00:00"), null);
});

Deno.test("parseAddressList() names an address by its comment when it has no display name", () => {
  deepStrictEqual(parseAddressList("a@b.c (Ann), <>"), [
    { name: "Ann", route: null, mailbox: "a", host: "b.c" },
    { name: null, route: null, mailbox: "MISSING_MAILBOX", host: "MISSING_DOMAIN" },
  ]);
});

Deno.test("parseContentValue() drops comments and unquotes parameter values", () => {
  const v = parseContentValue('text/plain (note) ; charset = "utf-8" (c); format=flowed');
  strictEqual(v.value, "text/plain");
  deepStrictEqual(v.imapParams, [["charset", "utf-8"], ["format", "flowed"]]);
});

Deno.test("parseContentValue() joins RFC 2231 continuations without encoding", () => {
  const v = parseContentValue('attachment; filename*1="b.txt"; filename*0="a"');
  deepStrictEqual(v.imapParams, [["filename", "ab.txt"]]);
  strictEqual(v.params.get("filename"), "ab.txt");
});

Deno.test("decodeBase64() skips line breaks and junk and stops at padding", () => {
  strictEqual(text(decodeBase64(new TextEncoder().encode("SGVs\r\nbG8*=junk"))), "Hello");
});

Deno.test("decodeQuotedPrintable() drops transport whitespace and keeps broken escapes", () => {
  const raw = new TextEncoder().encode("a=3Db  \r\nc=\r\nd =ZZ=\n");
  strictEqual(text(decodeQuotedPrintable(raw)), "a=b\r\ncd =ZZ");
});
