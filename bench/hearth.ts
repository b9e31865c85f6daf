/**
 * Starts the Hearth home box for the benchmark: a temporary data directory,
 * one account, and `hearth home` as a child process on free loopback ports
 * (plaintext LOGIN allowed, as the private Dovecot is configured with ssl = no),
 * with the MX listening too for the SMTP benchmark.
 */

import type { RunningTarget } from "./target.ts";
import { freePort } from "./dovecot.ts";

export interface HearthOptions {
  /** Keep the temporary data directory after stopping. */
  keep?: boolean;
}

const user = "bench@hearth.localhost";
const password = "bench-password-1";
const root = new URL("..", import.meta.url).pathname;

async function hearth(args: string[], stdin?: string) {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${root}main.ts`, ...args],
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    env: { HEARTH_SCRYPT_LOG_N: "14" },
  });
  const child = cmd.spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  if (!out.success) {
    throw new Error(`hearth ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

async function waitForPort(port: number, timeoutMs: number) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    try {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      c.close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`Hearth did not listen on ${port} within ${timeoutMs} ms`);
}

function spawnHome(dataDir: string, port: number, tlsPort: number, mxPort: number) {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      // HEARTH_BENCH_PROFILE=DIR writes a V8 tick profile of the server to DIR (node --prof-process).
      ...(Deno.env.get("HEARTH_BENCH_PROFILE")
        ? [
          `--v8-flags=--prof,--logfile=${
            Deno.env.get("HEARTH_BENCH_PROFILE")
          }/v8.log,--no-logfile-per-isolate`,
        ]
        : []),
      // HEARTH_BENCH_INSPECT=PORT opens V8's inspector there (CPU profiles through Profiler.start).
      ...(Deno.env.get("HEARTH_BENCH_INSPECT")
        ? [`--inspect=127.0.0.1:${Deno.env.get("HEARTH_BENCH_INSPECT")}`]
        : []),
      `${root}main.ts`,
      "home",
      "--data",
      dataDir,
      "--allow-plaintext",
      "--imap-port",
      String(port),
      "--imaps-port",
      String(tlsPort),
      "--mx-port",
      String(mxPort),
      "--submission-port",
      "0",
      "--submissions-port",
      "0",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
    env: { HEARTH_LOG: "warn" },
  }).spawn();
}

export async function startHearth(options: HearthOptions = {}): Promise<RunningTarget> {
  const dataDir = await Deno.makeTempDir({ prefix: "hearth-bench-" });
  await hearth(["init", "--data", dataDir]);
  await hearth(["user", "add", user, "--password-stdin", "--data", dataDir], password + "\n");
  const port = freePort();
  const tlsPort = freePort();
  const mxPort = freePort();
  let child = spawnHome(dataDir, port, tlsPort, mxPort);
  await waitForPort(port, 20_000);
  let stopped = false;
  const target = {
    name: "hearth",
    host: "127.0.0.1",
    port,
    user,
    password,
    pid: child.pid,
    version: "Hearth (this checkout)",
  };
  const stopChild = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    await child.status;
  };
  return {
    target,
    dataDir,
    mxPort,
    /**
     * Restarts the server on the same data: the figures then describe a box
     * that has been running, not one that just took 10,000 APPENDs (Dovecot's
     * loading also ran in imap processes that have exited).
     */
    async restart() {
      await stopChild();
      child = spawnHome(dataDir, port, tlsPort, mxPort);
      target.pid = child.pid;
      await waitForPort(port, 20_000);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await stopChild();
      if (!options.keep) await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    },
  };
}
