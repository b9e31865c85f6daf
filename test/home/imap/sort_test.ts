import { deepStrictEqual as assertEquals } from "node:assert/strict";
import type { SortKey } from "../../../home/imap/ast.ts";
import { asciiCasemap, compareCodePoints, sortMessages } from "../../../home/imap/sort.ts";
import { fakeMailbox, type FakeSpec } from "./fake_message.ts";

async function sorted(keys: (SortKey["key"] | SortKey)[], specs: FakeSpec[]): Promise<number[]> {
  const sortKeys = keys.map((k) => typeof k === "string" ? { key: k, reverse: false } : k);
  return (await sortMessages(sortKeys, fakeMailbox(specs))).map((m) => m.seq);
}

const rev = (key: SortKey["key"]): SortKey => ({ key, reverse: true });

Deno.test("sortMessages() ARRIVAL and SIZE need no info() and break ties by sequence number", async () => {
  const specs: FakeSpec[] = [
    { internalDate: 300, size: 5 },
    { internalDate: 100, size: 5 },
    { internalDate: 200, size: 1 },
    { internalDate: 100, size: 9 },
  ];
  const box = fakeMailbox(specs);
  const byArrival = await sortMessages([{ key: "ARRIVAL", reverse: false }], box);
  assertEquals(byArrival.map((m) => m.seq), [2, 4, 3, 1]);
  assertEquals(box.every((m) => m.calls.info === 0), true);
  assertEquals(await sorted(["SIZE"], specs), [3, 1, 2, 4]);
  // REVERSE reverses the key, not the sequence-number tie-break.
  assertEquals(await sorted([rev("SIZE")], specs), [4, 1, 2, 3]);
});

Deno.test("sortMessages() DATE uses the Date: header, else the internal date, compared in UTC", async () => {
  const specs: FakeSpec[] = [
    { date: "Mon, 1 Jan 2024 10:00:00 +0000" },
    { date: "Mon, 1 Jan 2024 10:00:00 +0200" }, // 08:00Z
    { internalDate: "2024-01-01T09:00:00Z" }, // no Date:
    { date: "not a date", internalDate: "2023-12-31T00:00:00Z" },
  ];
  assertEquals(await sorted(["DATE"], specs), [4, 2, 3, 1]);
  assertEquals(await sorted([rev("DATE")], specs), [1, 3, 2, 4]);
});

Deno.test("sortMessages() FROM, TO and CC sort on the first address's mailbox, case-insensitively", async () => {
  const specs: FakeSpec[] = [
    { from: "Zed <alice@z.org>", to: "c@x.org", cc: "m@x.org" },
    { from: "Alice <Zed@a.org>", to: "B <b@x.org>, a@x.org" },
    { from: "bob@b.org", to: "a@x.org", cc: "B@x.org" },
    {},
  ];
  assertEquals(await sorted(["FROM"], specs), [4, 1, 3, 2]);
  assertEquals(await sorted(["TO"], specs), [4, 3, 2, 1]);
  assertEquals(await sorted(["CC"], specs), [2, 4, 3, 1]);
});

Deno.test("sortMessages() DISPLAYFROM and DISPLAYTO use the display name, else the address", async () => {
  const specs: FakeSpec[] = [
    { from: "Zed <alice@z.org>", to: "bob@x.org" },
    { from: "ann@z.org", to: "Carol <aaa@x.org>" },
    { from: "Bob <b@z.org>", to: '"" <zz@x.org>' },
  ];
  assertEquals(await sorted(["DISPLAYFROM"], specs), [2, 3, 1]);
  assertEquals(await sorted(["DISPLAYTO"], specs), [1, 2, 3]);
});

Deno.test("sortMessages() SUBJECT sorts on the base subject", async () => {
  const specs: FakeSpec[] = [
    { subject: "Re: beta" },
    { subject: "alpha" },
    { subject: "[list] Fwd: Alpha" },
    { subject: "" },
  ];
  assertEquals(await sorted(["SUBJECT"], specs), [4, 2, 3, 1]);
});

Deno.test("sortMessages() applies several keys in order, each with its own REVERSE", async () => {
  const specs: FakeSpec[] = [
    { subject: "b", size: 1, internalDate: 5 },
    { subject: "a", size: 2, internalDate: 5 },
    { subject: "b", size: 3, internalDate: 5 },
    { subject: "a", size: 2, internalDate: 9 },
    { subject: "a", size: 1, internalDate: 1 },
  ];
  assertEquals(await sorted(["SUBJECT", rev("SIZE"), "ARRIVAL"], specs), [2, 4, 5, 3, 1]);
  assertEquals(await sorted([rev("SUBJECT"), "SIZE", rev("ARRIVAL")], specs), [1, 3, 5, 4, 2]);
});

Deno.test("asciiCasemap() folds only US-ASCII letters", () => {
  assertEquals(asciiCasemap("abc Äb ß"), "ABC ÄB ß");
});

Deno.test("compareCodePoints() orders astral characters after U+FFFD, as UTF-8 does", () => {
  assertEquals(compareCodePoints("\u{1F600}", "\uFFFD") > 0, true);
  assertEquals(compareCodePoints("a", "ab") < 0, true);
  assertEquals(compareCodePoints("B", "a") < 0, true);
  assertEquals(compareCodePoints("same", "same"), 0);
});
