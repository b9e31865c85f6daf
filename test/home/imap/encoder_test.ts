import { deepStrictEqual as assertEquals, strictEqual, throws } from "node:assert/strict";
import {
  concatChunks,
  continuationLine,
  encodeValue,
  isQuotable,
  ResponseWriter,
  statusLine,
} from "../../../home/imap/encoder.ts";
import { atom } from "../../../src/mime/imap_value.ts";

const dec = new TextDecoder();
const text = (b: Uint8Array) => dec.decode(b);

Deno.test("encodeValue() writes NIL, numbers, atoms and nested lists", () => {
  strictEqual(text(encodeValue(null)), "NIL");
  strictEqual(text(encodeValue(42)), "42");
  strictEqual(text(encodeValue(atom("\\Seen"))), "\\Seen");
  strictEqual(
    text(encodeValue([atom("FLAGS"), [atom("\\Seen"), atom("$Junk")], [], null])),
    "(FLAGS (\\Seen $Junk) () NIL)",
  );
  throws(() => encodeValue(-1), RangeError);
  throws(() => encodeValue(1.5), RangeError);
});

Deno.test("encodeValue() quotes strings and escapes backslash and double quote", () => {
  strictEqual(text(encodeValue("hello world")), '"hello world"');
  strictEqual(text(encodeValue('say "hi" \\o/')), '"say \\"hi\\" \\\\o/"');
  strictEqual(text(encodeValue("")), '""');
  strictEqual(text(encodeValue("tab\there")), '"tab\there"');
});

Deno.test("encodeValue() sends strings with CR, LF, NUL or 8-bit as literals of their UTF-8 bytes", () => {
  strictEqual(text(encodeValue("line1\r\nline2")), "{12}\r\nline1\r\nline2");
  strictEqual(text(encodeValue("Grüße")), "{7}\r\nGrüße");
  strictEqual(text(encodeValue("a\0b")), "{3}\r\na\0b");
  strictEqual(text(encodeValue(["x", "日本"])), '("x" {6}\r\n日本)');
  strictEqual(isQuotable("plain"), true);
  strictEqual(isQuotable("ü"), false);
});

Deno.test("encodeValue() always sends byte strings as literals, ~{n} with the binary option", () => {
  const bytes = new Uint8Array([0x61, 0x00, 0x62]);
  assertEquals(
    encodeValue(bytes),
    new Uint8Array([...new TextEncoder().encode("{3}\r\n"), 0x61, 0, 0x62]),
  );
  strictEqual(
    text(encodeValue([atom("BINARY[1]"), bytes], { binary: true })),
    "(BINARY[1] ~{3}\r\na\0b)",
  );
});

Deno.test("ResponseWriter writes untagged, tagged and continuation lines", () => {
  const w = new ResponseWriter();
  w.untagged("3 EXISTS");
  w.untagged("1 FETCH", [atom("UID"), 7, atom("FLAGS"), [atom("\\Seen")]]);
  w.tagged("a1", "OK", "FETCH completed");
  w.tagged("a2", "NO", "Message too big", "TOOBIG");
  w.status("*", "BYE", "Logging out");
  w.continuation();
  w.continuation("");
  strictEqual(
    text(concatChunks(w.take())),
    "* 3 EXISTS\r\n* 1 FETCH (UID 7 FLAGS (\\Seen))\r\na1 OK FETCH completed\r\n" +
      "a2 NO [TOOBIG] Message too big\r\n* BYE Logging out\r\n+ Ready for literal data\r\n+ \r\n",
  );
  strictEqual(w.byteLength, 0);
  assertEquals(w.take(), []);
});

Deno.test("ResponseWriter keeps response text on one line", () => {
  strictEqual(
    text(statusLine("a1", "BAD", "bad\r\ninjected OK", "X\nY")),
    "a1 BAD [X Y] bad injected OK\r\n",
  );
  strictEqual(text(continuationLine("go")), "+ go\r\n");
});

Deno.test("ResponseWriter passes large literals through without copying", () => {
  const body = new Uint8Array(1 << 20).fill(0x41);
  const w = new ResponseWriter();
  w.text("* 1 FETCH (BODY[] ").value(body).text(")").crlf();
  const chunks = w.take();
  strictEqual(chunks.some((c) => c === body), true);
  strictEqual(
    concatChunks(chunks).length,
    "* 1 FETCH (BODY[] {1048576}\r\n".length + body.length + 3,
  );
});

Deno.test("ResponseWriter writes UTF-8 text and long strings across chunk boundaries", () => {
  const w = new ResponseWriter(64);
  const long = "x".repeat(500);
  w.text("* OK ").text("Grüße 日本").crlf().value(long).text(" ").value("ü".repeat(100));
  const out = text(concatChunks(w.take()));
  strictEqual(out, `* OK Grüße 日本\r\n"${long}" {200}\r\n${"ü".repeat(100)}`);
});

Deno.test("ResponseWriter encodes 10,000 FETCH lines into few large chunks quickly", () => {
  const w = new ResponseWriter();
  const start = performance.now();
  for (let i = 1; i <= 10_000; i++) {
    w.untagged(`${i} FETCH`, [
      atom("UID"),
      i + 1000,
      atom("FLAGS"),
      [atom("\\Seen"), atom("$Forwarded")],
      atom("ENVELOPE"),
      ["Mon, 7 Feb 1994 21:52:25 -0800", "Subject number " + i, [[
        "Fred",
        null,
        "fred",
        "example.com",
      ]], null],
    ]);
  }
  const chunks = w.take();
  const ms = performance.now() - start;
  const total = chunks.reduce((n, c) => n + c.length, 0);
  strictEqual(total > 1_000_000, true);
  strictEqual(chunks.length <= Math.ceil(total / (64 * 1024)) + 1, true);
  strictEqual(ms < 2000, true, `took ${ms} ms`);
  strictEqual(
    text(chunks[0]).startsWith(
      '* 1 FETCH (UID 1001 FLAGS (\\Seen $Forwarded) ENVELOPE ("Mon, 7 Feb',
    ),
    true,
  );
});

Deno.test("ResponseWriter quotes long strings that do not fit one chunk", () => {
  const w = new ResponseWriter(64);
  w.value('a"b\\'.repeat(40));
  strictEqual(text(concatChunks(w.take())), `"${'a\\"b\\\\'.repeat(40)}"`);
});
