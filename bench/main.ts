/**
 * `deno task bench`: the IMAP benchmark (Hearth against Dovecot), then the SMTP benchmark
 * (Hearth's MX against Postfix), then the edge inbound benchmark, in one run.
 *
 *   deno task bench [--only-imap | --only-smtp | --only-edge] [IMAP flags] [--smtp-* flags]
 *                   [--edge-* flags] [--keep]
 *
 * Flags starting with --smtp- go to bench/smtp_bench.ts, --edge- to bench/edge_bench.ts,
 * --import- to bench/import_bench.ts (hearth import against mbsync), --sync- to
 * bench/sync_bench.ts (phone sync against IMAP QRESYNC, run last), --keep goes to all,
 * every other flag to bench/imap_bench.ts; each benchmark can also be run on its own file.
 */

import { runImapBench } from "./imap_bench.ts";
import { runSmtpBench } from "./smtp_bench.ts";
import { runEdgeBench } from "./edge_bench.ts";
import { runImportBench } from "./import_bench.ts";
import { runSyncBench } from "./sync_bench.ts";
import { runBackupBench } from "./backup_bench.ts";

const USAGE =
  `usage: deno task bench [--only-imap | --only-smtp | --only-edge | --only-import | --only-sync |
                  --only-backup]
                  [--keep]
  IMAP: [--messages N] [--runs N] [--only hearth|dovecot] [--seed N] [--json FILE]
  SMTP: [--smtp-messages N] [--smtp-concurrency 1,4,16] [--smtp-size BYTES]
        [--smtp-only hearth|postfix] [--smtp-rounds N] [--smtp-warmup N]
  edge: [--edge-messages N] [--edge-concurrency 1,16,64] [--edge-smtp-messages N]
        [--edge-smtp-concurrency 1,4,16] [--edge-size BYTES] [--edge-seconds S]
  import: [--import-messages N] (hearth import against mbsync, from a private Dovecot)
  sync: [--sync-messages N] [--sync-new N] [--sync-flagged N] [--sync-rounds N]
        [--sync-large N] [--sync-only hearth|dovecot] (phone sync against IMAP QRESYNC)
  backup: [--backup-messages N] (friend's-box replication and restore, against rsync)`;

interface Split {
  imap: string[] | null;
  smtp: string[] | null;
  edge: string[] | null;
  import: string[] | null;
  sync: string[] | null;
  backup: string[] | null;
}

function splitArgs(args: string[]): Split {
  const imap: string[] = [];
  const smtp: string[] = [];
  const edge: string[] = [];
  const imports: string[] = [];
  const sync: string[] = [];
  const backup: string[] = [];
  let onlySync = false;
  let onlyBackup = false;
  let onlyImport = false;
  let onlyEdge = false;
  let onlyImap = false;
  let onlySmtp = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--only-imap") onlyImap = true;
    else if (arg === "--only-smtp") onlySmtp = true;
    else if (arg === "--only-edge") onlyEdge = true;
    else if (arg === "--only-import") onlyImport = true;
    else if (arg === "--only-sync") onlySync = true;
    else if (arg === "--only-backup") onlyBackup = true;
    else if (arg.startsWith("--backup-")) {
      backup.push(arg);
      if (!arg.includes("=") && i + 1 < args.length) backup.push(args[++i]);
    } else if (arg.startsWith("--import-")) {
      // Every import flag takes a value, inline or next.
      imports.push(arg);
      if (!arg.includes("=") && i + 1 < args.length) imports.push(args[++i]);
    } else if (arg.startsWith("--sync-")) {
      // Every sync flag takes a value, inline or next.
      sync.push(arg);
      if (!arg.includes("=") && i + 1 < args.length) sync.push(args[++i]);
    } else if (arg === "-h" || arg === "--help") {
      console.log(USAGE);
      Deno.exit(0);
    } else if (arg === "--keep") {
      imap.push(arg);
      smtp.push(arg);
      edge.push(arg);
      imports.push(arg);
      sync.push(arg);
      backup.push(arg);
    } else if (arg.startsWith("--smtp-")) {
      // Every SMTP flag takes a value, inline (--smtp-messages=100) or next.
      smtp.push(arg);
      if (!arg.includes("=") && i + 1 < args.length) smtp.push(args[++i]);
    } else if (arg.startsWith("--edge-")) {
      // Every edge flag takes a value, inline or next.
      edge.push(arg);
      if (!arg.includes("=") && i + 1 < args.length) edge.push(args[++i]);
    } else {
      imap.push(arg);
    }
  }
  const onlies = [onlyImap, onlySmtp, onlyEdge, onlyImport, onlySync, onlyBackup];
  if (onlies.filter(Boolean).length > 1) {
    console.error(`bench: the --only-* flags exclude each other\n${USAGE}`);
    Deno.exit(2);
  }
  const all = !onlies.some(Boolean);
  return {
    imap: all || onlyImap ? imap : null,
    smtp: all || onlySmtp ? smtp : null,
    edge: all || onlyEdge ? edge : null,
    import: all || onlyImport ? imports : null,
    sync: all || onlySync ? sync : null,
    backup: all || onlyBackup ? backup : null,
  };
}

if (import.meta.main) {
  const { imap, smtp, edge, import: imports, sync, backup } = splitArgs(Deno.args);
  let failed = false;
  for (
    const [name, args, run] of [
      ["IMAP", imap, runImapBench],
      ["SMTP", smtp, runSmtpBench],
      ["edge", edge, runEdgeBench],
      ["import", imports, runImportBench],
      ["sync", sync, runSyncBench],
      ["backup", backup, runBackupBench],
    ] as const
  ) {
    if (args === null) continue;
    try {
      await run(args);
    } catch (err) {
      // One benchmark failing should not hide the other's figures.
      console.error(`bench: ${name} benchmark: ${(err as Error).message}`);
      failed = true;
    }
  }
  if (failed) Deno.exit(1);
}
