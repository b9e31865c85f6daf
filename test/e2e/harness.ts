/**
 * Home boxes for end-to-end tests: a fresh data directory with one account
 * and the fixture messages, served on free loopback ports, either in this
 * process ({@linkcode startTestBox}) or as a real `hearth home` subprocess
 * that a test may kill ({@linkcode startHomeProcess}).
 *
 * @example
 * ```ts
 * const box = await startTestBox();
 * try {
 *   // connect a client to 127.0.0.1:box.tlsPort with box.caPem
 * } finally {
 *   await box.stop();
 * }
 * ```
 */
import {
  type HomeBox,
  type HomeOptions,
  initDataDir,
  openStore,
  startHome,
} from "../../home/box.ts";
import { createAccount } from "../../home/store/accounts.ts";
import type { OutboundQueue } from "../../home/smtp/types.ts";
import { type Resolver, TestResolver } from "../../src/dns.ts";
import { deliverLocally } from "../../home/store/deliver.ts";
import { linkToEdge } from "../../home/edge_link.ts";
import { loadConfig } from "../../src/config.ts";
import { log } from "../../src/log.ts";
import { fixtureMessages } from "./messages.ts";
import { RawImap } from "./raw_imap.ts";

/** Small scrypt work factor: account creation and login in milliseconds. */
export const testScryptLogN = 10;
export const testAddress = "me@hearth.localhost";
export const testPassword = "correct horse battery staple";

/** Every external client run is bounded by this (a hung client fails the test). */
export const clientTimeoutMs = 20_000;

const repoRoot = new URL("../../", import.meta.url).pathname;

export interface TestBox {
  dataDir: string;
  address: string;
  password: string;
  recoveryKey: string;
  /** Path of the private CA that signed the server certificate. */
  caFile: string;
  caPem: string;
  /** Plaintext port (STARTTLS; plaintext LOGIN allowed for tests). */
  port: number;
  /** Implicit TLS port. */
  tlsPort: number;
  /** SMTP ports of the in-process box (MX; submission with STARTTLS; submission over TLS). */
  mxPort?: number;
  submissionPort?: number;
  submissionsPort?: number;
  /** The home HTTP port, when TestBoxOptions.http asked for it. */
  httpPort?: number;
  /** Delivers a raw message to the account's INBOX as an MTA would. */
  deliver(raw: string | Uint8Array): Promise<void>;
  /** Closes everything and removes the data directory. */
  stop(): Promise<void>;
}

export interface TestBoxOptions {
  /** Messages delivered to INBOX before the box starts; default {@linkcode fixtureMessages}. */
  messages?: string[];
  /** Allow IMAP LOGIN and SMTP AUTH without TLS (default true, for test clients). */
  allowPlaintextAuth?: boolean;
  /**
   * An outbound queue for submission (remote recipients are refused without one), or
   * "box" for the box's own persistent queue and direct delivery (with `outbound` hooks).
   */
  queue?: OutboundQueue | "box";
  /** Test hooks for the box's own direct delivery (see HomeOptions.outbound). */
  outbound?: HomeOptions["outbound"];
  /** DNS for the MX's SPF/DKIM/DMARC checks; default an empty table (no network). */
  resolver?: Resolver;
  /** Link the box to this edge (a pairing token from its store) before it starts. */
  edge?: { url: string; token: string };
  /** More accounts to create (with {@linkcode testPassword}), before any link. */
  accounts?: string[];
  /** Test hooks into the store's durable writes (in-process boxes only). */
  storage?: HomeOptions["storage"];
  /** Serve the home HTTP port (on a free port): backup host, phone sync on the LAN. */
  http?: boolean;
}

function bytesOf(raw: string | Uint8Array): Uint8Array {
  return typeof raw === "string" ? new TextEncoder().encode(raw) : raw;
}

/** Makes a data directory with the test account and the given messages in INBOX. */
async function prepareDataDir(
  messages: string[],
  edge?: { url: string; token: string },
  accounts: string[] = [],
) {
  const dataDir = await Deno.makeTempDir({ prefix: "hearth-e2e-" });
  const config = await loadConfig(dataDir, {
    imapPort: 0,
    imapsPort: 0,
    mxPort: 0,
    submissionPort: 0,
    submissionsPort: 0,
    homeHttpPort: 0,
    scryptLogN: testScryptLogN,
  });
  await initDataDir(config);
  const { kv, blobs } = await openStore(config);
  let recoveryKey: string;
  try {
    ({ recoveryKey } = await createAccount(kv, blobs, testAddress, testPassword, testScryptLogN));
    for (const m of messages) await deliverLocally(kv, blobs, testAddress, bytesOf(m));
    for (const a of accounts) await createAccount(kv, blobs, a, testPassword, testScryptLogN);
    if (edge) await linkToEdge(dataDir, kv, edge.url, edge.token);
  } finally {
    kv.close();
  }
  const caFile = `${dataDir}/tls/ca.pem`;
  return { dataDir, config, recoveryKey, caFile, caPem: await Deno.readTextFile(caFile) };
}

async function removeDir(dir: string) {
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

/** Starts a home box in this process. */
export async function startTestBox(opts: TestBoxOptions = {}): Promise<TestBox> {
  // The box's info lines would bury the test output; HEARTH_LOG=info brings them back.
  if (!Deno.env.get("HEARTH_LOG")) log.setLevel("warn");
  const prepared = await prepareDataDir(opts.messages ?? fixtureMessages, opts.edge, opts.accounts);
  let box: HomeBox;
  try {
    box = await startHome(prepared.config, {
      allowPlaintextAuth: opts.allowPlaintextAuth ?? true,
      // No real outbound queue unless a test brings one: nothing may leave loopback.
      queue: opts.queue === "box" ? undefined : opts.queue ?? null,
      outbound: opts.outbound,
      resolver: opts.resolver ?? new TestResolver(),
      storage: opts.storage,
      http: opts.http,
    });
  } catch (e) {
    await removeDir(prepared.dataDir);
    throw e;
  }
  return {
    dataDir: prepared.dataDir,
    address: testAddress,
    password: testPassword,
    recoveryKey: prepared.recoveryKey,
    caFile: prepared.caFile,
    caPem: prepared.caPem,
    port: box.imap.port!,
    tlsPort: box.imap.tlsPort!,
    mxPort: box.mx?.ports[0],
    submissionPort: box.submission?.port ?? undefined,
    submissionsPort: box.submission?.tlsPort ?? undefined,
    httpPort: box.http?.port,
    deliver: (raw) => deliverLocally(box.kv, box.blobs, testAddress, bytesOf(raw), box.registry),
    async stop() {
      await box.close();
      await removeDir(prepared.dataDir);
    },
  };
}

/** Every message in a test box's INBOX, in UID order (read over IMAP, plaintext LOGIN). */
export async function inbox(box: TestBox): Promise<Uint8Array[]> {
  const c = await RawImap.connect(box.port);
  try {
    await c.ok(`LOGIN ${box.address} "${box.password}"`);
    await c.ok("SELECT INBOX");
    const bodies = await c.fetchAllBodies();
    return [...bodies.keys()].sort((a, b) => a - b).map((uid) => bodies.get(uid)!);
  } finally {
    c.close();
  }
}

/**
 * Splits a stored message into the trace fields the MX added on top (Authentication-Results,
 * Received-SPF, Received) and the message as it was sent.
 */
export function splitTrace(stored: Uint8Array): { trace: Map<string, string>; rest: Uint8Array } {
  const text = new TextDecoder().decode(stored);
  const trace = new Map<string, string>();
  let off = 0;
  for (;;) {
    const m = text.slice(off).match(
      /^(Received|Received-SPF|Authentication-Results): [^\r\n]*(?:\r\n[ \t][^\r\n]*)*\r\n/,
    );
    if (!m) break;
    if (trace.has(m[1])) throw new Error(`${m[1]} added twice`);
    trace.set(m[1], m[0]);
    off += m[0].length;
  }
  if (!trace.has("Received")) throw new Error(`no Received: on top of ${text.slice(0, 300)}`);
  return { trace, rest: new TextEncoder().encode(text.slice(off)) };
}

/** Polls `check` every `everyMs` until it holds; throws naming `what` after `ms`. */
export async function waitFor(
  what: string,
  ms: number,
  check: () => boolean | Promise<boolean>,
  everyMs = 100,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Picks a free loopback port by binding port 0 (racy in theory, fine on a test machine). */
export function pickFreePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

export interface HomeProcess extends TestBox {
  child: Deno.ChildProcess;
  /** What the process wrote to stderr so far (its log), for failure messages. */
  stderr(): string;
  /** Sends a signal and waits for the process to exit. */
  kill(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
  /** Starts `hearth home` again on the same data directory and ports. */
  restart(): Promise<void>;
}

export interface HomeProcessOptions extends TestBoxOptions {
  /** Fixed ports (to reconnect after a restart); default free ones picked by the OS. */
  port?: number;
  tlsPort?: number;
  /** Fixed MX port; default a free one, kept across restarts. */
  mxPort?: number;
  /** How long to wait for the "running" line. */
  startTimeoutMs?: number;
}

const runningLine = /IMAP (\d+) \(STARTTLS\), (\d+) \(TLS\); MX (\d+|off);/;

/**
 * Runs the real `hearth home` (`deno run -A main.ts home …`) as a
 * subprocess, for tests that kill it. The listening ports are read from the
 * line it prints once it is ready.
 */
export async function startHomeProcess(opts: HomeProcessOptions = {}): Promise<HomeProcess> {
  const prepared = await prepareDataDir(opts.messages ?? fixtureMessages, opts.edge, opts.accounts);
  let port = opts.port ?? 0;
  let tlsPort = opts.tlsPort ?? 0;
  let mxPort = opts.mxPort ?? 0;
  let child: Deno.ChildProcess;
  let log = "";
  let exited: Promise<Deno.CommandStatus>;

  const spawn = async () => {
    child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        "main.ts",
        "home",
        "--data",
        prepared.dataDir,
        "--allow-plaintext",
        "--imap-port",
        String(port),
        "--imaps-port",
        String(tlsPort),
        "--mx-port",
        String(mxPort),
      ],
      cwd: repoRoot,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    exited = child.status;
    // Keep the log (bounded) and keep the pipe drained so the server never blocks on it.
    (async () => {
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
        log = (log + chunk).slice(-20_000);
      }
    })().catch(() => {});
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    const deadline = Date.now() + (opts.startTimeoutMs ?? 30_000);
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      while (!runningLine.test(out)) {
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(new Error(`hearth home did not start in time; stdout: ${out}; log: ${log}`)),
            Math.max(0, deadline - Date.now()),
          );
        });
        const { value, done } = await Promise.race([reader.read(), timeout]);
        clearTimeout(timer);
        if (done) {
          const status = await exited;
          throw new Error(`hearth home exited with ${status.code}: ${out}${log}`);
        }
        out += value;
      }
    } catch (e) {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
      await exited;
      throw e;
    }
    const m = out.match(runningLine)!;
    port = Number(m[1]);
    tlsPort = Number(m[2]);
    if (m[3] !== "off") mxPort = Number(m[3]);
    // Drain the rest of stdout in the background.
    (async () => {
      while (!(await reader.read()).done) { /* discard */ }
    })().catch(() => {});
  };

  try {
    await spawn();
  } catch (e) {
    await removeDir(prepared.dataDir);
    throw e;
  }

  const kill = async (signal: Deno.Signal = "SIGTERM") => {
    try {
      child.kill(signal);
    } catch { /* already exited */ }
    return await exited;
  };

  const proc: HomeProcess = {
    dataDir: prepared.dataDir,
    address: testAddress,
    password: testPassword,
    recoveryKey: prepared.recoveryKey,
    caFile: prepared.caFile,
    caPem: prepared.caPem,
    get port() {
      return port;
    },
    get tlsPort() {
      return tlsPort;
    },
    get mxPort() {
      return mxPort;
    },
    get child() {
      return child;
    },
    stderr: () => log,
    async deliver(raw) {
      const cmd = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-all",
          "main.ts",
          "deliver",
          "--to",
          testAddress,
          "--data",
          prepared.dataDir,
        ],
        cwd: repoRoot,
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(clientTimeoutMs),
      }).spawn();
      const w = cmd.stdin.getWriter();
      await w.write(bytesOf(raw));
      await w.close();
      const out = await cmd.output();
      if (!out.success) {
        throw new Error(`hearth deliver failed: ${new TextDecoder().decode(out.stderr)}`);
      }
    },
    kill,
    restart: spawn,
    async stop() {
      await kill("SIGTERM");
      await removeDir(prepared.dataDir);
    },
  };
  return proc;
}

export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs an external client, bounded by {@linkcode clientTimeoutMs}. A missing
 * tool fails with the Debian package to install and the script that does it.
 */
export async function runTool(
  cmd: string,
  args: string[],
  opts: { pkg: string; stdin?: string; cwd?: string; env?: Record<string, string> },
): Promise<ToolResult> {
  const command = new Deno.Command(cmd, {
    args,
    cwd: opts.cwd,
    env: opts.env,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(clientTimeoutMs),
  });
  let child: Deno.ChildProcess;
  try {
    child = command.spawn();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(
        `${cmd} is not installed: install Debian package "${opts.pkg}" (.ci/run installs it)`,
      );
    }
    throw e;
  }
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const out = await child.output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}
