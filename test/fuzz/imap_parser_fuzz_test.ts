// Property-based fuzzing of IMAP framing and parsing (issue 8): random and mutated commands,
// literals announced larger than their data, NUL, invalid UTF-8 and deep nesting. Whatever the
// bytes, the framer yields commands or rejects, chunking does not change what it yields, and the
// parser returns a command or throws a ProtocolError (BAD, or NO for a charset), in bounded time.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import fc from "fast-check";
import { CommandFramer, type FramerEvent } from "../../home/imap/framing.ts";
import { parseCommand } from "../../home/imap/parser.ts";
import { ProtocolError } from "../../src/errors.ts";
import { limits } from "../../src/limits.ts";
import { fuzzParams, showBytes, unshowBytes, withinTime } from "./budget.ts";

/** Client lines of the IMAP transcripts: real commands to mutate. */
const seeds: string[] = await (async () => {
  const dir = new URL("../fixtures/imap/", import.meta.url);
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (!e.isFile || !e.name.endsWith(".txt")) continue;
    const text = await Deno.readTextFile(new URL(e.name, dir));
    for (const m of text.matchAll(/^C\d?: ([a-z]\d+ [^\r\n]*)$/gm)) out.push(m[1]);
  }
  out.sort();
  return out;
})();

/** Commands with literals and nesting the transcripts use less. */
const extraSeeds = [
  "a1 LOGIN {3}\r\nbob {2+}\r\npw",
  'a1 APPEND INBOX (\\Seen) "01-Jan-2024 10:00:00 +0000" {5+}\r\nhello',
  "a1 APPEND INBOX ~{4+}\r\n\x00\x01\x02\x03",
  "a1 APPEND INBOX {3+}\r\nabc {3+}\r\ndef",
  "a1 SEARCH CHARSET UTF-8 SUBJECT {4+}\r\n\xc3\xa9t\xc3",
  "a1 SEARCH OR (FROM a NOT TO b) (SINCE 1-Feb-2024 LARGER 100) UID 1:*,5",
  "a1 UID FETCH 1:* (BODY.PEEK[1.2.HEADER.FIELDS.NOT (From To)]<0.100> BINARY[1]) (CHANGEDSINCE 5)",
  "a1 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))",
  'a1 LIST (SUBSCRIBED REMOTE) "" ("INBOX" "Sent*") RETURN (CHILDREN STATUS (MESSAGES))',
  "a1 STORE 1:3 +FLAGS.SILENT (\\Deleted $Junk)",
  "a1 SORT (REVERSE ARRIVAL SUBJECT) UTF-8 ALL",
  "a1 THREAD REFERENCES UTF-8 (OR SEEN NOT DRAFT)",
  "a1 AUTHENTICATE PLAIN AGJvYgBwdw==",
  'a1 RENAME "a\\"b" {3+}\r\nc/d',
];

/** Bytes of a string whose characters are all below 256. */
function raw(s: string): Uint8Array {
  return Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff);
}

/** Framer limits small enough that random input reaches them. */
const smallLimits = {
  lineBytes: 2048,
  literalBytes: 1024,
  appendLiteralBytes: 4096,
  commandBytes: 8192,
  appendCommandBytes: 16384,
  literalsPerCommand: 8,
};

/** Feeds `input` in chunks of `size` and collects the events and continuation requests. */
function frame(
  input: Uint8Array,
  size: number,
): { events: (string | FramerEvent)[]; left: number } {
  const events: (string | FramerEvent)[] = [];
  const framer = new CommandFramer({ onContinuation: () => events.push("+"), limits: smallLimits });
  for (let i = 0; i < input.length; i += size) {
    framer.push(input.subarray(i, i + size));
    for (let ev = framer.next(); ev; ev = framer.next()) events.push(ev);
  }
  return { events, left: framer.bufferedBytes };
}

/** Parses one framed command; returns the error status, or "OK". Anything but a ProtocolError fails. */
function parseFramed(ev: FramerEvent, utf8: boolean): string {
  if (ev.type !== "command") return ev.type;
  try {
    parseCommand(ev.frame, { utf8 });
    return "OK";
  } catch (e) {
    if (!(e instanceof ProtocolError)) {
      throw new Error(`parser threw ${(e as Error)?.name}: ${(e as Error)?.message}`);
    }
    assert(e.status === "BAD" || e.status === "NO", `status ${e.status}`);
    return e.status;
  }
}

/** The full check of one input: framing in two chunkings, then parsing, in bounded time. */
function checkInput(input: Uint8Array, chunk: number, utf8: boolean): void {
  withinTime(`framing and parsing ${showBytes(input, 120)}`, () => {
    const whole = frame(input, input.length || 1);
    const chunked = frame(input, chunk);
    // Chunk boundaries never change what the framer yields (RFC 9051 §2.2: a byte stream).
    assertEquals(chunked.events, whole.events);
    assertEquals(chunked.left, whole.left);
    for (const ev of whole.events) {
      if (typeof ev === "string") continue;
      if (ev.type === "reject") assert(ev.status === "BAD" || ev.status === "NO");
      parseFramed(ev, utf8);
    }
  });
}

const interestingByte = fc.constantFrom(
  0x00,
  0x0a,
  0x0d,
  0x20,
  0x22,
  0x28,
  0x29,
  0x2a,
  0x25,
  0x5b,
  0x5d,
  0x5c,
  0x7b,
  0x7d,
  0x2b,
  0x7e,
  0x80,
  0xc3,
  0xff,
  0xfe,
  0xed,
  0xa0,
);

/** A token of IMAP syntax, or a hostile fragment. */
const token: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    "FETCH",
    "UID",
    "SEARCH",
    "STORE",
    "APPEND",
    "SELECT",
    "LIST",
    "STATUS",
    "SORT",
    "THREAD",
    "BODY[",
    "BODY.PEEK[",
    "]",
    "HEADER.FIELDS",
    "(",
    ")",
    "((((",
    "))))",
    "NOT",
    "OR",
    "*",
    "1:*",
    "$",
    "CHARSET",
    "UTF-8",
    "NIL",
    '"',
    '"\\"',
    "\\Seen",
    "+FLAGS",
    "<0.10>",
    "~{3}",
    "{0}",
    "{5}",
    "{5+}",
    "{99999999999999999999}",
    "{4294967296+}",
    "\x00",
    "\xff\xfe",
    "\xc3",
    "\xed\xa0\x80",
    "RETURN",
    "(CHANGEDSINCE 1)",
    "MODSEQ",
    "QRESYNC",
    "INBOX",
    "&AGE-",
    "&",
    "-",
    " ",
    "  ",
  ),
  fc.string({ maxLength: 12 }),
  fc.nat({ max: 4_294_967_300 }).map(String),
  fc.string({ unit: "binary", maxLength: 8 }),
);

/** A command: tag, name and tokens, with literal announcements followed by (possibly short) data. */
const generatedCommand: fc.Arbitrary<Uint8Array> = fc.tuple(
  fc.constantFrom("a1", "A.2", "*", "", "+", "x\x00"),
  fc.array(
    fc.oneof(
      { weight: 6, arbitrary: token.map((t) => ({ t, lit: null as Uint8Array | null })) },
      {
        weight: 1,
        arbitrary: fc.tuple(
          fc.constantFrom("{", "~{"),
          fc.nat({ max: 40 }),
          fc.boolean(),
          fc.uint8Array({ maxLength: 40 }),
        ).map(([open, n, plus, data]) => ({ t: `${open}${n}${plus ? "+" : ""}}`, lit: data })),
      },
    ),
    { maxLength: 14 },
  ),
  fc.constantFrom("\r\n", "\n", "", "\r"),
).map(([tag, parts, end]) => {
  const out: number[] = [...raw(tag)];
  for (const p of parts) {
    out.push(0x20, ...raw(p.t));
    if (p.lit) out.push(0x0d, 0x0a, ...p.lit);
  }
  out.push(...raw(end));
  return Uint8Array.from(out);
});

/** A real command, mutated: byte flips, insertions, deletions, truncation, duplication. */
const mutatedSeed: fc.Arbitrary<Uint8Array> = fc.tuple(
  fc.constantFrom(...seeds, ...extraSeeds),
  fc.array(
    fc.tuple(
      fc.constantFrom("flip", "insert", "delete", "truncate", "repeat"),
      fc.nat(),
      fc.oneof(interestingByte, fc.integer({ min: 0, max: 255 })),
    ),
    { minLength: 1, maxLength: 6 },
  ),
).map(([seed, ops]) => {
  let b = [...raw(seed)];
  for (const [op, at0, byte] of ops) {
    const at = b.length === 0 ? 0 : at0 % b.length;
    if (op === "flip") b[at] = byte;
    else if (op === "insert") b.splice(at, 0, byte);
    else if (op === "delete") b.splice(at, 1);
    else if (op === "truncate") b = b.slice(0, at);
    else b.splice(at, 0, ...b.slice(at, at + 1 + (byte % 16)));
  }
  return Uint8Array.from([...b, 0x0d, 0x0a]);
});

Deno.test("fuzz: random bytes frame into commands or rejects, and parse or fail with BAD", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 600 }),
      fc.integer({ min: 1, max: 17 }),
      fc.boolean(),
      (bytes, chunk, utf8) =>
        checkInput(Uint8Array.from([...raw("a1 "), ...bytes, 0x0a]), chunk, utf8),
    ),
    fuzzParams(300),
  );
});

Deno.test("fuzz: generated commands with literals, NUL and invalid UTF-8 never break the parser", () => {
  fc.assert(
    fc.property(
      fc.array(generatedCommand, { minLength: 1, maxLength: 4 }),
      fc.integer({ min: 1, max: 17 }),
      fc.boolean(),
      (cmds, chunk, utf8) => {
        const input = Uint8Array.from(cmds.flatMap((c) => [...c]));
        checkInput(input, chunk, utf8);
      },
    ),
    fuzzParams(400),
  );
});

Deno.test("fuzz: mutated transcript commands parse or fail with BAD", () => {
  assert(seeds.length > 100, `only ${seeds.length} seed commands found`);
  fc.assert(
    fc.property(
      mutatedSeed,
      fc.integer({ min: 1, max: 17 }),
      fc.boolean(),
      (input, chunk, utf8) => checkInput(input, chunk, utf8),
    ),
    fuzzParams(600),
  );
});

Deno.test("fuzz: a literal announced larger than its data keeps the command open, memory bounded", () => {
  fc.assert(
    fc.property(
      fc.constantFrom("a1 LOGIN ", "a1 APPEND INBOX ", "a1 SEARCH TEXT ", "a1 SELECT "),
      fc.integer({ min: 1, max: 1_000_000_000 }),
      fc.boolean(),
      fc.uint8Array({ maxLength: 300 }),
      (head, size, plus, data) => {
        const announced = raw(`${head}{${size}${plus ? "+" : ""}}\r\n`);
        const input = Uint8Array.from([...announced, ...data]);
        const { events, left } = frame(input, 7);
        const limit = head.includes("APPEND")
          ? smallLimits.appendLiteralBytes
          : smallLimits.literalBytes;
        if (size > limit) {
          // Refused at once (TOOBIG), never buffered.
          const reject = events.find((e) => typeof e !== "string" && e.type === "reject");
          assert(reject, `no reject for {${size}}`);
        } else if (data.length < size) {
          // Still waiting for the literal: nothing is framed, and nothing is left unconsumed.
          assert(events.every((e) => e === "+"), JSON.stringify(events));
          assertEquals(left, 0);
        }
      },
    ),
    fuzzParams(300),
  );
});

/** Commands that nest: parenthesised lists, and search keys nested by NOT and OR. */
const nesting = [
  (n: number) => `a1 FETCH 1 ${"(".repeat(n)}FLAGS${")".repeat(n)}`,
  (n: number) => `a1 SEARCH ${"(".repeat(n)}ALL${")".repeat(n)}`,
  (n: number) => `a1 SEARCH ${"NOT ".repeat(n)}SEEN`,
  (n: number) => `a1 SEARCH ${"OR SEEN ".repeat(n)}DRAFT`,
  (n: number) => `a1 SEARCH ${"OR ".repeat(n)}${"SEEN ".repeat(n)}DRAFT`,
  (n: number) => `a1 STORE 1 FLAGS ${"(".repeat(n)}`,
  (n: number) => `a1 LIST "" ${"(".repeat(n)}`,
  (n: number) => `a1 APPEND INBOX ${"(".repeat(n)}\\Seen${")".repeat(n)} {1+}\r\nx`,
  (n: number) => `a1 SELECT INBOX ${"(QRESYNC ".repeat(n)}`,
  (n: number) => `a1 UID SORT ${"(".repeat(n)}DATE${")".repeat(n)} UTF-8 ALL`,
];

Deno.test("fuzz: nesting beyond the limit is BAD, never a stack overflow", () => {
  fc.assert(
    fc.property(
      fc.nat({ max: nesting.length - 1 }),
      fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 40, max: 20_000 })),
      (which, depth) => {
        const text = nesting[which](depth);
        const framer = new CommandFramer({ limits: { lineBytes: 1_000_000 } });
        framer.push(raw(text + "\r\n"));
        const ev = framer.next();
        assert(ev?.type === "command", text.slice(0, 80));
        const status = withinTime(text.slice(0, 60), () => parseFramed(ev, false));
        if (depth > limits.imapNestingDepth + 1) assertEquals(status, "BAD", text.slice(0, 80));
      },
    ),
    fuzzParams(150, 0.05),
  );
});

// Regression cases: inputs the fuzzer once broke, replayed exactly (test/fixtures/fuzz/).
Deno.test("fuzz regressions: recorded IMAP inputs frame and parse cleanly", async () => {
  const dir = new URL("../fixtures/fuzz/", import.meta.url);
  for await (const e of Deno.readDir(dir)) {
    if (!e.name.startsWith("imap_") || !e.name.endsWith(".txt")) continue;
    const lines = (await Deno.readTextFile(new URL(e.name, dir))).split("\n")
      .filter((l) => l !== "" && !l.startsWith("#"));
    for (const line of lines) {
      const input = unshowBytes(line);
      for (const utf8 of [false, true]) checkInput(input, 3, utf8);
    }
  }
});
