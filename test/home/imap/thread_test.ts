import { strictEqual } from "node:assert/strict";
import { formatThreads, threadMessages, type ThreadNode } from "../../../home/imap/thread.ts";
import { fakeMailbox, type FakeSpec } from "./fake_message.ts";

/** A message sent `minute` minutes after a fixed time. */
function at(minute: number, spec: FakeSpec = {}): FakeSpec {
  const date = new Date(Date.UTC(2024, 0, 1, 0, minute)).toUTCString().replace("GMT", "+0000");
  return { date, ...spec };
}

async function refs(specs: FakeSpec[], useUid = false): Promise<string> {
  return formatThreads(await threadMessages("REFERENCES", fakeMailbox(specs), useUid));
}

async function ordered(specs: FakeSpec[]): Promise<string> {
  return formatThreads(await threadMessages("ORDEREDSUBJECT", fakeMailbox(specs)));
}

const leaf = (n: number | null, ...children: ThreadNode[]): ThreadNode => ({ number: n, children });

Deno.test("formatThreads() writes lone children inline and siblings as lists (RFC 5256 §4)", () => {
  strictEqual(
    formatThreads([
      leaf(2),
      leaf(3, leaf(6, leaf(4, leaf(23)), leaf(44, leaf(7, leaf(96))))),
    ]),
    "(2)(3 6 (4 23)(44 7 96))",
  );
  strictEqual(formatThreads([leaf(null, leaf(3), leaf(5))]), "((3)(5))");
  strictEqual(formatThreads([leaf(1, leaf(2), leaf(3, leaf(4)))]), "(1 (2)(3 4))");
  strictEqual(formatThreads([]), "");
});

Deno.test("threadMessages() ORDEREDSUBJECT groups by base subject, earliest message as parent", async () => {
  const specs: FakeSpec[] = [
    at(30, { subject: "Re: lunch" }),
    at(10, { subject: "lunch" }),
    at(5, { subject: "budget" }),
    at(20, { subject: "RE: Lunch" }), // i;ascii-casemap: same base subject
    at(15, { subject: "Fwd: budget" }),
    at(1, { subject: "other" }),
    at(12, { subject: "[team] lunch" }),
  ];
  // Threads by the date of their first message; children in date order.
  strictEqual(await ordered(specs), "(6)(3 5)(2 (7)(4)(1))");
});

Deno.test("threadMessages() REFERENCES links replies under their parents and sorts by date", async () => {
  const specs: FakeSpec[] = [
    at(0, { messageId: "a", subject: "topic" }),
    at(10, { messageId: "b", subject: "Re: topic", references: ["a"] }),
    at(20, { messageId: "c", subject: "Re: topic", references: ["a", "b"] }),
    at(5, { messageId: "d", subject: "Re: topic", inReplyTo: "a" }), // In-Reply-To fallback
    at(1, { messageId: "e", subject: "unrelated" }),
  ];
  strictEqual(await refs(specs), "(1 (4)(2 3))(5)");
  strictEqual(await refs(specs, true), "(1 (4)(2 3))(5)");
});

Deno.test("threadMessages() REFERENCES reports UIDs when asked", async () => {
  const specs: FakeSpec[] = [
    at(0, { uid: 100, messageId: "a", subject: "x" }),
    at(1, { uid: 205, messageId: "b", subject: "y", references: ["a"] }),
  ];
  strictEqual(await refs(specs, true), "(100 205)");
  strictEqual(await refs(specs), "(1 2)");
});

Deno.test("threadMessages() REFERENCES keeps a missing root as a dummy only when it has siblings", async () => {
  // Two replies to a message we do not have: a dummy parent holds them.
  strictEqual(
    await refs([
      at(0, { messageId: "b", subject: "Re: q", references: ["gone"] }),
      at(1, { messageId: "c", subject: "Re: q2", references: ["gone"] }),
    ]),
    "((1)(2))",
  );
  // A lone reply to a missing message is promoted to the root.
  strictEqual(
    await refs([at(0, { messageId: "b", subject: "Re: q", references: ["gone"] })]),
    "(1)",
  );
  // A missing message in the middle of a chain disappears; its child moves up.
  strictEqual(
    await refs([
      at(0, { messageId: "a", subject: "s" }),
      at(1, { messageId: "c", subject: "Re: s", references: ["a", "gone", "gone2"] }),
      at(2, { messageId: "d", subject: "Re: s", references: ["a", "gone"] }),
    ]),
    "(1 (2)(3))",
  );
});

Deno.test("threadMessages() REFERENCES does not create loops", async () => {
  // Each claims to reply to the other: the first link wins, the second would loop.
  strictEqual(
    await refs([
      at(0, { messageId: "a", subject: "p", references: ["b"] }),
      at(1, { messageId: "b", subject: "q", references: ["a"] }),
    ]),
    "(2 1)",
  );
  // A message referencing itself, and a References field that repeats an id.
  strictEqual(
    await refs([
      at(0, { messageId: "a", subject: "p", references: ["a"] }),
      at(1, { messageId: "b", subject: "q", references: ["x", "y", "x", "a"] }),
    ]),
    "(1 2)",
  );
});

Deno.test("threadMessages() REFERENCES trusts a message's own References over a guessed parent", async () => {
  // c's References guess that b replied to x; b itself says it replied to a.
  strictEqual(
    await refs([
      at(0, { messageId: "a", subject: "one" }),
      at(1, { messageId: "c", subject: "three", references: ["x", "b"] }),
      at(2, { messageId: "b", subject: "two", references: ["a"] }),
    ]),
    "(1 3 2)",
  );
});

Deno.test("threadMessages() REFERENCES treats duplicate Message-IDs as distinct messages", async () => {
  strictEqual(
    await refs([
      at(0, { messageId: "a", subject: "first" }),
      at(1, { messageId: "a", subject: "second copy" }),
      at(2, { messageId: "r", subject: "Re: first", references: ["a"] }),
    ]),
    "(1 3)(2)",
  );
});

Deno.test("threadMessages() REFERENCES gathers roots with the same base subject", async () => {
  // A reply without References goes under the non-reply with the same subject.
  strictEqual(
    await refs([
      at(5, { messageId: "r", subject: "Re: Plans" }),
      at(0, { messageId: "o", subject: "plans" }),
    ]),
    "(2 1)",
  );
  // Two non-replies (or two replies) with the same subject share a new dummy.
  strictEqual(
    await refs([
      at(0, { messageId: "a", subject: "Plans" }),
      at(1, { messageId: "b", subject: "Plans" }),
      at(2, { messageId: "c", subject: "other" }),
    ]),
    "((1)(2))(3)",
  );
  strictEqual(
    await refs([
      at(0, { messageId: "a", subject: "Re: Plans" }),
      at(1, { messageId: "b", subject: "Fwd: Plans" }),
    ]),
    "((1)(2))",
  );
  // A root under a dummy (missing parent) with that subject absorbs the others.
  strictEqual(
    await refs([
      at(2, { messageId: "b", subject: "Re: Plans", references: ["gone"] }),
      at(3, { messageId: "c", subject: "Re: Plans", references: ["gone"] }),
      at(1, { messageId: "d", subject: "Plans" }),
      at(4, { messageId: "e", subject: "Re: plans" }),
    ]),
    "((3)(1)(2)(4))",
  );
  // Two dummies with the same subject merge their children.
  strictEqual(
    await refs([
      at(0, { messageId: "b", subject: "Re: X", references: ["gone1"] }),
      at(1, { messageId: "c", subject: "Re: X", references: ["gone1"] }),
      at(2, { messageId: "d", subject: "Re: X", references: ["gone2"] }),
      at(3, { messageId: "e", subject: "Re: X", references: ["gone2"] }),
    ]),
    "((1)(2)(3)(4))",
  );
  // Empty subjects are never gathered.
  strictEqual(
    await refs([at(0, { messageId: "a", subject: "" }), at(1, { messageId: "b", subject: "Re:" })]),
    "(1)(2)",
  );
});

Deno.test("threadMessages() REFERENCES uses the internal date when Date: is missing", async () => {
  strictEqual(
    await refs([
      { messageId: "a", subject: "late", internalDate: "2024-02-01T00:00:00Z" },
      { messageId: "b", subject: "early", internalDate: "2024-01-01T06:00:00Z" },
      at(0, { messageId: "c", subject: "earliest" }),
    ]),
    "(3)(2)(1)",
  );
});

Deno.test("threadMessages() REFERENCES copes with a 20,000-message chain", async () => {
  const specs: FakeSpec[] = Array.from({ length: 20_000 }, (_, i) => ({
    messageId: `m${i}`,
    subject: "Re: long",
    internalDate: i * 1000,
    references: i === 0 ? [] : [`m${i - 1}`],
  }));
  const text = formatThreads(await threadMessages("REFERENCES", fakeMailbox(specs)));
  strictEqual(text, `(${specs.map((_, i) => i + 1).join(" ")})`);
});
