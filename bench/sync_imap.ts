/**
 * The IMAP side of the phone sync benchmark (bench/sync_bench.ts): a private Dovecot holding the
 * same messages, the same change set applied by one client, and another client resynchronising
 * with QRESYNC (RFC 7162) and without it. Bytes are every byte of the resyncing client's commands
 * and of the server's responses after LOGIN; round trips are commands awaited one after another.
 *
 * @example
 * ```ts
 * const r = await runImapResync({ messages, change, flagged: 200, seed: 1, keep: false });
 * console.log(r.qresync.bodyIn);
 * ```
 */

import { log } from "./report.ts";
import { Prng } from "./corpus.ts";
import { startDovecot } from "./dovecot.ts";
import { type CommandResult, ImapClient } from "./imap_client.ts";

/** Bytes and round trips of one exchange, one way of counting for both protocols. */
export interface Traffic {
  /** Application payload: HTTP bodies (uncompressed); for IMAP, every byte after LOGIN. */
  bodyOut: number;
  bodyIn: number;
  /** HTTP request/status lines and header lines (IMAP has none: 0). */
  headOut: number;
  headIn: number;
  roundTrips: number;
  ms: number;
}

export const zero = (): Traffic => ({
  bodyOut: 0,
  bodyIn: 0,
  headOut: 0,
  headIn: 0,
  roundTrips: 0,
  ms: 0,
});
export const total = (t: Traffic) => t.bodyOut + t.bodyIn + t.headOut + t.headIn;
export interface ImapResult {
  version?: string;
  loadMs: number;
  login: Traffic;
  qresync: Traffic;
  qresyncIdle: Traffic;
  full: Traffic;
  checks: string[];
}

/** Runs commands one after the other and counts their bytes both ways. */
async function counted(
  client: ImapClient,
  commands: string[],
): Promise<{ traffic: Traffic; results: CommandResult[] }> {
  const traffic = zero();
  const results: CommandResult[] = [];
  const started = performance.now();
  for (const command of commands) {
    const r = await client.command(command, { collect: true });
    traffic.bodyOut += new TextEncoder().encode(`${r.tag} ${command}\r\n`).length;
    traffic.bodyIn += r.bytes;
    traffic.roundTrips++;
    results.push(r);
  }
  traffic.ms = performance.now() - started;
  return { traffic, results };
}

function code(results: CommandResult[], name: string): number {
  for (const r of results) {
    for (const u of r.untagged) {
      const m = u.text.match(new RegExp(`\\[${name} (\\d+)\\]`, "i"));
      if (m) return Number(m[1]);
    }
  }
  throw new Error(`no ${name} in the SELECT response`);
}

export interface ImapResyncOptions {
  /** The mailbox before the change set. */
  messages: Uint8Array[];
  /** The new messages of the change set. */
  change: Uint8Array[];
  /** How many of `messages` get `\Seen`, picked at random with `seed`. */
  flagged: number;
  seed: number;
  keep: boolean;
}

/** Loads Dovecot, applies the change set, and measures both kinds of resync and an idle one. */
export async function runImapResync(options: ImapResyncOptions): Promise<ImapResult> {
  const { messages: base, change } = options;
  const dovecot = await startDovecot({ keep: options.keep, noFsync: true });
  const { target } = dovecot;
  const connect = async () => {
    const c = await ImapClient.connect(target);
    await c.login(target.user, target.password);
    return c;
  };
  try {
    const loader = await connect();
    const loadStarted = performance.now();
    log(`dovecot: loading ${base.length} messages`);
    await loader.appendAll("INBOX", base, 64);
    const loadMs = performance.now() - loadStarted;

    // The client's cache before the change set: UIDVALIDITY, HIGHESTMODSEQ, UIDNEXT.
    const before = await counted(loader, ["ENABLE QRESYNC", "SELECT INBOX"]);
    const uidValidity = code(before.results, "UIDVALIDITY");
    const modseq = code(before.results, "HIGHESTMODSEQ");
    const uidNext = code(before.results, "UIDNEXT");
    const uids = (await loader.command("UID SEARCH ALL")).untagged
      .flatMap((u) => u.text.match(/^\* SEARCH (.*)$/)?.[1].trim().split(" ").map(Number) ?? []);

    // The change set, from another client.
    for (const raw of change) await loader.append("INBOX", raw);
    const pick = new Prng(options.seed ^ 0xf1a9).sample(uids.length, options.flagged);
    await loader.command(`UID STORE ${pick.map((i) => uids[i]).join(",")} +FLAGS.SILENT (\\Seen)`);
    await loader.logout();

    const checks: string[] = [];
    // The login, for reference (not in the resync figures).
    const loginStarted = performance.now();
    const q = await ImapClient.connect(target);
    const loginResult = await q.login(target.user, target.password);
    const login: Traffic = {
      ...zero(),
      bodyIn: loginResult.bytes,
      bodyOut: `${loginResult.tag} LOGIN "${target.user}" "${target.password}"\r\n`.length,
      roundTrips: 1,
      ms: performance.now() - loginStarted,
    };
    // (1) QRESYNC (RFC 7162 §3.2.5): changed flags and VANISHED in SELECT, then the new messages.
    const qr = await counted(q, [
      "ENABLE QRESYNC",
      `SELECT INBOX (QRESYNC (${uidValidity} ${modseq}))`,
      `UID FETCH ${uidNext}:* (ENVELOPE FLAGS BODYSTRUCTURE)`,
    ]);
    const changedFetches = qr.results[1].untagged.filter((u) => / FETCH /.test(u.text)).length;
    const newFetches = qr.results[2].untaggedCount;
    if (newFetches !== change.length) checks.push(`QRESYNC fetched ${newFetches} new messages`);
    if (changedFetches < options.flagged) checks.push(`QRESYNC SELECT: ${changedFetches} changes`);
    const idleState = [
      code(qr.results, "UIDVALIDITY"),
      code(qr.results, "HIGHESTMODSEQ"),
    ];
    await q.logout();

    // Idle resync: the same client reconnects when nothing changed.
    const idleClient = await connect();
    const idle = await counted(idleClient, [
      "ENABLE QRESYNC",
      `SELECT INBOX (QRESYNC (${idleState[0]} ${idleState[1]}))`,
    ]);
    await idleClient.logout();

    // (2) Without QRESYNC: every message's flags, then what is new.
    const f = await connect();
    const full = await counted(f, [
      "SELECT INBOX",
      "UID FETCH 1:* (FLAGS)",
      `UID FETCH ${uidNext}:* (ENVELOPE FLAGS BODYSTRUCTURE)`,
    ]);
    const flagFetches = full.results[1].untaggedCount;
    if (flagFetches !== base.length + change.length) {
      checks.push(`FETCH 1:* (FLAGS) returned ${flagFetches}`);
    }
    const seen = full.results[1].untagged.filter((u) => /\\Seen/.test(u.text)).length;
    if (seen !== options.flagged) {
      checks.push(`${seen} messages \\Seen, expected ${options.flagged}`);
    }
    await f.logout();
    return {
      version: target.version,
      loadMs,
      login,
      qresync: qr.traffic,
      qresyncIdle: idle.traffic,
      full: full.traffic,
      checks,
    };
  } finally {
    await dovecot.stop();
  }
}
