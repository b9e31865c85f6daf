/**
 * Starts a private Postfix (Debian's postfix package, 3.x) for the SMTP benchmark: its own
 * main.cf and master.cf, queue, data directory, log and maildir in a temporary directory, one
 * smtpd listener on a free loopback port, and virtual maildir delivery for one test domain, so
 * no system user is needed. Postfix fsyncs the queue file before it answers 250, and its
 * virtual agent fsyncs each maildir file; both are its defaults and are left alone.
 * The system's /etc/postfix is never read. Needs root (`postfix start` does).
 *
 * @example
 * ```ts
 * const postfix = await startPostfix();
 * console.log(postfix.port, postfix.recipient);
 * console.log(await postfix.deliveredCount());
 * await postfix.stop();
 * ```
 */

import { freePort } from "./dovecot.ts";

export const POSTFIX_BINARY = "/usr/sbin/postfix";
const DOMAIN = "bench.test";

export interface PostfixOptions {
  /** Keep the temporary directory after stopping (for inspection). */
  keep?: boolean;
}

export interface RunningPostfix {
  host: string;
  port: number;
  /** Address that is delivered to the maildir. */
  recipient: string;
  version: string;
  /** Messages in the maildir (new/ and cur/). */
  deliveredCount(): Promise<number>;
  /** Messages still in the queue (incoming, active, deferred). */
  queuedCount(): Promise<number>;
  /** Stops the master and its children and removes the directory (idempotent). */
  stop(): Promise<void>;
  dir: string;
}

/** Starts Postfix and returns once its smtpd answers on the port. */
export async function startPostfix(options: PostfixOptions = {}): Promise<RunningPostfix> {
  if ((Deno.uid() ?? 0) !== 0) {
    throw new Error(
      "the private Postfix needs root (postfix start refuses otherwise); run the benchmark as " +
        "root or pass --smtp-only hearth",
    );
  }
  try {
    await Deno.stat(POSTFIX_BINARY);
  } catch {
    throw new Error(
      `${POSTFIX_BINARY} not found: install Debian's postfix (.ci/run does), or pass ` +
        "--smtp-only hearth",
    );
  }
  const dir = await Deno.makeTempDir({ prefix: "hearth-bench-postfix-" });
  // Postfix daemons run as the postfix user and the delivery agent as nobody; both must
  // traverse into the directory.
  await Deno.chmod(dir, 0o755);
  const conf = `${dir}/conf`;
  const owner = await accountIds("postfix");
  const mailOwner = await accountIds("nobody");
  for (const sub of ["conf", "queue", "data", "mail"]) await Deno.mkdir(`${dir}/${sub}`);
  // master.lock lives in data_directory, which must belong to mail_owner.
  await Deno.chown(`${dir}/data`, owner.uid, owner.gid);
  await Deno.chown(`${dir}/mail`, mailOwner.uid, mailOwner.gid);

  const port = freePort();
  await Deno.writeTextFile(`${conf}/main.cf`, mainCf(dir, mailOwner));
  await Deno.writeTextFile(`${conf}/master.cf`, masterCf(port));

  let stopping: Promise<void> | undefined;
  const postfix = (args: string[]) => run(POSTFIX_BINARY, ["-c", conf, ...args]);
  const stopAndClean = async () => {
    removeEventListener("unload", onUnload);
    const pid = await masterPid(dir);
    await postfix(["stop"]).catch(() => {});
    // `postfix stop` signals the master and returns; wait for it so the directory can go.
    for (let i = 0; pid !== undefined && alive(pid) && i < 100; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    if (pid !== undefined && alive(pid)) Deno.kill(pid, "SIGKILL");
    if (!options.keep) await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  const stop = () => (stopping ??= stopAndClean());
  // Last resort if the benchmark exits without calling stop(): never leave a Postfix behind.
  const onUnload = () => {
    try {
      new Deno.Command(POSTFIX_BINARY, {
        args: ["-c", conf, "stop"],
        stdout: "null",
        stderr: "null",
      })
        .outputSync();
    } catch {
      // Nothing more to do on the way out.
    }
  };
  addEventListener("unload", onUnload);

  const maillog = () => Deno.readTextFile(`${dir}/maillog`).catch(() => "");
  try {
    // Postfix reports to its log, not to stderr, when stderr is not a terminal.
    const check = await postfix(["check"]);
    if (!check.ok) throw new Error(`postfix check failed: ${check.text}`);
    const start = await postfix(["start"]);
    if (!start.ok) throw new Error(`postfix start failed: ${start.text}`);
    await waitForBanner(port, 10_000);
  } catch (err) {
    const log = (await maillog()).split("\n").slice(-20).join("\n");
    await stop();
    throw new Error(`${(err as Error).message}\n${log}`.trim());
  }
  const versionOut = await run("/usr/sbin/postconf", ["-c", conf, "-h", "mail_version"]);
  const maildir = `${dir}/mail/${DOMAIN}/bench/Maildir`;
  return {
    host: "127.0.0.1",
    port,
    recipient: `bench@${DOMAIN}`,
    version: `Postfix ${versionOut.text.trim()}`,
    dir,
    deliveredCount: async () =>
      (await countFiles(`${maildir}/new`)) + (await countFiles(`${maildir}/cur`)),
    queuedCount: async () => {
      let n = 0;
      for (const q of ["maildrop", "incoming", "active", "deferred"]) {
        n += await countFiles(`${dir}/queue/${q}`, true);
      }
      return n;
    },
    stop,
  };
}

function mainCf(dir: string, mailOwner: { uid: number; gid: number }): string {
  return `# Generated by bench/postfix.ts for a private benchmark instance.
compatibility_level = 3.6
queue_directory = ${dir}/queue
data_directory = ${dir}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = ${dir}/maillog
maillog_file_prefixes = ${dir}
syslog_name = postfix-bench

inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = postfix-bench.localhost
mydestination =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
alias_maps =
alias_database =
local_recipient_maps =
biff = no

# Every address at the test domain goes to one maildir (trailing slash: maildir format).
virtual_mailbox_domains = ${DOMAIN}
virtual_mailbox_base = ${dir}/mail
virtual_mailbox_maps = static:${DOMAIN}/bench/Maildir/
virtual_uid_maps = static:${mailOwner.uid}
virtual_gid_maps = static:${mailOwner.gid}
`;
}

/** Debian's master.cf minus chroot (the private directories are not set up for one). */
function masterCf(port: number): string {
  return `# Generated by bench/postfix.ts: one smtpd on a loopback port, no chroot.
127.0.0.1:${port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`;
}

async function accountIds(name: string): Promise<{ uid: number; gid: number }> {
  const out = await run("getent", ["passwd", name]);
  if (!out.ok) {
    throw new Error(`no ${name} user: install Debian's postfix package (it creates one)`);
  }
  const entry = out.text.trim().split(":");
  return { uid: Number(entry[2]), gid: Number(entry[3]) };
}

async function masterPid(dir: string): Promise<number | undefined> {
  try {
    const pid = Number((await Deno.readTextFile(`${dir}/queue/pid/master.pid`)).trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/** Waits for the 220 greeting, which means smtpd (not just the master's socket) is up. */
async function waitForBanner(port: number, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < until) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      try {
        const buf = new Uint8Array(512);
        const n = await conn.read(buf);
        last = new TextDecoder().decode(buf.subarray(0, n ?? 0));
        if (last.startsWith("220")) {
          await conn.write(new TextEncoder().encode("QUIT\r\n")).catch(() => 0);
          return;
        }
      } finally {
        conn.close();
      }
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`postfix smtpd did not greet on port ${port} within ${timeoutMs} ms ${last}`);
}

async function countFiles(path: string, recursive = false): Promise<number> {
  let n = 0;
  try {
    for await (const entry of Deno.readDir(path)) {
      if (entry.isFile) n++;
      else if (recursive && entry.isDirectory) n += await countFiles(`${path}/${entry.name}`, true);
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return n;
}

async function run(cmd: string, args: string[]): Promise<{ ok: boolean; text: string }> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return { ok: out.success, text: text.trim() };
}
