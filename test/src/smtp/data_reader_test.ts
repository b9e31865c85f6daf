// DataReader: the end of DATA and the transparency dots, whatever the chunking.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { DataReader } from "../../../src/smtp/data_reader.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Feeds `wire` in chunks of `size`; returns the message and what followed the final dot. */
function read(wire: string, size: number, limit = 1 << 20) {
  const bytes = enc.encode(wire);
  const reader = new DataReader(limit);
  for (let off = 0; off < bytes.length; off += size) {
    const chunk = bytes.subarray(off, Math.min(off + size, bytes.length));
    const used = reader.feed(chunk);
    if (reader.done) {
      const rest = dec.decode(bytes.subarray(off + used));
      return { message: dec.decode(reader.message()), rest, tooLarge: reader.tooLarge };
    }
    assertEquals(used, chunk.length, "a chunk before the end is taken whole");
  }
  return null;
}

// Every split of the input, from one byte at a time to all at once.
function everyChunking(wire: string, expect: { message: string; rest: string } | null) {
  for (let size = 1; size <= wire.length; size++) {
    const got = read(wire, size);
    assertEquals(got && { message: got.message, rest: got.rest }, expect, `chunks of ${size}`);
  }
}

Deno.test("DataReader ends at CRLF.CRLF and hands back what follows", () => {
  everyChunking("Subject: a\r\n\r\nbody\r\n.\r\nQUIT\r\n", {
    message: "Subject: a\r\n\r\nbody\r\n",
    rest: "QUIT\r\n",
  });
});

Deno.test("DataReader takes an empty message (the dot straight after DATA)", () => {
  everyChunking(".\r\nNOOP\r\n", { message: "", rest: "NOOP\r\n" });
});

Deno.test("DataReader removes the transparency dot of each line (RFC 5321 §4.5.2)", () => {
  everyChunking("..\r\n...x\r\na.b\r\n.y\r\n.\r\n", {
    message: ".\r\n..x\r\na.b\r\ny\r\n",
    rest: "",
  });
});

Deno.test("DataReader does not end at a dot between bare line endings (SMTP smuggling)", () => {
  for (const end of ["\n.\n", "\n.\r\n", "\r.\r", "\r\n.\r", "\r.\r\n"]) {
    const wire = `a${end}MAIL FROM:<x@y>\r\n.\r\n`;
    const got = read(wire, 1)!;
    assert(got, JSON.stringify(end));
    assertEquals(got.rest, "", JSON.stringify(end));
    assert(got.message.includes("MAIL FROM:<x@y>\r\n"), JSON.stringify(end));
    for (let size = 2; size <= wire.length; size++) {
      assertEquals(read(wire, size)!.message, got.message, `${JSON.stringify(end)} in ${size}`);
    }
  }
});

Deno.test("DataReader waits for more when the final dot has not come", () => {
  everyChunking("text\r\n.", null);
  everyChunking("text\r\n.\r", null);
  everyChunking("text\r\n", null);
});

Deno.test("DataReader counts past the limit but keeps nothing beyond it", () => {
  const got = read("x".repeat(100) + "\r\n.\r\n", 7, 50)!;
  assert(got.tooLarge);
  const fits = read("x".repeat(48) + "\r\n.\r\n", 7, 50)!;
  assertEquals([fits.tooLarge, fits.message.length], [false, 50]);
});
