// Property-based fuzzing of the MIME parser (issue 8): real fixture messages, mutated. Every
// message yields a structure (analyzeMessage never throws), every part's byte range lies inside
// the message and inside its parent, and BODYSTRUCTURE's numbers agree with the sections a client
// would fetch, so a client that trusts the sizes never reads past a part.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import fc from "fast-check";
import { encodeValue } from "../../home/imap/encoder.ts";
import { analyzeMessage, binarySize, fetchBinary } from "../../src/mime/mod.ts";
import { sectionOfTree } from "../../src/mime/fetch_section.ts";
import type { Section } from "../../src/mime/section.ts";
import type { ImapValue } from "../../src/mime/imap_value.ts";
import { countLines, type MimePart, parseMime } from "../../src/mime/parse.ts";
import { fuzzParams, showBytes, unshowBytes, withinTime } from "./budget.ts";

const enc = new TextEncoder();

async function readEml(dir: URL): Promise<Uint8Array[]> {
  const out: [string, Uint8Array][] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && e.name.endsWith(".eml")) {
      out.push([e.name, await Deno.readFile(new URL(e.name, dir))]);
    }
  }
  return out.sort((a, b) => a[0].localeCompare(b[0])).map((x) => x[1]);
}

const fixtures = [
  ...await readEml(new URL("../fixtures/mime/", import.meta.url)),
  ...await readEml(new URL("../fixtures/imap/messages/", import.meta.url)),
];

/** Fragments that steer mutations into MIME structure: boundaries, headers, line ends. */
const fragments = [
  "\r\n",
  "\n",
  "\r",
  "\r\n\r\n",
  "--",
  "--b1\r\n",
  "--b1--\r\n",
  "\r\n--b1\r\n",
  "\x00",
  "\xff",
  "Content-Type: multipart/mixed; boundary=b1\r\n",
  'Content-Type: multipart/digest; boundary="b1"\r\n',
  "Content-Type: message/rfc822\r\n",
  'Content-Type: text/plain; charset="utf-8\r\n',
  "Content-Transfer-Encoding: base64\r\n",
  "Content-Transfer-Encoding: quoted-printable\r\n",
  "Content-Disposition: attachment; filename*0*=utf-8''a%FF; filename*1=b\r\n",
  "=?utf-8?B?w6k=?=",
  "=?x?Q?=FF?=",
  "=\r\n",
  "====",
  "\t",
  " ",
  ":",
  ";",
  '"',
  "(",
  ")",
].map((s) => Uint8Array.from(s, (c) => c.charCodeAt(0)));

const mutation = fc.tuple(
  fc.constantFrom("flip", "insert", "fragment", "delete", "duplicate", "truncate"),
  fc.nat(),
  fc.nat({ max: 400 }),
  fc.integer({ min: 0, max: 255 }),
  fc.nat({ max: fragments.length - 1 }),
);

/** A fixture message with a few mutations applied. */
const mutatedMessage: fc.Arbitrary<Uint8Array> = fc.tuple(
  fc.nat({ max: fixtures.length - 1 }),
  fc.array(mutation, { minLength: 1, maxLength: 8 }),
).map(([which, ops]) => {
  let b = fixtures[which];
  for (const [op, at0, len, byte, frag] of ops) {
    const at = b.length === 0 ? 0 : at0 % (b.length + 1);
    const before = b.subarray(0, at);
    if (op === "flip" && at < b.length) {
      b = b.slice();
      b[at] = byte;
    } else if (op === "insert") b = concat(before, Uint8Array.of(byte), b.subarray(at));
    else if (op === "fragment") b = concat(before, fragments[frag], b.subarray(at));
    else if (op === "delete") b = concat(before, b.subarray(at + len));
    else if (op === "duplicate") b = concat(b.subarray(0, at + len), b.subarray(at));
    else if (op === "truncate") b = b.slice(0, at);
  }
  return b;
});

/** Messages built from fragments alone: deep nesting, stray boundaries, no header end. */
const fragmentMessage: fc.Arbitrary<Uint8Array> = fc.array(
  fc.oneof(
    fc.nat({ max: fragments.length - 1 }).map((i) => fragments[i]),
    fc.uint8Array({ maxLength: 12 }),
  ),
  { maxLength: 60 },
).map((parts) => concat(...parts));

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Byte ranges: inside the message, in order, children inside their parent's body, siblings apart. */
function checkRanges(raw: Uint8Array, part: MimePart, lo: number, hi: number, path: string): void {
  const { headerStart, headerEnd, bodyStart, bodyEnd } = part;
  assert(
    lo <= headerStart && headerStart <= headerEnd && headerEnd === bodyStart &&
      bodyStart <= bodyEnd && bodyEnd <= hi && hi <= raw.length,
    `part ${
      path || "root"
    }: ${headerStart}/${headerEnd}/${bodyStart}/${bodyEnd} not within ${lo}..${hi}`,
  );
  let prevEnd = bodyStart;
  part.children.forEach((c, i) => {
    checkRanges(raw, c, bodyStart, bodyEnd, `${path}${path ? "." : ""}${i + 1}`);
    assert(c.headerStart >= prevEnd, `part ${path}.${i + 1} overlaps its previous sibling`);
    prevEnd = c.bodyEnd;
  });
}

const isList = (v: ImapValue): v is ImapValue[] => Array.isArray(v);

/**
 * The BODYSTRUCTURE size invariants (RFC 9051 §7.5.2, §6.4.5), for the part `bs` numbered `part`:
 * - a non-multipart part's body-fld-octets equals the length of BODY[part];
 * - body-fld-lines of text/* and message/rfc822 equals the line feeds in BODY[part];
 * - a message/rfc822 part's embedded structure is checked as a message whose parts are
 *   numbered below `part`;
 * - the sizes of a multipart's children add up to at most the multipart's BODY[part] length
 *   (the rest is boundaries, preamble and epilogue), as the children lie inside it.
 * Returns the size the part occupies in its parent's body.
 */
function checkSizes(
  raw: Uint8Array,
  root: MimePart,
  bs: ImapValue,
  part: number[],
  isMessage: boolean,
): number {
  const fetchSection = (_: Uint8Array, s: Section) => sectionOfTree(raw, root, s);
  assert(isList(bs), `BODYSTRUCTURE of ${part.join(".")} is not a list`);
  const name = part.join(".") || "root";
  if (isList(bs[0])) {
    // Multipart: children first, then the subtype. The top level's parts are 1, 2, …;
    // an embedded message's multipart parts are part.1, part.2, … (RFC 9051 §6.4.5).
    // A multipart without parts shows one empty text part (size 0): BODY[part.1] is empty too.
    const children = bs.slice(0, bs.findIndex((v) => !isList(v)));
    let sum = 0;
    children.forEach((c, i) => {
      sum += checkSizes(raw, root, c, [...part, i + 1], false);
    });
    const body = part.length === 0 || isMessage
      ? fetchSection(raw, { part, text: "TEXT" })
      : fetchSection(raw, { part });
    assert(sum <= body.length, `${name}: parts add up to ${sum} > multipart body ${body.length}`);
    return body.length;
  }
  const size = bs[6];
  assert(
    typeof size === "number" && Number.isSafeInteger(size) && size >= 0,
    `${name}: size ${size}`,
  );
  // A single-part message's body is part 1 (RFC 9051 §6.4.5).
  const number = part.length === 0 || isMessage ? [...part, 1] : part;
  const body = fetchSection(raw, { part: number });
  assertEquals(
    size,
    body.length,
    `${name}: size field ${size} but BODY[${number.join(".")}] is ${body.length}`,
  );
  const type = String(bs[0]).toLowerCase(), subtype = String(bs[1]).toLowerCase();
  if (
    type === "message" && (subtype === "rfc822" || subtype === "global") && bs.length >= 10 &&
    isList(bs[8])
  ) {
    assertEquals(bs[9], countLines(body, 0, body.length), `${name}: line count`);
    checkSizes(raw, root, bs[8], number, true);
  } else if (type === "text") {
    assertEquals(bs[7], countLines(body, 0, body.length), `${name}: line count`);
  }
  // BINARY.SIZE (RFC 3516 §4.3) is the length BINARY[] returns.
  const decoded = fetchBinary(raw, number);
  assertEquals(
    binarySize(raw, number),
    decoded === null ? null : decoded.length,
    `${name}: BINARY.SIZE`,
  );
  return size;
}

function checkMessage(raw: Uint8Array): void {
  withinTime(`analysing ${showBytes(raw, 200)}`, () => {
    const info = analyzeMessage(raw);
    assertEquals(info.size, raw.length);
    const root = parseMime(raw);
    checkRanges(raw, root, 0, raw.length, "");
    checkSizes(raw, root, info.bodyStructure, [], false);
    // The structure serialises for the wire, and BODY is BODYSTRUCTURE without extension data.
    encodeValue(info.bodyStructure);
    encodeValue(info.body);
    encodeValue(info.envelope);
  });
}

Deno.test("fuzz: the MIME fixtures themselves satisfy the structure properties", () => {
  assert(fixtures.length >= 10, `${fixtures.length} fixtures`);
  for (const raw of fixtures) checkMessage(raw);
});

Deno.test("fuzz: mutated real messages yield a structure whose sizes add up", () => {
  fc.assert(fc.property(mutatedMessage, checkMessage), fuzzParams(250, 0.5));
});

Deno.test("fuzz: messages made of MIME fragments yield a structure whose sizes add up", () => {
  fc.assert(fc.property(fragmentMessage, checkMessage), fuzzParams(250, 0.5));
});

Deno.test("fuzz: deeply nested multiparts stop at the nesting limit", () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 400 }), fc.boolean(), (depth, asMessage) => {
      const parts: string[] = [];
      for (let i = 0; i < depth; i++) {
        parts.push(
          asMessage && i % 2 === 1
            ? "Content-Type: message/rfc822\r\n\r\n"
            : `Content-Type: multipart/mixed; boundary=b${i}\r\n\r\n--b${i}\r\n`,
        );
      }
      checkMessage(enc.encode(parts.join("") + "\r\nleaf\r\n"));
    }),
    fuzzParams(40, 0.01),
  );
});

// Regression cases: messages the fuzzer once broke, replayed exactly (test/fixtures/fuzz/).
Deno.test("fuzz regressions: recorded MIME inputs satisfy the structure properties", async () => {
  const dir = new URL("../fixtures/fuzz/", import.meta.url);
  for await (const e of Deno.readDir(dir)) {
    if (!e.name.startsWith("mime_")) continue;
    const bytes = await Deno.readFile(new URL(e.name, dir));
    checkMessage(
      e.name.endsWith(".txt") ? unshowBytes(new TextDecoder().decode(bytes).trimEnd()) : bytes,
    );
  }
});
