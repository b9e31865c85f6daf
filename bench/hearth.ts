/**
 * Starts the Hearth home box for the benchmark.
 *
 * TODO(lead): wire this to the real server once home/imap lands. It should: make a temporary
 * data dir, run `hearth init` and `hearth user add` (password via --password-stdin), spawn
 * `hearth home --data DIR` with the IMAP port set to `freePort()` from ./dovecot.ts (loopback
 * only), wait until a LOGIN succeeds, and return the child's pid so the benchmark can read its
 * RSS. If plaintext LOGIN is refused, set `tls: "starttls"` and `caCerts` to the CA that
 * `hearth init` wrote. `stop()` must kill the process and remove the data dir.
 */

import type { RunningTarget } from "./target.ts";

export interface HearthOptions {
  /** Keep the temporary data directory after stopping. */
  keep?: boolean;
}

// deno-lint-ignore require-await
export async function startHearth(_options: HearthOptions = {}): Promise<RunningTarget> {
  throw new Error(
    "Hearth IMAP server not wired yet (TODO in bench/hearth.ts); run with --only dovecot",
  );
}
