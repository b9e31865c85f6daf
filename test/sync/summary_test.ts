import { deepStrictEqual as assertEquals, rejects } from "node:assert/strict";
import { gzip } from "../../src/compress.ts";
import { decodeSummaries, encodeSummaries, summarize, summaryKey } from "../../sync/summary.ts";

const enc = (s: string) => new TextEncoder().encode(s);

Deno.test("summarize() gives sender, subject, date and a snippet without quoted lines", () => {
  const s = summarize(
    enc(
      'From: "Lee, Ann" <ann@x.test>, bob@x.test\r\nSubject: Re:  Lunch\r\n' +
        "Date: Tue, 2 Jan 2024 10:00:00 +0000\r\n\r\n> earlier text\r\n\r\nYes,   let's go.\r\n" +
        "x".repeat(300) + "\r\n",
    ),
    40,
  );
  assertEquals(s.from, "Lee, Ann", "a list shows the display name");
  assertEquals(s.subject, "Re: Lunch");
  assertEquals(s.date, Date.UTC(2024, 0, 2, 10));
  assertEquals(s.snippet, "Yes, let's go. " + "x".repeat(25));
});

Deno.test("summarize() never splits a surrogate pair; a sender without a name is its address", () => {
  const s = summarize(
    enc("From: solo@x.test\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nab😀😀"),
    3,
  );
  assertEquals(s.from, "solo@x.test");
  assertEquals(s.snippet, "ab");
  assertEquals(s.date, 0);
});

Deno.test("encodeSummaries() and decodeSummaries() round-trip a batch", async () => {
  const entries: [string, ReturnType<typeof summarize>][] = [
    ["00ff".repeat(8), {
      from: "Ann <a@x>",
      subject: "Grüße",
      date: 1_700_000_000_000,
      snippet: "",
    }],
    ["ab".repeat(16), { from: "", subject: "", date: 0, snippet: "ümlaut ✓" }],
  ];
  const back = entries.map(([id, s]) => [summaryKey(id), s]);
  assertEquals(await decodeSummaries(await encodeSummaries(entries)), back);
  assertEquals(back[0][0], "00ff00ff00ff00ff", "keyed by the first 64 bits of the blob id");
  assertEquals(await decodeSummaries(await encodeSummaries([])), []);
});

Deno.test("decodeSummaries() refuses damaged batches with RangeError", async () => {
  const good = await encodeSummaries([["aa".repeat(16), {
    from: "a",
    subject: "b",
    date: 0,
    snippet: "c",
  }]]);
  await rejects(decodeSummaries(good.subarray(0, good.length - 6)), RangeError);
  await rejects(decodeSummaries(new Uint8Array([1, 2, 3])), RangeError);
  await rejects(decodeSummaries(await gzip(new Uint8Array([1, 16, 1, 2]))), RangeError);
  await rejects(decodeSummaries(await gzip(new Uint8Array([9]))), RangeError);
  // A bomb: far more than a batch may hold once inflated.
  await rejects(decodeSummaries(await gzip(new Uint8Array(20 * 1024 * 1024))), RangeError);
});

Deno.test("encodeSummaries() refuses an id that is not a hex blob id", async () => {
  await rejects(
    encodeSummaries([["edge-1", { from: "", subject: "", date: 0, snippet: "" }]]),
    RangeError,
  );
});
