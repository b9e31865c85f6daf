import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { longPoll, Wakeups } from "../../edge/long_poll.ts";

/** A mailbox whose reads come from `box`, polled under key "m". */
function poll(box: string[], wakeups: Wakeups, waitSeconds?: string, closing = () => false) {
  let reads = 0;
  const answer = longPoll({
    waitSeconds,
    now: Date.now,
    closing,
    read: () => {
      reads++;
      return Promise.resolve({ items: [...box] });
    },
    wait: (ms) => wakeups.wait("m", ms),
  });
  return { answer, reads: () => reads };
}

Deno.test("longPoll() answers at once when items wait, and without ?wait= when none do", async () => {
  const wakeups = new Wakeups();
  const full = poll(["a"], wakeups, "30");
  assertEquals(await full.answer, { items: ["a"] });
  assertEquals(full.reads(), 1);
  const empty = poll([], wakeups, undefined);
  assertEquals(await empty.answer, { items: [] });
  assertEquals(empty.reads(), 1);
  assertEquals(await poll([], wakeups, "soon").answer, { items: [] });
});

Deno.test("longPoll() answers when its key is woken and a re-read finds items", async () => {
  const wakeups = new Wakeups();
  const box: string[] = [];
  const started = Date.now();
  const p = poll(box, wakeups, "30");
  await new Promise((r) => setTimeout(r, 20));
  box.push("new");
  wakeups.wake("other");
  wakeups.wake("m");
  assertEquals(await p.answer, { items: ["new"] });
  assert(Date.now() - started < 400, "woken before the recheck interval");
  assertEquals(p.reads(), 2);
});

Deno.test("longPoll() answers empty at the deadline, re-reading meanwhile", async () => {
  const started = Date.now();
  const p = poll([], new Wakeups(), "1.2");
  assertEquals(await p.answer, { items: [] });
  assert(Date.now() - started >= 1200);
  assert(p.reads() >= 3, "re-read every edgeLongPollRecheckMs");
});

Deno.test("longPoll() answers at once when the edge closes, and wakeAll() ends every wait", async () => {
  const wakeups = new Wakeups();
  let closing = false;
  const started = Date.now();
  const p = poll([], wakeups, "30", () => closing);
  await new Promise((r) => setTimeout(r, 20));
  closing = true;
  wakeups.wakeAll();
  assertEquals(await p.answer, { items: [] });
  assert(Date.now() - started < 400);
});
