import { deepStrictEqual as assertEquals, strictEqual, throws } from "node:assert/strict";
import {
  expandSequenceSet,
  formatIntervals,
  formatSequenceSet,
  intervalsContain,
  parseSequenceSet,
  resolveSequenceSet,
  sequenceSetContains,
} from "../../../home/imap/sequence.ts";
import { ProtocolError } from "../../../src/errors.ts";

Deno.test("parseSequenceSet() reads numbers, ranges, * and $", () => {
  assertEquals(parseSequenceSet("1:4,7,9:*"), {
    ranges: [{ from: 1, to: 4 }, { from: 7 }, { from: 9, to: "*" }],
  });
  assertEquals(parseSequenceSet("*"), { ranges: [{ from: "*" }] });
  assertEquals(parseSequenceSet("$"), { saved: true });
  assertEquals(parseSequenceSet("4294967295"), { ranges: [{ from: 4294967295 }] });
});

Deno.test("parseSequenceSet() rejects zero, leading zeros, empty items and overflow with BAD", () => {
  const cases: [string, RegExp][] = [
    ["0", /not a number > 0/],
    ["01", /not a number > 0/],
    ["1,,2", /empty number/],
    ["1:", /empty number/],
    ["4294967296", /larger than 4294967295/],
    ["1:2:3", /not a number/],
    ["$,1", /not a number/],
    ["", /empty/],
  ];
  for (const [text, re] of cases) {
    throws(() => parseSequenceSet(text), (e) => {
      strictEqual((e as ProtocolError).status, "BAD");
      strictEqual(re.test((e as Error).message), true, (e as Error).message);
      return true;
    });
  }
});

Deno.test("resolveSequenceSet() turns reversed ranges round, replaces * and merges", () => {
  assertEquals(resolveSequenceSet(parseSequenceSet("5:2,4,9:*"), 7), [[2, 5], [7, 7]]);
  assertEquals(resolveSequenceSet(parseSequenceSet("*:3"), 10), [[3, 10]]);
  assertEquals(resolveSequenceSet(parseSequenceSet("1,2,3,5,6"), 10), [[1, 3], [5, 6]]);
  assertEquals(resolveSequenceSet(parseSequenceSet("1:*"), 0), []);
  // RFC 9051 §6.4.8: n:* with n past the last UID still names the last message.
  assertEquals(resolveSequenceSet(parseSequenceSet("559:*"), 500), [[500, 500]]);
  throws(() => resolveSequenceSet({ saved: true }, 3), TypeError);
});

Deno.test("expandSequenceSet() is bounded by max whatever the set", () => {
  assertEquals(expandSequenceSet(parseSequenceSet("1:4294967295"), 5), [1, 2, 3, 4, 5]);
  assertEquals(expandSequenceSet(parseSequenceSet("3,1,2,3"), 5), [1, 2, 3]);
});

Deno.test("intervalsContain() tests membership of huge ranges without expanding them", () => {
  const iv = resolveSequenceSet(parseSequenceSet("1:1000000000,2000000000:*"), 4294967295);
  strictEqual(intervalsContain(iv, 999_999_999), true);
  strictEqual(intervalsContain(iv, 1_500_000_000), false);
  strictEqual(intervalsContain(iv, 4294967295), true);
  strictEqual(sequenceSetContains(parseSequenceSet("2,4:6"), 5, 10), true);
  strictEqual(sequenceSetContains(parseSequenceSet("2,4:6"), 3, 10), false);
});

Deno.test("formatSequenceSet() joins ascending runs and keeps the given order", () => {
  strictEqual(formatSequenceSet([1, 2, 3, 4, 5, 7]), "1:5,7");
  strictEqual(formatSequenceSet([]), "");
  strictEqual(formatSequenceSet([9]), "9");
  strictEqual(formatSequenceSet([304, 319, 320]), "304,319:320");
  strictEqual(formatSequenceSet([5, 1, 2]), "5,1:2");
  strictEqual(formatIntervals([[1, 3], [5, 5]]), "1:3,5");
});
