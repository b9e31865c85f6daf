/**
 * The import benchmark: `hearth import` copying a mailbox from a private Dovecot (over TLS),
 * against mbsync (Debian's isync) copying the same mailbox to a local maildir, in one run.
 *
 *   deno run -A bench/import_bench.ts [--messages N] [--keep]
 *
 * The source is filled once by APPEND (not timed) with the bench corpus spread over five folders
 * (INBOX, "Sent Items", Lists, Projects, Projects/2024) with varied flags, keywords and internal
 * dates. Both copies use implicit TLS to Dovecot, and both fsync what they write (mbsync's
 * default FSync yes; Hearth's store always does).
 *
 * The source helpers are shared with test/e2e/import_test.ts.
 */
import { ImapFlow } from "imapflow";
import { startDovecot } from "./dovecot.ts";
import { freePort } from "./dovecot.ts";
import { ImapClient } from "./imap_client.ts";
import { generateCorpus } from "./corpus.ts";
import { log } from "./report.ts";
import type { RunningTarget } from "./target.ts";
import { initDataDir, openStore } from "../home/box.ts";
import { createAccount } from "../home/store/accounts.ts";
import { loadConfig } from "../src/config.ts";

/** The source folders, in the order messages are dealt to them, with their share. */
export const sourceFolders: [name: string, share: number][] = [
  ["INBOX", 0.3],
  ["Sent Items", 0.2],
  ["Lists", 0.2],
  ["Projects", 0.15],
  ["Projects/2024", 0.15],
];

/** Where each source folder lands in Hearth ("Sent Items" is recognised as \Sent). */
export const hearthFolderOf = (name: string) => name === "Sent Items" ? "Sent" : name;

export interface SourceMessage {
  folder: string;
  raw: Uint8Array;
  flags: string[];
  /** IMAP date-time for APPEND. */
  date: string;
}

const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

function imapDate(ms: number, zoneMinutes: number): string {
  const d = new Date(ms + zoneMinutes * 60_000);
  const p = (n: number) => String(n).padStart(2, "0");
  const sign = zoneMinutes < 0 ? "-" : "+";
  const z = Math.abs(zoneMinutes);
  return `${p(d.getUTCDate())}-${months[d.getUTCMonth()]}-${d.getUTCFullYear()} ${
    p(d.getUTCHours())
  }:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} ${sign}${p(Math.floor(z / 60))}${p(z % 60)}`;
}

const flagChoices = [
  [],
  ["\\Seen"],
  ["\\Seen", "\\Answered"],
  ["\\Seen", "\\Flagged"],
  ["\\Seen", "$Forwarded"],
  ["\\Draft"],
  ["\\Seen", "\\Deleted"],
  ["\\Seen", "project-x", "$Label1"],
  ["\\Flagged", "$Important"],
];

/** The source mailbox: the bench corpus dealt over {@linkcode sourceFolders}. */
export function sourceMessages(count: number, seed = 7): SourceMessage[] {
  const corpus = generateCorpus({ count, seed });
  const out: SourceMessage[] = [];
  let i = 0;
  for (const [folder, share] of sourceFolders) {
    const n = folder === sourceFolders[sourceFolders.length - 1][0]
      ? count - out.length
      : Math.round(count * share);
    for (let j = 0; j < n; j++, i++) {
      out.push({
        folder,
        raw: corpus.messages[i],
        flags: flagChoices[(i * 7) % flagChoices.length],
        // Spread over six years, with varied zones: internal dates must survive exactly.
        date: imapDate(
          Date.UTC(2019, 0, 1) + i * 190_000_123 % (6 * 365 * 86400_000),
          [
            0,
            120,
            -300,
            330,
          ][i % 4],
        ),
      });
    }
  }
  return out;
}

/** A private Dovecot with TLS (the certificate of a Hearth data directory). */
export async function startSource(
  tls: { certFile: string; keyFile: string },
  keep = false,
): Promise<RunningTarget & { imapsPort: number }> {
  const imapsPort = freePort();
  const running = await startDovecot({ keep, tls: { ...tls, imapsPort }, noFsync: true });
  return { ...running, imapsPort };
}

/** Fills the source by APPEND (plaintext on loopback: fast, and not what is measured). */
export async function fillSource(target: RunningTarget["target"], messages: SourceMessage[]) {
  const client = await ImapClient.connect({ host: target.host, port: target.port });
  await client.login(target.user, target.password);
  for (const [folder] of sourceFolders) {
    if (folder !== "INBOX") await client.command(`CREATE "${folder}"`);
  }
  const window = client.capabilities.has("LITERAL+") ? 64 : 1;
  const inFlight = new Set<Promise<unknown>>();
  for (const m of messages) {
    const p: Promise<unknown> = client.append(m.folder, m.raw, { flags: m.flags, date: m.date })
      .then(() => inFlight.delete(p));
    inFlight.add(p);
    if (inFlight.size >= window) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  await client.logout();
}

/** One message as seen over IMAP, independent of UIDs. */
export function describe(
  m: {
    envelope?: { messageId?: string };
    flags?: Set<string>;
    internalDate?: Date | string;
    size?: number;
  },
): string {
  const flags = [...(m.flags ?? [])].filter((f) => f !== "\\Recent").sort().join(" ");
  const date = m.internalDate ? new Date(m.internalDate).toISOString() : "?";
  return `${m.envelope?.messageId}|${flags}|${date}|${m.size}`;
}

/** Per folder, the sorted descriptions of its messages, read with imapflow. */
export async function mailboxContents(
  opts: ConstructorParameters<typeof ImapFlow>[0],
  folders: string[],
): Promise<Map<string, string[]>> {
  const client = new ImapFlow({ logger: false, ...opts });
  client.on("error", () => {});
  await client.connect();
  const out = new Map<string, string[]>();
  try {
    for (const folder of folders) {
      const box = await client.mailboxOpen(folder, { readOnly: true });
      const list = box.exists
        ? await client.fetchAll("1:*", {
          envelope: true,
          flags: true,
          internalDate: true,
          size: true,
        })
        : [];
      out.set(folder, list.map(describe).sort());
    }
  } finally {
    await client.logout().catch(() => {});
  }
  return out;
}

/** A Hearth data directory with one account (scrypt work factor as given). */
export async function hearthDataDir(address: string, password: string, scryptLogN: number) {
  const dataDir = await Deno.makeTempDir({ prefix: "hearth-import-" });
  const config = await loadConfig(dataDir, {
    imapPort: 0,
    imapsPort: 0,
    mxPort: 0,
    submissionPort: 0,
    submissionsPort: 0,
    scryptLogN,
  });
  await initDataDir(config);
  const { kv, blobs } = await openStore(config);
  try {
    await createAccount(kv, blobs, address, password, scryptLogN);
  } finally {
    kv.close();
  }
  return { dataDir, config };
}

const repoRoot = new URL("../", import.meta.url).pathname;

/** Runs `hearth import` as a subprocess; resolves with its exit status and output. */
export function spawnImport(
  args: string[],
  stdin: string,
): { child: Deno.ChildProcess; done: Promise<{ code: number; signal: string | null }> } {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "main.ts", "import", ...args],
    cwd: repoRoot,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const w = child.stdin.getWriter();
  w.write(new TextEncoder().encode(stdin)).then(() => w.close()).catch(() => {});
  return { child, done: child.status.then((s) => ({ code: s.code, signal: s.signal })) };
}

function mbsyncrc(
  source: { imapsPort: number; user: string; password: string },
  caFile: string,
  maildir: string,
) {
  return `IMAPAccount src
Host localhost
Port ${source.imapsPort}
User ${source.user}
Pass "${source.password}"
SSLType IMAPS
CertificateFile ${caFile}

IMAPStore src-far
Account src

MaildirStore src-near
Path ${maildir}/
Inbox ${maildir}/INBOX
SubFolders Verbatim

Channel src
Far :src-far:
Near :src-near:
Patterns *
Create Near
Sync Pull
SyncState *
`;
}

async function timed<T>(f: () => Promise<T>): Promise<[T, number]> {
  const t = performance.now();
  const v = await f();
  return [v, (performance.now() - t) / 1000];
}

/** Runs the import benchmark with command-line style arguments. */
export async function runImportBench(args: string[]): Promise<void> {
  let count = 10_000;
  let keep = false;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--messages" || args[i] === "--import-messages") count = Number(args[++i]);
    else if (args[i].startsWith("--import-messages=")) count = Number(args[i].split("=")[1]);
    else if (args[i] === "--keep") keep = true;
    else throw new Error(`unknown import benchmark flag ${args[i]}`);
  }
  const address = "me@hearth.localhost";
  const password = "bench-password-hearth";
  const { dataDir, config } = await hearthDataDir(address, password, 12);
  const caFile = `${dataDir}/tls/ca.pem`;
  const source = await startSource({
    certFile: `${dataDir}/tls/cert.pem`,
    keyFile: `${dataDir}/tls/key.pem`,
  }, keep);
  const maildir = await Deno.makeTempDir({ prefix: "hearth-bench-maildir-" });
  try {
    const messages = sourceMessages(count);
    const bytes = messages.reduce((n, m) => n + m.raw.length, 0);
    log(
      `import: filling Dovecot with ${count} messages (${
        (bytes / 1e6).toFixed(1)
      } MB) in ${sourceFolders.length} folders`,
    );
    await fillSource(source.target, messages);

    const rc = `${maildir}.mbsyncrc`;
    await Deno.writeTextFile(
      rc,
      mbsyncrc({ ...source.target, imapsPort: source.imapsPort }, caFile, maildir),
    );
    const [mbsync, mbsyncSeconds] = await timed(() =>
      new Deno.Command("mbsync", { args: ["-q", "-c", rc, "-a"], stdout: "piped", stderr: "piped" })
        .output()
    );
    if (!mbsync.success) {
      throw new Error(`mbsync failed: ${new TextDecoder().decode(mbsync.stderr)}`);
    }

    const url = `imaps://${source.target.user}@127.0.0.1:${source.imapsPort}`;
    const [imported, hearthSeconds] = await timed(async () => {
      const run = spawnImport(
        [url, "--to", address, "--data", config.dataDir, "--ca", caFile, "--password-stdin"],
        `${source.target.password}\n${password}\n`,
      );
      const [out, err] = await Promise.all([
        new Response(run.child.stdout).text(),
        new Response(run.child.stderr).text(),
      ]);
      const status = await run.done;
      if (status.code !== 0) throw new Error(`hearth import failed: ${err}${out}`);
      return out;
    });
    const n = Number(imported.match(/Imported (\d+) messages/)?.[1]);
    if (n !== count) {
      throw new Error(`hearth import copied ${n} of ${count} messages:\n${imported}`);
    }
    const row = (name: string, s: number) =>
      `${name.padEnd(14)} ${s.toFixed(2).padStart(7)} s ${
        Math.round(count / s).toString().padStart(7)
      } msg/s ${(bytes / 1e6 / s).toFixed(2).padStart(7)} MB/s`;
    console.log(
      `\nImport: ${count} messages, ${(bytes / 1e6).toFixed(1)} MB, 5 folders, from Dovecot ${
        source.target.version ?? ""
      } over TLS (loopback)`,
    );
    console.log(
      row("hearth import", hearthSeconds) + "  (end to end, incl. process start and unlock)",
    );
    console.log(row("mbsync", mbsyncSeconds) + "  (to a local maildir)");
    console.log(
      `ratio: hearth import is ${(mbsyncSeconds / hearthSeconds).toFixed(2)}x mbsync's speed`,
    );
  } finally {
    await source.stop();
    if (!keep) {
      await Deno.remove(maildir, { recursive: true }).catch(() => {});
      await Deno.remove(`${maildir}.mbsyncrc`).catch(() => {});
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  }
}

if (import.meta.main) {
  try {
    await runImportBench(Deno.args);
  } catch (err) {
    console.error(`bench: import benchmark: ${(err as Error).message}`);
    Deno.exit(1);
  }
}
