/**
 * `deno task bench`: the IMAP benchmark (Hearth against Dovecot), then the SMTP benchmark
 * (Hearth's MX against Postfix), in one run.
 *
 *   deno task bench [--only-imap | --only-smtp] [IMAP flags] [--smtp-* flags] [--keep]
 *
 * Flags starting with --smtp- go to bench/smtp_bench.ts, --keep goes to both, every other flag
 * to bench/imap_bench.ts; each benchmark can also be run on its own file.
 */

import { runImapBench } from "./imap_bench.ts";
import { runSmtpBench } from "./smtp_bench.ts";

const USAGE = `usage: deno task bench [--only-imap | --only-smtp] [--keep]
  IMAP: [--messages N] [--runs N] [--only hearth|dovecot] [--seed N] [--json FILE]
  SMTP: [--smtp-messages N] [--smtp-concurrency 1,4,16] [--smtp-size BYTES]
        [--smtp-only hearth|postfix]`;

interface Split {
  imap: string[] | null;
  smtp: string[] | null;
}

function splitArgs(args: string[]): Split {
  const imap: string[] = [];
  const smtp: string[] = [];
  let onlyImap = false;
  let onlySmtp = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--only-imap") onlyImap = true;
    else if (arg === "--only-smtp") onlySmtp = true;
    else if (arg === "-h" || arg === "--help") {
      console.log(USAGE);
      Deno.exit(0);
    } else if (arg === "--keep") {
      imap.push(arg);
      smtp.push(arg);
    } else if (arg.startsWith("--smtp-")) {
      // Every SMTP flag takes a value, inline (--smtp-messages=100) or next.
      smtp.push(arg);
      if (!arg.includes("=") && i + 1 < args.length) smtp.push(args[++i]);
    } else {
      imap.push(arg);
    }
  }
  if (onlyImap && onlySmtp) {
    console.error(`bench: --only-imap and --only-smtp exclude each other\n${USAGE}`);
    Deno.exit(2);
  }
  return { imap: onlySmtp ? null : imap, smtp: onlyImap ? null : smtp };
}

if (import.meta.main) {
  const { imap, smtp } = splitArgs(Deno.args);
  let failed = false;
  for (
    const [name, args, run] of [["IMAP", imap, runImapBench], ["SMTP", smtp, runSmtpBench]] as const
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
