import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { decodeSearchText, PendingSearchTexts } from "../../../home/store/search_text.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const mail = (n: number, body = "hello") => enc(`Subject: message ${n}\r\n\r\n${body} ${n}\r\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A queue whose "encryption" is the identity, counting what it was asked. */
function queue(opts: { quietMs?: number; maxRawBytes?: number }) {
  const made: string[] = [];
  let ready = 0;
  const texts = new PendingSearchTexts(
    (blob, plain) => {
      made.push(blob);
      return Promise.resolve(plain);
    },
    () => ready++,
    opts,
  );
  return { texts, made, ready: () => ready };
}

Deno.test("PendingSearchTexts makes texts only once deliveries pause, answering from memory meanwhile", async () => {
  const { texts, made } = queue({ quietMs: 80 });
  for (let i = 0; i < 5; i++) {
    texts.add(`b${i}`, mail(i));
    await sleep(30); // a steady stream, each add inside the quiet period of the last
  }
  assertEquals(made, []);
  assertEquals(texts.take(Infinity), []);
  // Searchable already, from the message held in memory.
  assert(decodeSearchText(texts.plain("b3")!).headers.includes("message 3"));
  const until = Date.now() + 5_000;
  while (made.length < 5 && Date.now() < until) await sleep(10);
  assertEquals(made, ["b0", "b1", "b2", "b3", "b4"]);
  await sleep(0);
  const taken = texts.take(Infinity).map(([blob]) => blob);
  assertEquals(taken, ["b0", "b1", "b2", "b3", "b4"]);
  assert(!texts.ready);
});

Deno.test("PendingSearchTexts makes the oldest at once when the messages held pass the memory bound", async () => {
  const body = "x".repeat(1_000);
  const { texts, made } = queue({ quietMs: 60_000, maxRawBytes: 10_000 });
  for (let i = 0; i < 12; i++) texts.add(`b${i}`, mail(i, body));
  await sleep(20);
  // Past 10,000 bytes the oldest are made until the rest fit under the bound again.
  assert(made.length >= 2 && made.length < 12, `made ${made.length}`);
  assertEquals(made, made.map((_, i) => `b${i}`));
  // Closing makes the rest without waiting for the quiet moment.
  const all = await texts.drain();
  assertEquals(all.length, 12);
});

Deno.test("PendingSearchTexts forgets an expunged message before its text is made", async () => {
  const { texts, made } = queue({ quietMs: 20 });
  texts.add("gone", mail(1));
  texts.add("kept", mail(2));
  texts.forget("gone");
  assertEquals(texts.plain("gone"), undefined);
  const all = await texts.drain();
  assertEquals(all.map(([blob]) => blob), ["kept"]);
  assertEquals(made, ["kept"]);
});
