import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { mimeLimits } from "../../../src/mime/mime_limits.ts";
import { countLines, type MimePart, parseMime } from "../../../src/mime/parse.ts";
import { fixture, message, text } from "./fixtures.ts";

function slice(raw: Uint8Array, start: number, end: number): string | null {
  return text(raw.subarray(start, end));
}

Deno.test("parseMime() locates header and body of a single-part message byte-exactly", () => {
  const raw = message("Subject: hi", "To: a@b.c", "", "hello", "");
  const root = parseMime(raw);
  strictEqual(slice(raw, root.headerStart, root.headerEnd), "Subject: hi\r\nTo: a@b.c\r\n\r\n");
  strictEqual(slice(raw, root.bodyStart, root.bodyEnd), "hello\r\n");
  deepStrictEqual([root.type, root.subtype, root.kind], ["text", "plain", "leaf"]);
});

Deno.test("parseMime() excludes preamble, epilogue and the CRLF before each boundary", async () => {
  const raw = await fixture("alternative.eml");
  const root = parseMime(raw);
  strictEqual(root.children.length, 2);
  const [plain, html] = root.children;
  strictEqual(slice(raw, plain.headerStart, plain.headerStart + 14), "Content-Type: ");
  strictEqual(slice(raw, html.bodyStart, html.bodyEnd), "<p>Grüße aus München!</p>");
  strictEqual(plain.encoding, "quoted-printable");
  strictEqual(plain.contentType?.params.get("charset"), "utf-8");
});

Deno.test("parseMime() decodes RFC 2231 continuations and charsets in parameters", async () => {
  const root = parseMime(await fixture("mixed_attachment.eml"));
  const attachment = root.children[1];
  strictEqual(attachment.disposition?.value, "attachment");
  strictEqual(attachment.disposition?.params.get("filename"), "€ report.bin");
  deepStrictEqual(attachment.disposition?.imapParams, [
    ["size", "12"],
    ["filename*", "utf-8''%E2%82%AC%20report.bin"],
  ]);
  strictEqual(attachment.id, "<part2@example.com>");
  strictEqual(attachment.description, "Quarterly report");
  strictEqual(attachment.md5, "Q2hlY2sgSW50ZWdyaXR5IQ==");
  strictEqual(attachment.location, "report.bin");
  deepStrictEqual(root.children[0].language, ["en", "de"]);
});

Deno.test("parseMime() gives the embedded message of a message/rfc822 part as its child", async () => {
  const raw = await fixture("nested_rfc822.eml");
  const forwarded = parseMime(raw).children[1];
  strictEqual(forwarded.kind, "message");
  const inner = forwarded.children[0];
  strictEqual(inner.headerStart, forwarded.bodyStart);
  strictEqual(inner.bodyEnd, forwarded.bodyEnd);
  strictEqual(inner.children.length, 2);
  strictEqual(slice(raw, inner.children[0].bodyStart, inner.children[0].bodyEnd), "Plain body.");
});

Deno.test("parseMime() defaults parts of a multipart/digest to message/rfc822", async () => {
  const root = parseMime(await fixture("digest.eml"));
  deepStrictEqual(root.children.map((c) => `${c.type}/${c.subtype}`), [
    "message/rfc822",
    "text/plain",
  ]);
});

Deno.test("parseMime() tolerates garbage after a boundary and a missing close-delimiter", async () => {
  const raw = await fixture("malformed_boundary.eml");
  const root = parseMime(raw);
  strictEqual(root.children.length, 3);
  const inner = root.children[1];
  strictEqual(inner.kind, "multipart");
  strictEqual(
    slice(raw, inner.children[0].bodyStart, inner.children[0].bodyEnd),
    "inner never closed",
  );
  const last = root.children[2];
  strictEqual(slice(raw, last.bodyStart, last.bodyEnd), "last part, no close delimiter\r\n");
});

Deno.test("parseMime() handles bare LF line endings", async () => {
  const raw = await fixture("bare_lf.eml");
  const part = parseMime(raw).children[0];
  strictEqual(slice(raw, part.bodyStart, part.bodyEnd), "line one\nline two");
});

Deno.test("parseMime() treats a message without a blank line as all header", () => {
  const raw = message("Subject: no body", "From: a@b.c");
  const root = parseMime(raw);
  strictEqual(root.headerEnd, raw.length);
  strictEqual(root.bodyStart, root.bodyEnd);
  strictEqual(root.fields.length, 2);
});

Deno.test("parseMime() stops nesting at mimeLimits.nestingDepth and keeps deeper parts opaque", () => {
  const depth = mimeLimits.nestingDepth + 20;
  const lines: string[] = [];
  for (let i = 0; i < depth; i++) {
    lines.push(`Content-Type: multipart/mixed; boundary=b${i}`, "", `--b${i}`);
  }
  lines.push("Content-Type: text/plain", "", "deep");
  const root = parseMime(message(...lines));
  let node: MimePart = root;
  let levels = 0;
  while (node.children.length > 0) {
    node = node.children[0];
    levels++;
  }
  strictEqual(levels, mimeLimits.nestingDepth);
  strictEqual(node.opaque, true);
});

Deno.test("parseMime() never throws on NUL octets, 8-bit headers or random bytes", async () => {
  const samples = [
    new Uint8Array([0, 0, 0x0a, 0x0d, 0x0a, 0]),
    new Uint8Array([0xff, 0xfe, 0x3a, 0x0a, 0x0a, 0x80]),
    message("Content-Type: multipart/mixed; boundary=", "", "--", "--"),
    message("Content-Type: message/rfc822"),
    new Uint8Array(0),
  ];
  const base = await fixture("nested_rfc822.eml");
  for (let cut = 0; cut < base.length; cut += 7) samples.push(base.subarray(0, cut));
  let seed = 42;
  for (let n = 0; n < 200; n++) {
    const bytes = base.slice();
    for (let k = 0; k < 20; k++) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      bytes[seed % bytes.length] = seed & 0xff;
    }
    samples.push(bytes);
  }
  for (const raw of samples) {
    const root = parseMime(raw);
    const check = (p: MimePart) => {
      if (!(p.headerStart <= p.headerEnd && p.bodyStart <= p.bodyEnd && p.bodyEnd <= raw.length)) {
        throw new Error(`bad offsets in ${text(raw)}`);
      }
      p.children.forEach(check);
    };
    check(root);
  }
});

Deno.test("parseMime() stops adding parts at mimeLimits.parts", () => {
  const lines = ["Content-Type: multipart/mixed; boundary=p", ""];
  for (let i = 0; i < mimeLimits.parts + 500; i++) lines.push("--p", "", `part ${i}`);
  lines.push("--p--");
  const root = parseMime(message(...lines));
  strictEqual(root.children.length, mimeLimits.parts - 1);
});

Deno.test("countLines() counts LF bytes at any offset and alignment, as a byte-by-byte count does", () => {
  // Bytes that differ from LF in one bit, and 0x0A with the high bit set, must not count.
  const alphabet = [0x0a, 0x0d, 0x8a, 0x0b, 0x08, 0x00, 0xff, 0x2e, 0x41];
  const buffer = new Uint8Array(300);
  let seed = 7;
  const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 16;
  for (let trial = 0; trial < 2_000; trial++) {
    for (let i = 0; i < buffer.length; i++) buffer[i] = alphabet[next() % alphabet.length];
    const offset = next() % 8;
    const raw = buffer.subarray(offset, offset + (next() % 280));
    const start = Math.min(raw.length, next() % 5);
    const end = Math.max(start, raw.length - (next() % 5));
    let expected = 0;
    for (let i = start; i < end; i++) if (raw[i] === 0x0a) expected++;
    strictEqual(countLines(raw, start, end), expected, `offset ${offset}, ${start}..${end}`);
  }
});
