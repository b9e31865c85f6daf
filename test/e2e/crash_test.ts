/**
 * The durability promise under SIGKILL: `hearth home` runs as a child
 * process while several clients APPEND 500 messages; it is killed after
 * about 200 `OK`s, restarted, and every message that got `OK` must be there,
 * byte for byte, under the UID its APPENDUID named. No message may be
 * half-written: everything listed fetches fully and is one of the sent ones.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { loadConfig } from "../../src/config.ts";
import { initDataDir, openStore } from "../../home/box.ts";
import { createAccount } from "../../home/store/accounts.ts";
import { RawImap } from "./raw_imap.ts";
import { freeLowPort } from "../free_low_port.ts";

const address = "crash@hearth.localhost";
const password = "crash test password";
const total = 500;
const clients = 5;
const killAfter = 200;
const mainTs = new URL("../../main.ts", import.meta.url).pathname;

function messageFor(i: number): Uint8Array {
  // Sizes from a few hundred bytes to ~40 KB, so blobs differ in length.
  const filler = `line ${i} of a message body that is long enough to matter\r\n`.repeat(
    (i * 37) % 700,
  );
  return new TextEncoder().encode(
    `From: sender${i}@example.org\r\nTo: ${address}\r\nSubject: crash test ${i}\r\n` +
      `Message-ID: <crash-${i}@example.org>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\n` +
      `${filler}end of message ${i}\r\n`,
  );
}

function startHomeProcess(dir: string, port: number) {
  const env = { ...Deno.env.toObject(), HEARTH_SCRYPT_LOG_N: "10", HEARTH_LOG: "warn" };
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      mainTs,
      "home",
      "--data",
      dir,
      "--allow-plaintext",
      "--imap-port",
      String(port),
      "--imaps-port",
      String(freeLowPort()),
      "--mx-port",
      "0",
      "--submission-port",
      "0",
      "--submissions-port",
      "0",
    ],
    env,
    cwd: new URL("../../", import.meta.url).pathname,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return child;
}

/** Waits until the child prints its "running" line. */
async function waitRunning(
  child: Deno.ChildProcess,
): Promise<ReadableStreamDefaultReader<Uint8Array>> {
  const reader = child.stdout.getReader();
  let seen = "";
  const deadline = Date.now() + 30_000;
  while (!seen.includes("home box running")) {
    if (Date.now() > deadline) throw new Error(`hearth home did not start: ${seen}`);
    const { value, done } = await reader.read();
    if (done) {
      const err = await new Response(child.stderr).text();
      throw new Error(`hearth home exited: ${seen}\n${err}`);
    }
    seen += new TextDecoder().decode(value);
  }
  return reader;
}

async function stop(child: Deno.ChildProcess, reader: ReadableStreamDefaultReader<Uint8Array>) {
  try {
    child.kill("SIGKILL");
  } catch { /* already gone */ }
  await child.status;
  await reader.cancel().catch(() => {});
  await child.stderr.cancel().catch(() => {});
}

Deno.test({
  name: "APPEND OKs survive SIGKILL of hearth home in the middle of 500 concurrent APPENDs",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const started = Date.now();
    const dir = await Deno.makeTempDir({ prefix: "hearth-crash-" });
    try {
      const config = await loadConfig(dir, { scryptLogN: 10 });
      await initDataDir(config);
      const { kv, blobs } = await openStore(config);
      await createAccount(kv, blobs, address, password, 10);
      kv.close();

      const port = freeLowPort();
      const first = startHomeProcess(dir, port);
      const firstOut = await waitRunning(first);

      const acked = new Map<number, number>(); // message index → UID from APPENDUID
      const attempted = new Set<number>();
      let okCount = 0;
      let killed = false;
      let uidValidity = 0;
      const killedAt = Promise.withResolvers<void>();

      const worker = async (w: number) => {
        const c = await RawImap.connect(port);
        try {
          await c.ok(`LOGIN ${address} "${password}"`);
          for (let i = w; i < total; i += clients) {
            if (killed) return;
            attempted.add(i);
            const r = await c.append("INBOX", messageFor(i));
            if (r.status !== "OK") throw new Error(`APPEND ${i}: ${r.status} ${r.text}`);
            const m = r.text.match(/\[APPENDUID (\d+) (\d+)\]/);
            if (!m) throw new Error(`APPEND ${i} OK without APPENDUID: ${r.text}`);
            uidValidity = Number(m[1]);
            acked.set(i, Number(m[2]));
            if (++okCount === killAfter && !killed) {
              killed = true;
              first.kill("SIGKILL");
              killedAt.resolve();
            }
          }
        } catch (e) {
          // After the kill, connection errors are expected; before it they are failures.
          if (!killed) throw e;
        } finally {
          c.close();
        }
      };
      const workers = Promise.all(Array.from({ length: clients }, (_, w) => worker(w)));
      await Promise.race([killedAt.promise, workers]);
      await workers;
      assert(killed, `the box was never killed (only ${okCount} OKs)`);
      await stop(first, firstOut);
      assert(acked.size >= killAfter);

      const second = startHomeProcess(dir, port);
      const secondOut = await waitRunning(second);
      try {
        const c = await RawImap.connect(port);
        await c.ok(`LOGIN ${address} "${password}"`);
        const sel = await c.ok("SELECT INBOX");
        const validity = sel.untagged.map((u) => u.text.match(/UIDVALIDITY (\d+)/)?.[1]).find(
          Boolean,
        );
        assertEquals(Number(validity), uidValidity, "UIDVALIDITY is unchanged");
        const bodies = await c.fetchAllBodies();
        const search = await c.ok("UID SEARCH ALL");
        const listed = search.untagged.find((u) => u.text.startsWith("* SEARCH"))!.text
          .split(" ").slice(2).map(Number);
        assertEquals(new Set(listed).size, listed.length, "UIDs are unique");
        assertEquals(listed.length, bodies.size, "every listed message fetches");

        // Every OK'd message is there, intact, under its APPENDUID.
        for (const [i, uid] of acked) {
          const body = bodies.get(uid);
          assert(body, `message ${i} (UID ${uid}) got OK but is missing`);
          assertEquals(body, messageFor(i), `message ${i} (UID ${uid}) is damaged`);
        }
        // Everything present is one of the attempted messages, whole.
        const byUid = new Map([...acked].map(([i, uid]) => [uid, i]));
        for (const [uid, body] of bodies) {
          if (byUid.has(uid)) continue;
          const i = Number(new TextDecoder().decode(body).match(/Subject: crash test (\d+)/)?.[1]);
          assert(attempted.has(i), `UID ${uid} is not a message that was sent`);
          assertEquals(body, messageFor(i), `UID ${uid} (in flight at the kill) is half-written`);
        }
        assert(bodies.size <= attempted.size);
        if (Deno.env.get("HEARTH_TEST_VERBOSE")) {
          console.log(`acked ${acked.size}, present ${bodies.size}, attempted ${attempted.size}`);
        }

        // The restarted box keeps going: new UIDs are above every old one.
        const r = await c.append("INBOX", messageFor(total));
        assertEquals(r.status, "OK", r.text);
        const newUid = Number(r.text.match(/\[APPENDUID \d+ (\d+)\]/)?.[1]);
        assert(newUid > Math.max(...listed), `UID ${newUid} reused after the crash`);
        await c.ok("LOGOUT");
        c.close();
      } finally {
        await stop(second, secondOut);
      }
      assert(Date.now() - started < 60_000, "the crash test took over a minute");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
