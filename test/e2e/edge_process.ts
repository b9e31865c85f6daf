/**
 * The real `hearth edge` as a subprocess, for tests that kill it or run
 * several on one KV. Its ports are picked once ({@linkcode pickFreePort}) and
 * kept across restarts, so a sender or a linked home box finds it again.
 *
 * @example
 * ```ts
 * const edge = await startEdgeProcess();
 * try {
 *   const token = await addHome(edge.dataDir, "hearth.localhost");
 *   await edge.kill("SIGKILL");
 *   await edge.restart();
 * } finally {
 *   await edge.stop();
 * }
 * ```
 */
import { pickFreePort } from "./harness.ts";

const repoRoot = new URL("../../", import.meta.url).pathname;
const runningLine = /Hearth edge running: SMTP (\d+), HTTP (http:\/\/127\.0\.0\.1:\d+)/;

export interface EdgeProcessOptions {
  /** The edge's data directory (made, and removed by stop, when not given). */
  dataDir?: string;
  /** `--kv PATH`: another edge's KV file; default `DATA/edge.kv`. */
  kv?: string;
  /** How long to wait for the "running" line. */
  startTimeoutMs?: number;
}

export interface EdgeProcess {
  dataDir: string;
  httpPort: number;
  smtpPort: number;
  /** The URL a home box links to. */
  url: string;
  /** What the process wrote to stderr so far (its log, the last 20,000 characters). */
  stderr(): string;
  /** Every `error` line it logged (the first 100), since the first start. */
  errors(): string[];
  /** Sends a signal and waits for the process to exit. */
  kill(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
  /** Starts `hearth edge` again on the same data directory, KV and ports. */
  restart(): Promise<void>;
  /** Kills the process; removes the data directory if this helper made it. */
  stop(): Promise<void>;
}

function hearth(args: string[]): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "main.ts", ...args],
    cwd: repoRoot,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
    signal: AbortSignal.timeout(30_000),
  });
}

/** Runs `hearth edge add-home` and returns the pairing token it prints on its own line. */
export async function addHome(dataDir: string, domain: string, kv?: string): Promise<string> {
  const out = await hearth([
    "edge",
    "add-home",
    "--domain",
    domain,
    "--data",
    dataDir,
    ...(kv ? ["--kv", kv] : []),
  ]).output();
  const text = new TextDecoder().decode(out.stdout);
  const token = text.match(/^ {2}(\S+)$/m)?.[1];
  if (!out.success || !token) {
    throw new Error(`hearth edge add-home failed: ${text}${new TextDecoder().decode(out.stderr)}`);
  }
  return token;
}

/** Starts `hearth edge --data DIR --http-port P --smtp-port Q` and waits until it listens. */
export async function startEdgeProcess(opts: EdgeProcessOptions = {}): Promise<EdgeProcess> {
  const ownDir = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? await Deno.makeTempDir({ prefix: "hearth-edge-proc-" });
  const httpPort = pickFreePort();
  const smtpPort = pickFreePort();
  let child: Deno.ChildProcess;
  let exited: Promise<Deno.CommandStatus>;
  let log = "";
  const errors: string[] = [];

  const spawn = async () => {
    child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        "main.ts",
        "edge",
        "--data",
        dataDir,
        ...(opts.kv ? ["--kv", opts.kv] : []),
        "--http-port",
        String(httpPort),
        "--smtp-port",
        String(smtpPort),
      ],
      cwd: repoRoot,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    exited = child.status;
    // Keep the log (bounded) and the pipe drained so the edge never blocks on it.
    (async () => {
      let partial = "";
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
        log = (log + chunk).slice(-20_000);
        const lines = (partial + chunk).split("\n");
        partial = lines.pop()!;
        for (const l of lines) if (/^\S+ error /.test(l) && errors.length < 100) errors.push(l);
      }
    })().catch(() => {});
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`hearth edge did not start in time; stdout: ${out}; log: ${log}`)),
        opts.startTimeoutMs ?? 30_000,
      );
    });
    try {
      while (!runningLine.test(out)) {
        const { value, done } = await Promise.race([reader.read(), timeout]);
        if (done) {
          const status = await exited;
          throw new Error(`hearth edge exited with ${status.code}: ${out}${log}`);
        }
        out += value;
      }
    } catch (e) {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
      await exited;
      throw e;
    } finally {
      clearTimeout(timer);
    }
    (async () => {
      while (!(await reader.read()).done) { /* discard */ }
    })().catch(() => {});
  };

  const kill = async (signal: Deno.Signal = "SIGTERM") => {
    try {
      child.kill(signal);
    } catch { /* already exited */ }
    return await exited;
  };

  try {
    await spawn();
  } catch (e) {
    if (ownDir) await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    throw e;
  }
  return {
    dataDir,
    httpPort,
    smtpPort,
    url: `http://127.0.0.1:${httpPort}`,
    stderr: () => log,
    errors: () => [...errors],
    kill,
    restart: spawn,
    async stop() {
      await kill("SIGKILL");
      if (ownDir) await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    },
  };
}
