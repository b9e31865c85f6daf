import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import { decodeMessage, encodeMessage, type SyncMessage } from "../../sync/messages.ts";

Deno.test("the mail messages of a phone exchange round-trip", () => {
  const cases: SyncMessage[] = [
    { kind: "summaries", batch: new Uint8Array([31, 139, 8]) },
    { kind: "request", blobs: ["ab".repeat(16)], summaries: ["cd".repeat(16), "ef".repeat(16)] },
    { kind: "blob", blob: "ab".repeat(16), sealed: new Uint8Array([1, 2, 3]) },
    { kind: "blob", blob: "ab".repeat(16), sealed: new Uint8Array() },
    {
      kind: "append",
      use: "\\Sent",
      flags: ["\\Seen"],
      date: 1_700_000_000_000,
      sealed: new Uint8Array(70_000).fill(7),
    },
  ];
  for (const m of cases) assertEquals(decodeMessage(encodeMessage(m)), m);
});

Deno.test("decodeMessage() refuses malformed mail messages with RangeError", () => {
  throws(() => decodeMessage(new Uint8Array([7, 40, 1])), RangeError);
  throws(() => decodeMessage(new Uint8Array([8, 0])), RangeError);
  const bad = new TextEncoder().encode('{"blobs":[1]}');
  throws(() => decodeMessage(new Uint8Array([6, ...bad])), RangeError);
  const head = new TextEncoder().encode('{"use":"\\\\Sent","flags":"x","date":1}');
  throws(() => decodeMessage(new Uint8Array([8, 0, head.length, ...head])), RangeError);
});
