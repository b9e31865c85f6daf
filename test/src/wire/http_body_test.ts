/**
 * Request bodies of the HTTP APIs (src/wire/http_body.ts): read whole whether or
 * not the length is declared, 413 past the limit, 400 when the body does not
 * match its Content-Length.
 */
import { deepStrictEqual as assertEquals, rejects as assertRejects } from "node:assert/strict";
import { ProtocolError } from "../../../src/errors.ts";
import { readBody } from "../../../src/wire/http_body.ts";

const url = "http://127.0.0.1/x";
const bytes = (n: number) => Uint8Array.from({ length: n }, (_, i) => i & 0xff);

/** A body in several chunks, as a socket delivers it. */
function chunked(data: Uint8Array, size: number): ReadableStream<Uint8Array> {
  let off = 0;
  return new ReadableStream({
    pull(c) {
      if (off >= data.length) return c.close();
      c.enqueue(data.slice(off, off += size));
    },
  });
}

const status = (e: unknown) => e instanceof ProtocolError && e.http;

Deno.test("readBody: a declared length is read whole from its chunks", async () => {
  const data = bytes(200_000);
  const req = new Request(url, {
    method: "POST",
    body: chunked(data, 65_536),
    headers: { "content-length": String(data.length) },
  });
  assertEquals(await readBody(req, 1_000_000), data);
});

Deno.test("readBody: no declared length, and GET", async () => {
  const data = bytes(70_000);
  assertEquals(
    await readBody(new Request(url, { method: "POST", body: chunked(data, 999) }), 1e6),
    data,
  );
  assertEquals(await readBody(new Request(url), 10), null);
});

Deno.test("readBody: past the limit is 413, declared or not", async () => {
  const declared = new Request(url, {
    method: "POST",
    body: bytes(10),
    headers: { "content-length": "2000" },
  });
  await assertRejects(readBody(declared, 1000), (e) => status(e) === 413);
  const undeclared = new Request(url, { method: "POST", body: chunked(bytes(2000), 100) });
  await assertRejects(readBody(undeclared, 1000), (e) => status(e) === 413);
});

Deno.test("readBody: a body that does not match its Content-Length is refused", async () => {
  const short = new Request(url, {
    method: "POST",
    body: chunked(bytes(100), 30),
    headers: { "content-length": "150" },
  });
  await assertRejects(readBody(short, 1000), /shorter than its Content-Length/);
  const long = new Request(url, {
    method: "POST",
    body: chunked(bytes(100), 30),
    headers: { "content-length": "50" },
  });
  await assertRejects(readBody(long, 1000), /longer than its Content-Length/);
});
