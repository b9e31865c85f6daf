// The LAN exchange route (home/phone_lan.ts) in-process, over a stand-in phone service: body
// bound, rate limits, the answer's framing, and that what the answer advanced is kept only once
// it was read whole.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { createPhoneLanApp } from "../../home/phone_lan.ts";
import type { LanExchange } from "../../home/phones.ts";
import { ProtocolError } from "../../src/errors.ts";
import { limits } from "../../src/limits.ts";
import { decodeEnvelopes, encodeEnvelopes, lanExchangePath } from "../../sync/lan.ts";

/** A phone service that answers every exchange with `answer`, refusing bodies starting 0xff. */
function standIn(answer: Uint8Array[]) {
  const calls = { opened: 0, delivered: 0, failed: 0 };
  const phones = {
    openLanExchange(body: Uint8Array): Promise<LanExchange> {
      if (body[4] === 0xff) {
        return Promise.reject(new ProtocolError("NO", "not paired", { http: 403 }));
      }
      calls.opened++;
      return Promise.resolve({
        device: "dev-1",
        run: () => Promise.resolve(answer),
        delivered: () => {
          calls.delivered++;
          return Promise.resolve();
        },
        failed: () => {
          calls.failed++;
        },
      });
    },
  };
  return { phones, calls };
}

const env = (ip: string) => ({ remoteAddr: { hostname: ip } });
const good = encodeEnvelopes([new Uint8Array([1, 2, 3])]);
const bad = encodeEnvelopes([new Uint8Array([0xff])]);

Deno.test("a LAN exchange answers the home's envelopes, kept once read whole", async () => {
  const answer = [new Uint8Array(70_000).fill(7), new Uint8Array([9])];
  const { phones, calls } = standIn(answer);
  const app = createPhoneLanApp({ phones });
  const res = await app.request(lanExchangePath, { method: "POST", body: good }, env("10.0.0.2"));
  assertEquals(res.status, 200);
  const back = decodeEnvelopes(new Uint8Array(await res.arrayBuffer()), 100_000);
  assertEquals(back, answer);
  assertEquals(calls, { opened: 1, delivered: 1, failed: 0 });
});

Deno.test("a LAN answer the phone does not read to the end undoes what it advanced", async () => {
  const { phones, calls } = standIn([new Uint8Array(10).fill(1), new Uint8Array(10).fill(2)]);
  const app = createPhoneLanApp({ phones });
  const res = await app.request(lanExchangePath, { method: "POST", body: good }, env("10.0.0.2"));
  const reader = res.body!.getReader();
  await reader.read();
  await reader.cancel();
  assertEquals(calls, { opened: 1, delivered: 0, failed: 1 });
});

Deno.test("a LAN exchange larger than limits.lanExchangeBytes is refused with 413", async () => {
  const { phones, calls } = standIn([]);
  const app = createPhoneLanApp({ phones });
  const chunk = new Uint8Array(1024 * 1024);
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(c) {
      if (sent > limits.lanExchangeBytes) return c.close();
      sent += chunk.length;
      c.enqueue(chunk);
    },
  });
  const res = await app.request(lanExchangePath, { method: "POST", body }, env("10.0.0.2"));
  assertEquals(res.status, 413);
  await res.body?.cancel();
  assertEquals(calls.opened, 0);
});

Deno.test("an address refused too often is turned away for a minute; others are not", async () => {
  let now = 1_000_000;
  const { phones, calls } = standIn([]);
  const app = createPhoneLanApp({ phones, now: () => now });
  const post = (body: Uint8Array<ArrayBuffer>, ip: string) =>
    app.request(lanExchangePath, { method: "POST", body }, env(ip));
  for (let i = 0; i < limits.lanRefusalsPerMinute; i++) {
    const res = await post(bad, "10.0.0.9");
    assertEquals(res.status, 403);
    await res.body?.cancel();
  }
  const blocked = await post(good, "10.0.0.9");
  assertEquals(blocked.status, 429);
  assert(blocked.headers.get("retry-after"));
  await blocked.body?.cancel();
  const other = await post(good, "10.0.0.3");
  assertEquals(other.status, 200);
  await other.arrayBuffer();
  now += 60_000;
  const later = await post(good, "10.0.0.9");
  assertEquals(later.status, 200);
  await later.arrayBuffer();
  assertEquals(calls.opened, 2);
});
