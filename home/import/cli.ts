/**
 * The `hearth import` command: reads the two passwords, unlocks the Hearth
 * account, connects to the source, and prints the progress and a summary.
 *
 * @example
 * ```ts
 * await runImportCommand(config, { url: "imaps://me@imap.example.org", to: "me@example.org" });
 * ```
 */
import type { HearthConfig } from "../../src/config.ts";
import { UsageError } from "../../src/errors.ts";
import { openStore } from "../box.ts";
import { lockDataDir } from "../lock.ts";
import { AccountRegistry, loginKey } from "../store/accounts.ts";
import { connectSource, listSourceFolders, parseSourceUrl } from "./source.ts";
import { countSource, importAccount, type ImportSummary } from "./import.ts";
import { duration, mb } from "./progress.ts";
import { log } from "../../src/log.ts";

export const importUsage =
  "usage: hearth import imaps://USER@HOST[:PORT] --to ADDRESS [--dry-run] [--password-stdin] " +
  "[--ca FILE] [--progress-every SECONDS]";

export interface ImportCommand {
  url?: string;
  to?: string;
  dryRun?: boolean;
  /** Two lines on standard input: the source password, then the Hearth account's. */
  passwordStdin?: boolean;
  /** PEM file of a CA to trust for the source's certificate. */
  ca?: string;
  /** Seconds between progress lines when standard error is not a terminal (default 2). */
  progressEvery?: string;
}

async function stdinLines(): Promise<string[]> {
  const text = await new Response(Deno.stdin.readable).text();
  return text.split(/\r?\n/);
}

function ask(question: string, what: string): string {
  if (!Deno.stdin.isTerminal()) {
    throw new UsageError(
      `no terminal to ask for ${what}; pass --password-stdin (source password, then Hearth ` +
        `password, one per line) or set HEARTH_IMPORT_SOURCE_PASSWORD and HEARTH_IMPORT_PASSWORD`,
    );
  }
  const answer = prompt(question);
  if (!answer) throw new UsageError(`no ${what} given`);
  return answer;
}

export async function runImportCommand(config: HearthConfig, cmd: ImportCommand): Promise<void> {
  if (!cmd.url) throw new UsageError(importUsage);
  const url = parseSourceUrl(cmd.url);
  // The store's info lines (account unlocked…) would interleave with the progress bar.
  if (!Deno.env.get("HEARTH_LOG")) log.setLevel("warn");
  if (!cmd.dryRun && !cmd.to) {
    throw new UsageError(`--to ADDRESS names the Hearth account to import into; ${importUsage}`);
  }
  const everySeconds = cmd.progressEvery === undefined ? 2 : Number(cmd.progressEvery);
  if (!(everySeconds >= 0)) throw new UsageError("--progress-every takes a number of seconds");
  const ca = cmd.ca ? await readCa(cmd.ca) : undefined;

  let sourcePassword = url.password ?? Deno.env.get("HEARTH_IMPORT_SOURCE_PASSWORD");
  let hearthPassword = Deno.env.get("HEARTH_IMPORT_PASSWORD");
  if (cmd.passwordStdin) {
    const lines = await stdinLines();
    sourcePassword = lines[0] || sourcePassword;
    hearthPassword = lines[1] || hearthPassword;
  }
  sourcePassword ??= ask(`Password of ${url.user} at ${url.host}:`, "the source password");

  const progress = { tty: Deno.stderr.isTerminal(), everyMs: everySeconds * 1000 };
  if (progress.tty) progress.everyMs = Math.min(progress.everyMs, 200);

  if (cmd.dryRun) {
    const client = await connectSource(url, sourcePassword, { ca });
    try {
      const summary = await countSource(client, await listSourceFolders(client));
      printCounts(summary);
      console.log(
        `Dry run: ${summary.messages} messages (${mb(summary.bytes)} MB) in ` +
          `${summary.folders.length} folders would be copied; nothing was written.`,
      );
    } finally {
      await client.logout().catch(() => {});
    }
    return;
  }

  const address = cmd.to!;
  hearthPassword ??= ask(`Password of ${address} (the Hearth account):`, "the Hearth password");
  // One writer per account: a running home box must not serve this account meanwhile.
  let lock;
  try {
    lock = await lockDataDir(config.dataDir);
  } catch (e) {
    throw new UsageError(
      `${(e as Error).message} (hearth import writes into the store directly, so the home box ` +
        `must be stopped while it runs)`,
    );
  }
  const { kv, blobs } = await openStore(config).catch((e) => {
    lock.release();
    throw e;
  });
  const registry = new AccountRegistry(kv, blobs);
  try {
    if (!(await kv.get(["login", await loginKey(address)])).value) {
      throw new UsageError(`there is no account for ${address}; create it with "hearth user add"`);
    }
    const login = await registry.login(address, hearthPassword, "import");
    if ("failure" in login) {
      throw new UsageError(`that password does not open the Hearth account ${address}`);
    }
    const store = login.store;
    const client = await connectSource(url, sourcePassword, { ca });
    try {
      const folders = await listSourceFolders(client);
      const summary = await importAccount({
        client,
        folders,
        target: { store, kv, sourceId: url.id },
        progress,
      });
      printCounts(summary);
      printSummary(summary);
    } finally {
      await client.logout().catch(() => {});
      registry.release(store);
    }
  } finally {
    await registry.close();
    kv.close();
    lock.release();
  }
}

async function readCa(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    throw new UsageError(`cannot read the CA file ${path}: ${(e as Error).message}`);
  }
}

function printCounts(s: ImportSummary) {
  for (const f of s.folders) {
    const use = f.specialUse ? ` (${f.specialUse})` : "";
    const extra = [
      f.already ? `${f.already} copied before` : "",
      f.skipped ? `${f.skipped} skipped` : "",
    ].filter(Boolean).join(", ");
    console.log(
      `  ${f.path} -> ${f.target}${use}: ${f.messages} messages, ${mb(f.bytes)} MB` +
        (extra ? ` (${extra})` : ""),
    );
  }
}

function printSummary(s: ImportSummary) {
  const secs = Math.max(s.seconds, 0.001);
  console.log(
    `Imported ${s.messages} messages (${mb(s.bytes)} MB) from ${s.folders.length} folders in ` +
      `${duration(s.seconds)} (${Math.round(s.messages / secs)} msg/s, ${
        mb(s.bytes / secs)
      } MB/s); ${s.already} copied by an earlier run, ${s.skipped} skipped.`,
  );
}
