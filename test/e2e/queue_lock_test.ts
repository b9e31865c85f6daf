/**
 * One `hearth home` per data directory (DATA/hearth.lock), and `hearth queue`
 * alongside a running box: a second box exits at once with a sentence, a
 * SIGKILLed box leaves no lock behind, and a `hearth queue retry` in another
 * process makes the running box deliver the item within seconds.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { clientTimeoutMs, type HomeProcess, inbox, startHomeProcess } from "./harness.ts";
import { OutboundQueue } from "../../src/queue/queue.ts";
import { appendedMessage } from "./messages.ts";

const root = new URL("../../", import.meta.url).pathname;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the `hearth` command, bounded by clientTimeoutMs. */
async function hearth(args: string[]): Promise<Run> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", ...args],
    cwd: root,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(clientTimeoutMs),
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

/** A test that fails instead of hanging, with the box's log on failure. */
function boxTest(name: string, fn: (box: HomeProcess) => Promise<void>, ms = 90_000) {
  Deno.test({
    name,
    sanitizeOps: false,
    sanitizeResources: false,
    async fn() {
      const box = await startHomeProcess({ messages: [] });
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
      });
      try {
        await Promise.race([fn(box), timeout]);
      } catch (e) {
        throw new Error(`${(e as Error).message}\nhearth home log:\n${box.stderr()}`, { cause: e });
      } finally {
        clearTimeout(timer);
        await box.stop();
      }
    },
  });
}

boxTest(
  "a second hearth home on the same data directory exits at once; SIGKILL frees the lock",
  async (box) => {
    const second = await hearth([
      "home",
      "--data",
      box.dataDir,
      "--imap-port",
      "0",
      "--imaps-port",
      "0",
      "--mx-port",
      "0",
    ]);
    assertEquals(second.code, 1, `exit code (stderr: ${second.stderr})`);
    assertEquals(
      second.stderr,
      `hearth: another Hearth is already running on ${box.dataDir} (pid ${box.child.pid}); ` +
        "stop it first\n",
    );
    assertEquals(second.stdout, "");

    // The kernel drops the lock with the process: no stale lock after SIGKILL.
    const killed = await box.kill("SIGKILL");
    assert(!killed.success);
    await box.restart();
    const third = await hearth(["home", "--data", box.dataDir, "--imap-port", "0"]);
    assertEquals(third.code, 1, third.stderr);
    assert(third.stderr.includes(`(pid ${box.child.pid})`), third.stderr);
  },
);

boxTest("hearth queue retry in another process wakes the running box's queue", async (box) => {
  const list = await hearth(["queue", "--data", box.dataDir]);
  assertEquals(list.code, 0, list.stderr);
  assertEquals(list.stdout, "The outbound queue is empty.\n");

  // An item for the box's own account, not due for a day: only a retry makes it go now.
  const kv = await Deno.openKv(`${box.dataDir}/home.kv`);
  let id: string;
  try {
    const later = Date.now() + 24 * 3600_000;
    const queue = await OutboundQueue.open(kv, box.dataDir, { now: () => later });
    id = await queue.add(
      box.address,
      [box.address],
      new TextEncoder().encode(appendedMessage("Retried", "from the queue")),
    );
  } finally {
    kv.close();
  }
  const listed = await hearth(["queue", "list", "--format", "json", "--data", box.dataDir]);
  assertEquals(listed.code, 0, listed.stderr);
  const entries = JSON.parse(listed.stdout);
  assertEquals(entries.map((e: { id: string }) => e.id), [id]);
  assertEquals(entries[0].recipients[0].state, "pending");

  const retry = await hearth(["queue", "retry", id, "--data", box.dataDir]);
  assertEquals(retry.code, 0, retry.stderr);
  assertEquals(retry.stdout, `Queue item ${id} is due now.\n`);
  // Delivered into INBOX and gone from the queue well before the 30 s poll.
  const deadline = Date.now() + 10_000;
  let messages: Uint8Array[] = [];
  while (Date.now() < deadline) {
    messages = await inbox(box);
    if (messages.length) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assertEquals(messages.length, 1, "the retried item was delivered");
  assert(new TextDecoder().decode(messages[0]).includes("Subject: Retried"));
  const after = await hearth(["queue", "--data", box.dataDir]);
  assertEquals(after.stdout, "The outbound queue is empty.\n");

  const unknown = await hearth(["queue", "delete", id, "--data", box.dataDir]);
  assertEquals(unknown.code, 1);
  assertEquals(unknown.stderr, `hearth: no queue item ${id}; \`hearth queue\` lists them\n`);
});
