import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { decodeRelayAnswer, encodeRelayAnswer } from "../../../src/wire/relay_answer.ts";

Deno.test("a binary relay answer reads back as written, raw bytes and all", () => {
  const answer = {
    items: [
      { id: "a1", at: 5, envelope: new Uint8Array([1, 2, 3]) },
      { id: "a2", at: 6, envelope: new Uint8Array(70_000).fill(7) },
    ],
    more: true,
    mail: [
      {
        id: "m1",
        account: "acc",
        size: 10,
        arrived: 1,
        sealedSize: 2,
        sealed: new Uint8Array([9, 9]),
      },
      { id: "m2", account: "acc", size: 20_000_000, arrived: 2, sealedSize: 20_000_300 },
    ],
  };
  const body = encodeRelayAnswer(answer);
  assertEquals(decodeRelayAnswer(body), answer);
  // The bytes travel as they are (base64 in JSON would add a third).
  assert(body.length < 70_000 + 5 + 400, `${body.length} bytes`);
});

Deno.test("a damaged binary relay answer is refused with RangeError", () => {
  const body = encodeRelayAnswer({
    items: [{ id: "a1", envelope: new Uint8Array([1, 2, 3]) }],
    more: false,
  });
  throws(() => decodeRelayAnswer(body.subarray(0, body.length - 1)), RangeError);
  throws(() => decodeRelayAnswer(new Uint8Array([...body, 0])), RangeError);
  throws(() => decodeRelayAnswer(new Uint8Array([0, 0, 0, 9, 1])), RangeError);
  throws(() => decodeRelayAnswer(new Uint8Array([0, 0, 0, 2, 0x7b, 0x7d])), RangeError);
});
