/**
 * `hearth queue` against a data directory whose queue holds items: the text
 * and JSON lists, retry, delete, and the sentences of its errors.
 */
import {
  deepStrictEqual as assertEquals,
  ok as assert,
  rejects as assertRejects,
} from "node:assert/strict";
import { type HearthConfig, loadConfig, saveConfig } from "../../../src/config.ts";
import { UsageError } from "../../../src/errors.ts";
import { OutboundQueue } from "../../../src/queue/queue.ts";
import { formatDuration, type QueueListEntry, runQueueCommand } from "../../../home/queue/cli.ts";

const t0 = Date.UTC(2030, 0, 2, 3, 4, 5);
const hour = 3600_000;
const message = new TextEncoder().encode("Subject: queued\r\n\r\nHello.\r\n");

interface Setup {
  config: HearthConfig;
  /** Ids of the two items: `greylisted` (a pending and a delivered recipient) and `fresh`. */
  greylisted: string;
  fresh: string;
  /** Runs `hearth queue` at t0 + 2 h and returns what it printed. */
  run(cmd: Parameters<typeof runQueueCommand>[1]): Promise<string>;
  /** Opens the queue (another KV handle, as another process would). */
  open(): Promise<{ queue: OutboundQueue; kv: Deno.Kv }>;
  cleanup(): Promise<void>;
}

async function setUp(): Promise<Setup> {
  const dir = await Deno.makeTempDir({ prefix: "hearth-queue-cli-" });
  const config = await loadConfig(dir);
  await saveConfig(config);
  let now = t0;
  const open = async () => {
    const kv = await Deno.openKv(`${dir}/home.kv`);
    return { kv, queue: await OutboundQueue.open(kv, dir, { now: () => now }) };
  };
  const { kv, queue } = await open();
  let greylisted: string, fresh: string;
  try {
    greylisted = await queue.add("me@hearth.localhost", ["a@x.test", "b@y.test"], message);
    const item = (await queue.get(greylisted))!;
    item.attempts = 3;
    item.nextAttempt = t0 + 3 * hour;
    item.envelope.recipients[0].reason = "451 4.7.1 greylisted, try again later";
    item.envelope.recipients[1].state = "delivered";
    item.envelope.recipients[1].reason = "250 2.0.0 queued as 42";
    await queue.update(item);
    now = t0 + hour;
    fresh = await queue.add("me@hearth.localhost", ["c@z.test"], message);
  } finally {
    kv.close();
  }
  return {
    config,
    greylisted,
    fresh,
    async run(cmd) {
      const out: string[] = [];
      await runQueueCommand(config, cmd, { print: (t) => out.push(t), now: () => t0 + 2 * hour });
      return out.join("\n");
    },
    open,
    cleanup: () => Deno.remove(dir, { recursive: true }),
  };
}

async function withSetup(fn: (s: Setup) => Promise<void>) {
  const s = await setUp();
  try {
    await fn(s);
  } finally {
    await s.cleanup();
  }
}

Deno.test("queue list shows each item's age, size, attempts, next attempt and recipients", () =>
  withSetup(async (s) => {
    const text = await s.run({});
    assertEquals(await s.run({ action: "list" }), text);
    const lines = text.split("\n");
    assertEquals(lines[0], "2 items in the outbound queue:");
    // Oldest first.
    const first = lines.findIndex((l) => l.startsWith(s.greylisted));
    const second = lines.findIndex((l) => l.startsWith(s.fresh));
    assert(first > 0 && second > first, text);
    assertEquals(
      lines[first],
      `${s.greylisted}  age 2h, ${message.length} B, 3 attempts, ` +
        `next attempt ${new Date(t0 + 3 * hour).toISOString()} (in 1h)`,
    );
    assertEquals(lines[first + 1], "  from <me@hearth.localhost>");
    assertEquals(lines[first + 2], "  pending   <a@x.test>  451 4.7.1 greylisted, try again later");
    assertEquals(lines[first + 3], "  delivered <b@y.test>  250 2.0.0 queued as 42");
    assertEquals(lines[second], `${s.fresh}  age 1h, ${message.length} B, 0 attempts, due now`);
    assertEquals(lines[second + 2], "  pending   <c@z.test>");
  }));

Deno.test("queue list --format json gives machine-readable items", () =>
  withSetup(async (s) => {
    const entries: QueueListEntry[] = JSON.parse(await s.run({ format: "json" }));
    assertEquals(entries.map((e) => e.id), [s.greylisted, s.fresh]);
    assertEquals(entries[0], {
      id: s.greylisted,
      from: "me@hearth.localhost",
      created: new Date(t0).toISOString(),
      ageSeconds: 7200,
      size: message.length,
      attempts: 3,
      nextAttempt: new Date(t0 + 3 * hour).toISOString(),
      recipients: [
        {
          address: "a@x.test",
          state: "pending",
          reason: "451 4.7.1 greylisted, try again later",
          status: null,
        },
        { address: "b@y.test", state: "delivered", reason: "250 2.0.0 queued as 42", status: null },
      ],
    });
  }));

Deno.test("queue list of an empty queue says so", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hearth-queue-cli-" });
  try {
    const config = await loadConfig(dir);
    await saveConfig(config);
    const out: string[] = [];
    await runQueueCommand(config, {}, { print: (t) => out.push(t) });
    assertEquals(out, ["The outbound queue is empty."]);
    out.length = 0;
    await runQueueCommand(config, { format: "json" }, { print: (t) => out.push(t) });
    assertEquals(JSON.parse(out[0]), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("queue retry makes one item, or all with --all, due now", () =>
  withSetup(async (s) => {
    assertEquals(
      await s.run({ action: "retry", id: s.greylisted }),
      `Queue item ${s.greylisted} is due now.`,
    );
    let { kv, queue } = await s.open();
    try {
      assertEquals((await queue.get(s.greylisted))!.nextAttempt, t0 + 2 * hour);
      // Recipient states survive a retry.
      assertEquals((await queue.get(s.greylisted))!.envelope.recipients[1].state, "delivered");
      const later = (await queue.get(s.fresh))!;
      await queue.update({ ...later, nextAttempt: t0 + 9 * hour });
    } finally {
      kv.close();
    }
    assertEquals(await s.run({ action: "retry", all: true }), "2 items are due now.");
    ({ kv, queue } = await s.open());
    try {
      assertEquals((await queue.get(s.fresh))!.nextAttempt, t0 + 2 * hour);
    } finally {
      kv.close();
    }
  }));

Deno.test("queue delete removes the item and its message", () =>
  withSetup(async (s) => {
    assertEquals(
      await s.run({ action: "delete", id: s.fresh }),
      `Deleted queue item ${s.fresh}; no bounce was sent.`,
    );
    const { kv, queue } = await s.open();
    try {
      assertEquals((await queue.list()).map((i) => i.id), [s.greylisted]);
      const chunks = await Array.fromAsync(kv.list({ prefix: ["queue", "chunk", s.fresh] }));
      assertEquals(chunks.length, 0);
    } finally {
      kv.close();
    }
  }));

Deno.test("queue retry and delete of an unknown id fail with a sentence naming it", () =>
  withSetup(async (s) => {
    for (const action of ["retry", "delete"]) {
      await assertRejects(s.run({ action, id: "no-such-id" }), (e: Error) => {
        // Not a UsageError: main.ts exits 1 for it, and 2 for a bad command line.
        assert(!(e instanceof UsageError));
        assertEquals(e.message, "no queue item no-such-id; `hearth queue` lists them");
        return true;
      });
    }
  }));

Deno.test("queue command lines that make no sense are usage errors", () =>
  withSetup(async (s) => {
    const cases: [Parameters<typeof runQueueCommand>[1], RegExp][] = [
      [{ format: "xml" }, /unknown --format "xml"; use text or json/],
      [{ action: "retry" }, /usage: hearth queue retry ID \| --all/],
      [{ action: "retry", id: s.fresh, all: true }, /usage: hearth queue retry ID \| --all/],
      [{ action: "delete" }, /usage: hearth queue delete ID/],
      [{ action: "flush" }, /unknown queue command "flush"/],
    ];
    for (const [cmd, pattern] of cases) {
      await assertRejects(s.run(cmd), (e: Error) =>
        e instanceof UsageError && pattern.test(e.message));
    }
  }));

Deno.test("queue outside a data directory says to run hearth init", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hearth-queue-cli-" });
  try {
    await assertRejects(
      runQueueCommand(await loadConfig(dir), {}, { print: () => {} }),
      (e: Error) => e instanceof UsageError && /run "hearth init" first/.test(e.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pollRetries() wakes a runner when another KV handle retries an item", () =>
  withSetup(async (s) => {
    const box = await s.open();
    const cli = await s.open();
    let woken = 0;
    const stop = box.queue.pollRetries(() => woken++, 50);
    try {
      await new Promise((r) => setTimeout(r, 150)); // the first read sets the baseline
      assertEquals(woken, 0);
      assert(await cli.queue.retryNow(s.fresh));
      const deadline = Date.now() + 5000;
      while (woken === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assertEquals(woken, 1);
    } finally {
      await stop();
      box.kv.close();
      cli.kv.close();
    }
  }));

Deno.test("formatDuration() shows the two largest units", () => {
  assertEquals(formatDuration(0), "0s");
  assertEquals(formatDuration(59_999), "59s");
  assertEquals(formatDuration(61_000), "1m1s");
  assertEquals(formatDuration(3600_000), "1h");
  assertEquals(formatDuration(3660_000), "1h1m");
  assertEquals(formatDuration(90061_000), "1d1h");
});
