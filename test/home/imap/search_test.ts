import { deepStrictEqual as assertEquals, rejects, strictEqual } from "node:assert/strict";
import type { SearchKey } from "../../../home/imap/ast.ts";
import { foldForSearch, searchMessages, type SearchScope } from "../../../home/imap/search.ts";
import { formatEsearch, formatSequenceSet, numbersToSave } from "../../../home/imap/esearch.ts";
import { fakeMailbox, type FakeMessage, type FakeSpec } from "./fake_message.ts";

function scopeFor(box: FakeMessage[], extra: Partial<SearchScope> = {}): SearchScope {
  return {
    maxSeq: box.length,
    maxUid: Math.max(0, ...box.map((m) => m.uid)),
    savedUids: null,
    now: Date.parse("2024-06-01T00:00:00Z"),
    ...extra,
  };
}

async function seqs(
  key: SearchKey,
  specs: FakeSpec[],
  extra: Partial<SearchScope> = {},
): Promise<number[]> {
  const box = fakeMailbox(specs);
  return (await searchMessages(key, box, scopeFor(box, extra))).map((m) => m.seq);
}

const flag = (f: string, set = true): SearchKey => ({ kind: "flag", flag: f, set });
const header = (field: string, value: string): SearchKey => ({ kind: "header", field, value });
const range = (from: number | "*", to?: number | "*") => ({ ranges: [{ from, to }] });

Deno.test("searchMessages() ALL matches every message and an empty mailbox gives nothing", async () => {
  assertEquals(await seqs({ kind: "ALL" }, [{}, {}, {}]), [1, 2, 3]);
  assertEquals(await seqs({ kind: "ALL" }, []), []);
});

Deno.test("searchMessages() flag keys match set and unset flags and keywords, case-insensitively", async () => {
  const specs: FakeSpec[] = [
    { flags: ["\\Seen", "\\Answered"] },
    { flags: ["\\Flagged", "$Label1"] },
    { flags: ["\\Deleted", "\\Draft", "\\Seen"] },
  ];
  assertEquals(await seqs(flag("\\Seen"), specs), [1, 3]);
  assertEquals(await seqs(flag("\\Seen", false), specs), [2]);
  assertEquals(await seqs(flag("\\ANSWERED"), specs), [1]);
  assertEquals(await seqs(flag("\\Flagged"), specs), [2]);
  assertEquals(await seqs(flag("\\Deleted"), specs), [3]);
  assertEquals(await seqs(flag("\\Draft", false), specs), [1, 2]);
  assertEquals(await seqs(flag("$label1"), specs), [2]);
  assertEquals(await seqs(flag("$Label1", false), specs), [1, 3]);
});

Deno.test("searchMessages() NEW is recent and unseen, OLD is not recent, RECENT is recent", async () => {
  const specs: FakeSpec[] = [
    { recent: true },
    { recent: true, flags: ["\\Seen"] },
    { recent: false },
  ];
  assertEquals(await seqs({ kind: "NEW" }, specs), [1]);
  assertEquals(await seqs({ kind: "OLD" }, specs), [3]);
  assertEquals(await seqs({ kind: "RECENT" }, specs), [1, 2]);
});

Deno.test("searchMessages() LARGER and SMALLER are strict", async () => {
  const specs: FakeSpec[] = [{ size: 99 }, { size: 100 }, { size: 101 }];
  assertEquals(await seqs({ kind: "LARGER", size: 100 }, specs), [3]);
  assertEquals(await seqs({ kind: "SMALLER", size: 100 }, specs), [1]);
});

Deno.test("searchMessages() sequence sets resolve * to the largest number and accept reversed ranges", async () => {
  const specs: FakeSpec[] = [{}, {}, {}, {}, {}];
  assertEquals(await seqs({ kind: "seq", set: range(2, 4) }, specs), [2, 3, 4]);
  assertEquals(await seqs({ kind: "seq", set: range(4, 2) }, specs), [2, 3, 4]);
  assertEquals(await seqs({ kind: "seq", set: range("*") }, specs), [5]);
  assertEquals(await seqs({ kind: "seq", set: range(4, "*") }, specs), [4, 5]);
  assertEquals(await seqs({ kind: "seq", set: range(9, "*") }, specs), [5]);
  assertEquals(await seqs({ kind: "seq", set: range(7, 9) }, specs), []);
  assertEquals(
    await seqs(
      { kind: "seq", set: { ranges: [{ from: 1 }, { from: 3, to: 4 }, { from: 2 }] } },
      specs,
    ),
    [1, 2, 3, 4],
  );
  assertEquals(await seqs({ kind: "seq", set: { ranges: [] } }, specs), []);
});

Deno.test("searchMessages() UID sets use UIDs and * is the highest UID", async () => {
  const specs: FakeSpec[] = [{ uid: 10 }, { uid: 20 }, { uid: 30 }];
  assertEquals(await seqs({ kind: "UID", set: range(15, 30) }, specs), [2, 3]);
  assertEquals(await seqs({ kind: "UID", set: range("*") }, specs), [3]);
  // RFC 9051 §6.4.8: UID 31:* still includes the highest UID.
  assertEquals(await seqs({ kind: "UID", set: range(31, "*") }, specs), [3]);
  assertEquals(await seqs({ kind: "UID", set: range(1, 9) }, specs), []);
});

Deno.test("searchMessages() $ is the saved result for SEARCH and UID SEARCH, and empty when unset", async () => {
  const specs: FakeSpec[] = [{ uid: 10 }, { uid: 20 }, { uid: 30 }];
  const saved = { savedUids: new Set([20, 30, 99]) };
  assertEquals(await seqs({ kind: "UID", set: { saved: true } }, specs, saved), [2, 3]);
  assertEquals(await seqs({ kind: "seq", set: { saved: true } }, specs, saved), [2, 3]);
  assertEquals(await seqs({ kind: "seq", set: { saved: true } }, specs), []);
  assertEquals(
    await seqs({ kind: "UID", set: { saved: true } }, specs, { savedUids: new Set() }),
    [],
  );
  assertEquals(await seqs({ kind: "NOT", key: { kind: "UID", set: { saved: true } } }, specs), [
    1,
    2,
    3,
  ]);
});

Deno.test("searchMessages() BEFORE, ON and SINCE use the internal date's day in the server timezone", async () => {
  const specs: FakeSpec[] = [
    { internalDate: "2024-03-09T23:59:59.999Z" },
    { internalDate: "2024-03-10T00:00:00Z" },
    { internalDate: "2024-03-10T23:59:59.999Z" },
    { internalDate: "2024-03-11T00:00:00Z" },
  ];
  const date = (op: "before" | "on" | "since"): SearchKey => ({
    kind: "date",
    which: "internal",
    op,
    date: "2024-03-10",
  });
  assertEquals(await seqs(date("before"), specs), [1]);
  assertEquals(await seqs(date("on"), specs), [2, 3]);
  assertEquals(await seqs(date("since"), specs), [2, 3, 4]);
  // At UTC+02:00, 2024-03-09T23:59:59Z is already the 10th and 2024-03-10T23:59Z the 11th.
  const east = { timezoneOffsetMinutes: 120 };
  assertEquals(await seqs(date("on"), specs, east), [1, 2]);
  assertEquals(await seqs(date("before"), specs, east), []);
  const west = { timezoneOffsetMinutes: -300 };
  assertEquals(await seqs(date("on"), specs, west), [3, 4]);
});

Deno.test("searchMessages() SENT* use the Date: header's own day and skip messages without one", async () => {
  const specs: FakeSpec[] = [
    // 23:30 at -0800 is the next day in UTC; SENTON must see the 1st.
    { date: "Mon, 1 Jan 2024 23:30:00 -0800" },
    { date: "2 Jan 2024 00:10:00 +1400" },
    { date: "Wed, 03 Jan 24 09:00:00 GMT" },
    {},
    { date: "2024-01-02T10:00:00Z" }, // not RFC 5322 shaped: its UTC day is used
  ];
  const sent = (op: "before" | "on" | "since", d: string): SearchKey => ({
    kind: "date",
    which: "sent",
    op,
    date: d,
  });
  assertEquals(await seqs(sent("on", "2024-01-01"), specs), [1]);
  assertEquals(await seqs(sent("on", "2024-01-02"), specs), [2, 5]);
  assertEquals(await seqs(sent("before", "2024-01-02"), specs), [1]);
  assertEquals(await seqs(sent("since", "2024-01-02"), specs), [2, 3, 5]);
  assertEquals(await seqs({ kind: "NOT", key: sent("since", "2000-01-01") }, specs), [4]);
});

Deno.test("searchMessages() rejects an impossible date", async () => {
  const box = fakeMailbox([{}]);
  await rejects(
    searchMessages(
      { kind: "date", which: "internal", op: "on", date: "2024-02-30" },
      box,
      scopeFor(box),
    ),
    { name: "ProtocolError" },
  );
});

Deno.test("searchMessages() OLDER and YOUNGER count seconds back from now", async () => {
  const now = Date.parse("2024-06-01T00:00:00Z");
  const specs: FakeSpec[] = [
    { internalDate: now - 3_600_000 - 1 },
    { internalDate: now - 3_600_000 },
    { internalDate: now - 10 },
  ];
  assertEquals(await seqs({ kind: "OLDER", seconds: 3600 }, specs), [1]);
  assertEquals(await seqs({ kind: "YOUNGER", seconds: 3600 }, specs), [2, 3]);
});

Deno.test("searchMessages() MODSEQ matches mod-sequences at or above the value", async () => {
  const specs: FakeSpec[] = [{ modseq: 5n }, { modseq: 10n }, { modseq: 2n ** 63n }];
  assertEquals(await seqs({ kind: "MODSEQ", modseq: 10n }, specs), [2, 3]);
  assertEquals(
    await seqs({
      kind: "MODSEQ",
      modseq: 6n,
      entry: { name: "/flags/\\draft", type: "all" },
    }, specs),
    [2, 3],
  );
});

Deno.test("searchMessages() address keys match display names and addresses, decoded", async () => {
  const specs: FakeSpec[] = [
    { from: "Jörg Müller <joerg@example.de>", to: "a@x.org", cc: "Team <team@x.org>" },
    { from: "bob@example.com", to: "B <b@x.org>, c@x.org" },
    { headers: [["Bcc", "secret@x.org"]] },
  ];
  assertEquals(await seqs(header("FROM", "müller"), specs), [1]);
  assertEquals(await seqs(header("FROM", "JOERG@EXAMPLE"), specs), [1]);
  assertEquals(await seqs(header("FROM", "example"), specs), [1, 2]);
  assertEquals(await seqs(header("TO", "c@x.org"), specs), [2]);
  assertEquals(await seqs(header("CC", "team"), specs), [1]);
  assertEquals(await seqs(header("BCC", "secret"), specs), [3]);
});

Deno.test("searchMessages() SUBJECT and HEADER are substring matches; an empty value means the field is present", async () => {
  const specs: FakeSpec[] = [
    { subject: "Quarterly Report", headers: [["X-Spam", "yes"]] },
    { subject: "", headers: [["x-spam", ""]] },
    {},
  ];
  assertEquals(await seqs(header("SUBJECT", "report"), specs), [1]);
  assertEquals(await seqs(header("SUBJECT", "ly Rep"), specs), [1]);
  assertEquals(await seqs(header("SUBJECT", ""), specs), [1, 2]);
  assertEquals(await seqs(header("X-SPAM", ""), specs), [1, 2]);
  assertEquals(await seqs(header("X-Spam", "YES"), specs), [1]);
  assertEquals(await seqs(header("X-Missing", ""), specs), []);
});

Deno.test("foldForSearch() folds case, ß and compatibility forms", () => {
  strictEqual(foldForSearch("GRÜSSE"), foldForSearch("Grüße"));
  strictEqual(foldForSearch("ẞ"), "ss");
  strictEqual(foldForSearch("ﬁle"), "file");
  strictEqual(foldForSearch("ΟΔΟΣ"), foldForSearch("οδος"));
  // NFC and NFD spellings of é are the same text.
  strictEqual(foldForSearch("Cafe\u0301"), foldForSearch("CAFÉ"));
});

Deno.test("searchMessages() matches Unicode case-insensitively in headers and bodies", async () => {
  const specs: FakeSpec[] = [
    { subject: "Viele Grüße aus Köln", body: "ΚΑΛΗΜΕΡΑ κόσμε" },
    { subject: "VIELE GRÜSSE", body: "plain ascii" },
    { subject: "Grusse ohne Umlaut" },
  ];
  assertEquals(await seqs(header("SUBJECT", "grüsse"), specs), [1, 2]);
  assertEquals(await seqs(header("SUBJECT", "GRÜßE"), specs), [1, 2]);
  assertEquals(await seqs(header("SUBJECT", "köln"), specs), [1]);
  assertEquals(await seqs({ kind: "BODY", value: "καλημερα" }, specs), [1]);
  assertEquals(await seqs({ kind: "BODY", value: "ASCII" }, specs), [2]);
});

Deno.test("searchMessages() BODY looks at the body only and TEXT at headers and body", async () => {
  const specs: FakeSpec[] = [
    { subject: "invoice", body: "nothing here" },
    { subject: "hello", body: "please find the INVOICE attached" },
  ];
  assertEquals(await seqs({ kind: "BODY", value: "invoice" }, specs), [2]);
  assertEquals(await seqs({ kind: "TEXT", value: "invoice" }, specs), [1, 2]);
  assertEquals(await seqs({ kind: "TEXT", value: "subject: hello" }, specs), [2]);
  assertEquals(await seqs({ kind: "BODY", value: "" }, specs), [1, 2]);
});

Deno.test("searchMessages() combines NOT, OR and AND at any depth", async () => {
  const specs: FakeSpec[] = [
    { flags: ["\\Seen"], subject: "alpha", size: 10 },
    { flags: ["\\Flagged"], subject: "beta", size: 20 },
    { flags: [], subject: "gamma", size: 30, body: "delta" },
    { flags: ["\\Seen", "\\Flagged"], subject: "alpha beta", size: 40 },
  ];
  const seen = flag("\\Seen");
  const flagged = flag("\\Flagged");
  assertEquals(await seqs({ kind: "AND", keys: [seen, flagged] }, specs), [4]);
  assertEquals(await seqs({ kind: "OR", a: seen, b: flagged }, specs), [1, 2, 4]);
  assertEquals(await seqs({ kind: "NOT", key: { kind: "OR", a: seen, b: flagged } }, specs), [3]);
  assertEquals(
    await seqs({
      kind: "OR",
      a: { kind: "AND", keys: [header("SUBJECT", "alpha"), { kind: "NOT", key: flagged }] },
      b: { kind: "OR", a: { kind: "BODY", value: "delta" }, b: { kind: "LARGER", size: 35 } },
    }, specs),
    [1, 3, 4],
  );
  assertEquals(
    await seqs({ kind: "NOT", key: { kind: "NOT", key: header("SUBJECT", "beta") } }, specs),
    [2, 4],
  );
  assertEquals(await seqs({ kind: "AND", keys: [] }, specs), [1, 2, 3, 4]);
  assertEquals(
    await seqs(
      { kind: "AND", keys: [{ kind: "ALL" }, { kind: "NOT", key: { kind: "ALL" } }] },
      specs,
    ),
    [],
  );
});

Deno.test("searchMessages() does not open a message that a cheap key already decides", async () => {
  const box = fakeMailbox([
    { flags: ["\\Seen"], subject: "x", body: "needle" },
    { flags: [], subject: "x", body: "needle" },
    { flags: [], subject: "y", body: "needle" },
  ]);
  const key: SearchKey = {
    kind: "AND",
    keys: [
      { kind: "BODY", value: "needle" },
      header("SUBJECT", "x"),
      flag("\\Seen", false),
    ],
  };
  const hits = await searchMessages(key, box, scopeFor(box));
  assertEquals(hits.map((m) => m.seq), [2]);
  assertEquals(box.map((m) => m.calls), [
    { info: 0, text: 0 }, // \Seen decided it
    { info: 1, text: 1 },
    { info: 1, text: 0 }, // the subject decided it
  ]);
});

Deno.test("searchMessages() OR stops at the first true branch without loading text", async () => {
  const box = fakeMailbox([{ subject: "hit", body: "x" }, { subject: "miss", body: "x" }]);
  const key: SearchKey = {
    kind: "OR",
    a: { kind: "TEXT", value: "x" },
    b: header("SUBJECT", "hit"),
  };
  assertEquals((await searchMessages(key, box, scopeFor(box))).map((m) => m.seq), [1, 2]);
  assertEquals(box.map((m) => m.calls.text), [0, 1]);
  // Only text keys left: info() is not needed at all.
  const body = fakeMailbox([{ body: "x" }]);
  await searchMessages({ kind: "BODY", value: "x" }, body, scopeFor(body));
  assertEquals(body[0].calls, { info: 0, text: 1 });
});

Deno.test("searchMessages() handles 100,000 messages with cheap keys quickly", async () => {
  const specs: FakeSpec[] = Array.from({ length: 100_000 }, (_, i) => ({
    flags: i % 3 === 0 ? ["\\Seen"] : [],
    size: i,
  }));
  const box = fakeMailbox(specs);
  const started = performance.now();
  const hits = await searchMessages(
    {
      kind: "AND",
      keys: [flag("\\Seen", false), { kind: "UID", set: range(50_001, "*") }, {
        kind: "NOT",
        key: { kind: "seq", set: { ranges: [{ from: 60_000, to: 70_000 }, { from: 3 }] } },
      }],
    },
    box,
    scopeFor(box),
  );
  const elapsed = performance.now() - started;
  strictEqual(hits.length, 26_666);
  strictEqual(box.every((m) => m.calls.info === 0), true);
  strictEqual(elapsed < 2000, true, `took ${elapsed} ms`);
});

Deno.test("formatSequenceSet() collapses runs", () => {
  strictEqual(formatSequenceSet([7, 1, 2, 3, 4, 5, 5]), "1:5,7");
  strictEqual(formatSequenceSet([]), "");
  strictEqual(formatSequenceSet([3, 4, 1, 2], false), "3:4,1:2");
});

Deno.test("formatEsearch() gives MIN, MAX, ALL and COUNT as asked", () => {
  const hits = [7, 1, 2, 3, 4, 5];
  strictEqual(formatEsearch(hits, ["MIN", "MAX", "ALL", "COUNT"]), "MIN 1 MAX 7 ALL 1:5,7 COUNT 6");
  strictEqual(formatEsearch(hits, []), "ALL 1:5,7");
  strictEqual(formatEsearch(hits, ["COUNT"]), "COUNT 6");
  strictEqual(formatEsearch([], ["MIN", "MAX", "ALL", "COUNT"]), "COUNT 0");
  strictEqual(formatEsearch([], ["ALL"]), "");
  strictEqual(formatEsearch(hits, ["SAVE"]), null);
  strictEqual(formatEsearch(hits, ["SAVE", "MIN"]), "MIN 1");
  strictEqual(formatEsearch(hits, ["ALL"], { modseq: 917n }), "ALL 1:5,7 MODSEQ 917");
  strictEqual(
    formatEsearch([9, 3, 4], ["MIN", "MAX", "ALL"], { sorted: true }),
    "MIN 9 MAX 4 ALL 9,3:4",
  );
});

Deno.test("numbersToSave() keeps only MIN and MAX when only they accompany SAVE", () => {
  assertEquals(numbersToSave([4, 2, 9], ["SAVE", "MIN"]), [2]);
  assertEquals(numbersToSave([4, 2, 9], ["SAVE", "MIN", "MAX"]), [2, 9]);
  assertEquals(numbersToSave([4, 2, 9], ["SAVE", "MIN", "COUNT"]), [4, 2, 9]);
  assertEquals(numbersToSave([4, 2, 9], ["SAVE"]), [4, 2, 9]);
  assertEquals(numbersToSave([], ["SAVE", "MAX"]), []);
});

Deno.test("searchMessages() keeps mailbox order when info() resolves out of order", async () => {
  const box = fakeMailbox(
    Array.from({ length: 40 }, (_, i) => ({ subject: i % 2 ? "odd" : "even" })),
  );
  const slow = box.map((m, i) => ({
    ...m,
    info: () =>
      new Promise<Awaited<ReturnType<typeof m.info>>>((resolve) =>
        setTimeout(() => resolve(m.info()), (40 - i) % 7)
      ),
  }));
  const hits = await searchMessages(header("SUBJECT", "odd"), slow, scopeFor(box));
  assertEquals(hits.map((m) => m.seq), Array.from({ length: 20 }, (_, i) => 2 * i + 2));
});

Deno.test("searchMessages() reads many texts through scanText in one pass, and the rest one by one", async () => {
  const specs: FakeSpec[] = Array.from({ length: 100 }, (_, i) => ({
    body: i % 10 === 3 ? "a zebra crossing" : "nothing here",
  }));
  const box = fakeMailbox(specs);
  for (const m of box) m.textKey = `blob${m.seq}`;
  let scans = 0;
  const scope = scopeFor(box, {
    scanText: async (keys, each) => {
      scans++;
      // Deliver every text but one (as if its stored text were missing), out of order.
      for (const m of [...box].reverse()) {
        if (m.seq === 14 || !keys.has(m.textKey!)) continue;
        each(m.textKey!, await m.text());
      }
    },
  });
  for (const m of box) m.calls.text = 0;
  const hits = await searchMessages({ kind: "BODY", value: "ZEBRA" }, box, scope);
  assertEquals(hits.map((m) => m.seq), [4, 14, 24, 34, 44, 54, 64, 74, 84, 94]);
  strictEqual(scans, 1);
  // The scan's own calls plus one per-message read for the text it did not deliver.
  strictEqual(box.find((m) => m.seq === 14)!.calls.text, 1);
});
