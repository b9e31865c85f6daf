/**
 * A home box in a process of its own, for tests that measure its memory
 * (`/proc/PID/status`) or shorten its limits: `HEARTH_TEST_LIMITS` is a JSON
 * object merged into `limits` before the box starts (only this process sees
 * it). Prints one JSON line with the ports once listening; stops on SIGTERM or
 * when stdin closes. `HEARTH_TEST_MESSAGES` is the number of extra messages
 * (about 20 KB each) in INBOX.
 *
 * @example
 * ```ts
 * const box = await spawnBox({ limits: { slowInputWindowMs: 1500 } });
 * console.log(box.ports.port, await box.rssBytes());
 * await box.stop();
 * ```
 */
import { limits } from "../../src/limits.ts";
import { fixtureMessages } from "../e2e/messages.ts";

export interface BoxPorts {
  port: number;
  tlsPort: number;
  mxPort: number;
  submissionPort: number;
  dataDir: string;
  address: string;
  password: string;
}

export interface SpawnedBox {
  ports: BoxPorts;
  pid: number;
  /** Resident memory of the box process, from /proc. */
  rssBytes(): Promise<number>;
  /** What the box wrote to stderr (its warnings). */
  stderr(): string;
  stop(): Promise<void>;
}

/** A message of about `bytes` bytes for INBOX. */
export function bulkMessage(i: number, bytes = 20_000): string {
  const line = `line of message ${i} with some words to make it long enough\r\n`;
  return `From: bulk${i}@example.org\r\nTo: me@hearth.localhost\r\nSubject: bulk ${i}\r\n` +
    `Message-ID: <bulk-${i}@example.org>\r\n\r\n` + line.repeat(Math.ceil(bytes / line.length));
}

/** Starts this file as a subprocess. `env` is added to the child's environment (TMPDIR …). */
export async function spawnBox(
  opts: { limits?: Record<string, number>; messages?: number; env?: Record<string, string> } = {},
): Promise<SpawnedBox> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", new URL(import.meta.url).pathname],
    env: {
      NO_COLOR: "1",
      HEARTH_TEST_LIMITS: JSON.stringify(opts.limits ?? {}),
      HEARTH_TEST_MESSAGES: String(opts.messages ?? 0),
      ...opts.env,
    },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let log = "";
  (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      log = (log + chunk).slice(-20_000);
    }
  })().catch(() => {});
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  try {
    while (!out.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the box exited before listening: ${log}`);
      out += value;
    }
  } finally {
    clearTimeout(timer);
  }
  (async () => {
    while (!(await reader.read()).done) { /* drain */ }
  })().catch(() => {});
  const ports = JSON.parse(out.slice(0, out.indexOf("\n"))) as BoxPorts;
  return {
    ports,
    pid: child.pid,
    async rssBytes() {
      const status = await Deno.readTextFile(`/proc/${child.pid}/status`);
      return Number(status.match(/VmRSS:\s+(\d+) kB/)![1]) * 1024;
    },
    stderr: () => log,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      const t = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
      }, 10_000);
      await child.status;
      clearTimeout(t);
      await child.stdin.close().catch(() => {});
    },
  };
}

if (import.meta.main) {
  Object.assign(limits, JSON.parse(Deno.env.get("HEARTH_TEST_LIMITS") ?? "{}"));
  const { startTestBox } = await import("../e2e/harness.ts");
  const extra = Number(Deno.env.get("HEARTH_TEST_MESSAGES") ?? "0");
  const box = await startTestBox({
    messages: [...fixtureMessages, ...Array.from({ length: extra }, (_, i) => bulkMessage(i))],
  });
  console.log(JSON.stringify(
    {
      port: box.port,
      tlsPort: box.tlsPort,
      mxPort: box.mxPort!,
      submissionPort: box.submissionPort!,
      dataDir: box.dataDir,
      address: box.address,
      password: box.password,
    } satisfies BoxPorts,
  ));
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await box.stop();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", stop);
  (async () => {
    for await (const _ of Deno.stdin.readable) { /* until closed */ }
    await stop();
  })();
}
