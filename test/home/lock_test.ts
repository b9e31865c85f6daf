/**
 * The data-directory lock (home/lock.ts) and its use by startHome.
 */
import {
  deepStrictEqual as assertEquals,
  ok as assert,
  rejects as assertRejects,
} from "node:assert/strict";
import { DataDirLockedError, lockDataDir } from "../../home/lock.ts";
import { initDataDir, startHome } from "../../home/box.ts";
import { loadConfig } from "../../src/config.ts";
import { UsageError } from "../../src/errors.ts";

Deno.test("lockDataDir() refuses a second holder at once, naming the first one's pid", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hearth-lock-" });
  try {
    const lock = await lockDataDir(dir);
    assertEquals(await Deno.readTextFile(`${dir}/hearth.lock`), `${Deno.pid}\n`);
    await assertRejects(lockDataDir(dir), (e: Error) => {
      assert(e instanceof DataDirLockedError);
      assertEquals(e.pid, Deno.pid);
      assertEquals(
        e.message,
        `another Hearth is already running on ${dir} (pid ${Deno.pid}); stop it first`,
      );
      return true;
    });
    lock.release();
    lock.release(); // a second release does nothing
    const again = await lockDataDir(dir);
    again.release();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("lockDataDir() on a missing directory says to run hearth init", async () => {
  await assertRejects(
    lockDataDir("/nonexistent/hearth-data"),
    (e: Error) => e instanceof UsageError && /run "hearth init" first/.test(e.message),
  );
});

Deno.test("startHome() holds the lock until close", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hearth-lock-" });
  try {
    const config = await loadConfig(dir, {
      imapPort: 0,
      imapsPort: 0,
      mxPort: null,
      submissionPort: null,
      submissionsPort: null,
    });
    await initDataDir(config);
    const box = await startHome(config, { queue: null });
    try {
      await assertRejects(startHome(config, { queue: null }), DataDirLockedError);
    } finally {
      await box.close();
    }
    (await lockDataDir(dir)).release();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
