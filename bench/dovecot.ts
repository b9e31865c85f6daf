/**
 * Starts a private Dovecot (Debian's dovecot-imapd, 2.3.x) for the benchmark: its own config,
 * maildir, runtime and log in a temporary directory, listening on a free loopback port with
 * plaintext LOGIN allowed, and one user. The system's /etc/dovecot is never read.
 *
 * @example
 * ```ts
 * const dovecot = await startDovecot();
 * console.log(dovecot.target.port);
 * await dovecot.stop();
 * ```
 */

import { ImapClient } from "./imap_client.ts";
import type { BenchTarget, RunningTarget } from "./target.ts";

export const DOVECOT_BINARY = "/usr/sbin/dovecot";

export interface DovecotOptions {
  /** Path of the dovecot binary (default /usr/sbin/dovecot). */
  binary?: string;
  /** Keep the temporary directory after stopping (for inspection). */
  keep?: boolean;
  /**
   * Serve TLS with this certificate (PEM files): STARTTLS on the IMAP port, and implicit TLS
   * on `imapsPort` when given (bench/import_bench.ts, test/e2e/import_test.ts).
   */
  tls?: { certFile: string; keyFile: string; imapsPort?: number };
  /** Skip fsync when writing mail (a source filled only to be read: import tests and bench). */
  noFsync?: boolean;
}

/** Starts Dovecot and returns once a LOGIN has succeeded. */
export async function startDovecot(options: DovecotOptions = {}): Promise<RunningTarget> {
  const binary = options.binary ?? DOVECOT_BINARY;
  const version = await dovecotVersion(binary);
  const dir = await Deno.makeTempDir({ prefix: "hearth-bench-dovecot-" });
  // Login and mail processes run unprivileged and must be able to traverse into the dir.
  await Deno.chmod(dir, 0o755);

  const account = await mailAccount();
  const user = "bench";
  const password = "bench-password";
  const port = freePort();
  const home = `${dir}/home/${user}`;
  await Deno.mkdir(home, { recursive: true });
  await Deno.mkdir(`${dir}/state`, { recursive: true });
  if (account.chown) await chownTree(`${dir}/home`, account.uid, account.gid);

  // passwd-file: user:{scheme}password:uid:gid:gecos:home:shell
  await Deno.writeTextFile(
    `${dir}/users`,
    `${user}:{PLAIN}${password}:${account.uid}:${account.gid}::${home}::\n`,
    { mode: 0o644 },
  );
  await Deno.writeTextFile(
    `${dir}/dovecot.conf`,
    dovecotConfig({ dir, port, account, tls: options.tls, noFsync: options.noFsync }),
  );

  const child = new Deno.Command(binary, {
    args: ["-F", "-c", `${dir}/dovecot.conf`],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = collectOutput(child);

  // Every caller (the benchmark, its signal handler) waits for the same, complete stop.
  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= stopAndClean());
  const stopAndClean = async () => {
    removeEventListener("unload", onUnload);
    try {
      // SIGTERM makes the master stop every child process (shutdown_clients = yes).
      child.kill("SIGTERM");
    } catch {
      // Already exited.
    }
    const timeout = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already exited.
      }
    }, 5000);
    await child.status;
    clearTimeout(timeout);
    if (!options.keep) await removeDir(dir);
  };
  // Last resort if the benchmark exits without calling stop(): never leave a Dovecot behind.
  const onUnload = () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
  };
  addEventListener("unload", onUnload);

  const target: BenchTarget = {
    name: "dovecot",
    host: "127.0.0.1",
    port,
    user,
    password,
    pid: child.pid,
    version,
  };
  try {
    await waitForLogin(target, child.status);
  } catch (err) {
    await stop();
    const log = await Deno.readTextFile(`${dir}/dovecot.log`).catch(() => "");
    throw new Error(
      `dovecot did not start: ${(err as Error).message}\n${await output}\n${log}`.trim(),
    );
  }
  return { target, stop, dataDir: home };
}

interface MailAccount {
  uid: number;
  gid: number;
  /** User the master, auth and login processes drop to. */
  internalUser: string;
  /** Whether the mail directory must be chowned (we run as root). */
  chown: boolean;
}

/**
 * As root, Dovecot needs unprivileged users: its own `dovecot`/`dovenull` (created by the
 * package) for internal and login processes, and a mail owner that is neither; `nobody` will do
 * for a throwaway benchmark mailbox. As another user, everything runs as that user.
 */
async function mailAccount(): Promise<MailAccount> {
  const uid = Deno.uid() ?? 0;
  if (uid !== 0) {
    const gid = Deno.gid() ?? uid;
    const name = (await run("id", ["-un"])).trim();
    return { uid, gid, internalUser: name, chown: false };
  }
  const entry = (await run("getent", ["passwd", "nobody"])).trim().split(":");
  return { uid: Number(entry[2]), gid: Number(entry[3]), internalUser: "dovecot", chown: true };
}

function dovecotConfig(
  { dir, port, account, tls, noFsync }: {
    dir: string;
    port: number;
    account: MailAccount;
    tls?: DovecotOptions["tls"];
    noFsync?: boolean;
  },
): string {
  const root = account.chown;
  return `# Generated by bench/dovecot.ts for a private benchmark instance (Dovecot 2.3).
protocols = imap
listen = 127.0.0.1
base_dir = ${dir}/run
state_dir = ${dir}/state
log_path = ${dir}/dovecot.log
info_log_path = ${dir}/dovecot.log
instance_name = hearth-bench-${port}

${tls ? `ssl = yes\nssl_cert = <${tls.certFile}\nssl_key = <${tls.keyFile}` : "ssl = no"}
disable_plaintext_auth = no
auth_mechanisms = plain login

default_internal_user = ${account.internalUser}
default_login_user = ${root ? "dovenull" : account.internalUser}
${root ? "" : `default_internal_group = ${account.gid}\n`}first_valid_uid = ${
    Math.min(account.uid, 500)
  }
first_valid_gid = ${Math.min(account.gid, 500)}

# The benchmark opens 20+ connections for one user from one address.
mail_max_userip_connections = 1000
mail_location = maildir:~/Maildir
${noFsync ? "mail_fsync = never\n" : ""}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${dir}/users
}
userdb {
  driver = passwd-file
  args = username_format=%u ${dir}/users
}

namespace inbox {
  inbox = yes
  separator = /
}

service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${port}
  }
  inet_listener imaps {
${tls?.imapsPort ? `    address = 127.0.0.1\n    ssl = yes\n` : ""}    port = ${tls?.imapsPort ?? 0}
  }
${root ? "" : `  user = ${account.internalUser}\n  chroot =\n`}}
${
    root ? "" : `service anvil {
  chroot =
}
service auth {
  user = ${account.internalUser}
}
service auth-worker {
  user = ${account.internalUser}
}
`
  }`;
}

async function waitForLogin(target: BenchTarget, exited: Promise<Deno.CommandStatus>) {
  let done = false;
  exited.then(() => (done = true));
  let last: unknown;
  for (let attempt = 0; attempt < 100 && !done; attempt++) {
    try {
      const client = await ImapClient.connect({ host: target.host, port: target.port });
      await client.login(target.user, target.password);
      await client.logout();
      return;
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(done ? "process exited" : `no successful LOGIN: ${(last as Error)?.message}`);
}

/** The dovecot version, which also checks that the binary is installed. */
async function dovecotVersion(binary: string): Promise<string> {
  try {
    return (await run(binary, ["--version"])).trim();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new Error(
        `${binary} not found: install Debian's dovecot-imapd (.ci/run does), or run the ` +
          "benchmark with --only hearth",
      );
    }
    throw err;
  }
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/**
 * The master can exit a moment before its imap processes finish writing, which makes a single
 * recursive remove fail with "directory not empty"; retry briefly.
 */
async function removeDir(dir: string): Promise<void> {
  for (let attempt = 0;; attempt++) {
    try {
      await Deno.remove(dir, { recursive: true });
      return;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return;
      if (attempt >= 20) {
        console.error(`bench: could not remove ${dir}: ${(err as Error).message}`);
        return;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

async function chownTree(path: string, uid: number, gid: number): Promise<void> {
  await Deno.chown(path, uid, gid);
  for await (const entry of Deno.readDir(path)) {
    const child = `${path}/${entry.name}`;
    if (entry.isDirectory) await chownTree(child, uid, gid);
    else await Deno.chown(child, uid, gid);
  }
}

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return new TextDecoder().decode(out.stdout);
}

async function collectOutput(child: Deno.ChildProcess): Promise<string> {
  const [stdout, stderr] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  return (stdout + stderr).trim();
}
