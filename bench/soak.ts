/**
 * Soak: mixed traffic against a home box in its own process for N minutes
 * (`deno task soak`, 30 by default; `--minutes 2` in CI), with the crash
 * sweep's invariants checked at the end: every acknowledged message and flag
 * is there, no UID names two messages, HIGHESTMODSEQ never went backwards.
 * Prints throughput, errors and the box's memory every interval.
 *
 * Clients: SMTP senders to the MX, IMAP clients doing APPEND, STORE, FETCH and
 * EXPUNGE, and an IDLE-less poller (SELECT + FETCH FLAGS), each on its own
 * connections. With `--steady N` a janitor expunges all but the newest N
 * messages every few seconds, so the mailbox stays the same size: memory that
 * still grows then is a leak, not the mailbox.
 */
import { parseArgs } from "node:util";
import { RawImap } from "../test/e2e/raw_imap.ts";
import { RawSmtp } from "../test/e2e/raw_smtp.ts";
import { spawnBox } from "../test/hardening/box_process.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    minutes: { type: "string", default: "30" },
    interval: { type: "string", default: "10" },
    steady: { type: "string" },
  },
});
const keep = values.steady === undefined ? null : Number(values.steady);
const durationMs = Number(values.minutes) * 60_000;
const intervalMs = Number(values.interval) * 1000;
const mb = (n: number) => `${(n / 1024 / 1024).toFixed(0)} MB`;

const counts = { smtp: 0, append: 0, store: 0, expunge: 0, fetch: 0, errors: 0 };
const errors: string[] = [];
const acked = new Map<string, "present" | "gone">();
const flagged = new Set<string>();
let highestModseq = 0;
let stopped = false;

function message(subject: string): string {
  return `From: soak@example.org\r\nTo: me@hearth.localhost\r\nSubject: ${subject}\r\n\r\n` +
    `${subject} body\r\n`.repeat(20 + subject.length % 200);
}
function fail(where: string, e: unknown) {
  counts.errors++;
  if (errors.length < 20) errors.push(`${where}: ${(e as Error).message ?? e}`);
}

const box = await spawnBox();
const { port, mxPort, address, password } = box.ports;

async function smtpClient(name: string) {
  for (let i = 0; !stopped; i++) {
    try {
      const c = await RawSmtp.connect(mxPort, 30_000);
      try {
        await c.command("EHLO soak.example");
        for (let j = 0; j < 5 && !stopped; j++) {
          const subject = `${name}-${i}-${j}`;
          await c.command("MAIL FROM:<soak@example.org>");
          await c.command(`RCPT TO:<${address}>`);
          const r = await c.data(message(subject) + ".\r\n");
          if (r.code !== 250) throw new Error(`DATA → ${r.code} ${r.text}`);
          acked.set(subject, "present");
          counts.smtp++;
        }
        await c.command("QUIT");
      } finally {
        c.close();
      }
    } catch (e) {
      fail(name, e);
    }
  }
}

async function imapClient(name: string) {
  while (!stopped) {
    try {
      const c = await RawImap.connect(port);
      try {
        await c.ok(`LOGIN ${address} "${password}"`);
        await c.ok("SELECT INBOX");
        for (let i = 0; i < 200 && !stopped; i++) {
          const subject = `${name}-${Date.now()}-${i}`;
          const r = await c.append("INBOX", new TextEncoder().encode(message(subject)));
          if (r.status !== "OK") throw new Error(`APPEND → ${r.status} ${r.text}`);
          acked.set(subject, "present");
          counts.append++;
          const uid = Number(r.text.match(/APPENDUID \d+ (\d+)/)![1]);
          if (i % 3 === 0) {
            await c.ok(`UID STORE ${uid} +FLAGS (\\Flagged)`);
            flagged.add(subject);
            counts.store++;
          } else if (i % 3 === 1) {
            await c.ok(`UID STORE ${uid} +FLAGS (\\Deleted)`);
            await c.ok(`UID EXPUNGE ${uid}`);
            acked.set(subject, "gone");
            counts.expunge++;
          }
          // Another client may expunge one of uid:* meanwhile: NO [EXPUNGEISSUED] is the
          // server's right answer then (RFC 2180 §4.1.2), not an error.
          const f = await c.command(`UID FETCH ${uid}:* (FLAGS BODY.PEEK[HEADER])`);
          if (f.status !== "OK" && !f.text.startsWith("[EXPUNGEISSUED]")) {
            throw new Error(`UID FETCH ${uid}:* → ${f.status} ${f.text}`);
          }
          counts.fetch++;
        }
        await c.command("LOGOUT");
      } finally {
        c.close();
      }
    } catch (e) {
      fail(name, e);
    }
  }
}

/** `--steady N`: expunges all but the newest N messages of INBOX every 5 s. */
async function janitor(keep: number) {
  while (!stopped) {
    await new Promise((r) => setTimeout(r, 5_000));
    if (stopped) break;
    try {
      const c = await RawImap.connect(port);
      try {
        await c.ok(`LOGIN ${address} "${password}"`);
        const sel = await c.ok("SELECT INBOX");
        const next = Number(sel.untagged.map((u) => u.text).join(" ").match(/UIDNEXT (\d+)/)![1]);
        const upto = next - 1 - keep;
        if (upto < 1) continue;
        const r = await c.ok(`UID FETCH 1:${upto} (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])`);
        const subjects = r.untagged.flatMap((u) => {
          const s = new TextDecoder().decode(u.literals[0] ?? new Uint8Array()).match(
            /Subject: (\S+)/,
          )?.[1];
          return s ? [s] : [];
        });
        await c.ok(`UID STORE 1:${upto} +FLAGS.SILENT (\\Deleted)`);
        await c.ok(`UID EXPUNGE 1:${upto}`);
        for (const s of subjects) acked.set(s, "gone");
        counts.expunge += subjects.length;
      } finally {
        c.close();
      }
    } catch (e) {
      fail("janitor", e);
    }
  }
}

async function modseqWatcher() {
  while (!stopped) {
    try {
      const c = await RawImap.connect(port);
      try {
        await c.ok(`LOGIN ${address} "${password}"`);
        for (let i = 0; i < 100 && !stopped; i++) {
          const st = await c.ok("STATUS INBOX (HIGHESTMODSEQ MESSAGES)");
          const n = Number(st.untagged[0].text.match(/HIGHESTMODSEQ (\d+)/)![1]);
          if (n < highestModseq) {
            throw new Error(`HIGHESTMODSEQ went back: ${n} < ${highestModseq}`);
          }
          highestModseq = n;
          await new Promise((r) => setTimeout(r, 500));
        }
      } finally {
        c.close();
      }
    } catch (e) {
      fail("modseq", e);
    }
  }
}

async function finalCheck(): Promise<string[]> {
  const problems: string[] = [];
  const c = await RawImap.connect(port);
  try {
    await c.ok(`LOGIN ${address} "${password}"`);
    const sel = await c.ok("SELECT INBOX (CONDSTORE)");
    const hm = Number(sel.untagged.map((u) => u.text).join(" ").match(/HIGHESTMODSEQ (\d+)/)![1]);
    if (hm < highestModseq) problems.push(`HIGHESTMODSEQ ${hm} < ${highestModseq}`);
    const r = await c.ok("UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])");
    const seen = new Map<string, boolean>();
    const uids = new Set<number>();
    for (const u of r.untagged) {
      const uid = Number(u.text.match(/UID (\d+)/)?.[1]);
      if (uids.has(uid)) problems.push(`UID ${uid} listed twice`);
      uids.add(uid);
      const subject = new TextDecoder().decode(u.literals[0] ?? new Uint8Array()).match(
        /Subject: (\S+)/,
      )?.[1];
      if (subject) seen.set(subject, u.text.includes("\\Flagged"));
    }
    for (const [subject, state] of acked) {
      if (state === "present" && !seen.has(subject)) problems.push(`missing ${subject}`);
      if (state === "gone" && seen.has(subject)) problems.push(`expunged ${subject} is back`);
      if (flagged.has(subject) && seen.get(subject) === false) {
        problems.push(`${subject} lost \\Flagged`);
      }
    }
  } finally {
    c.close();
  }
  return problems.slice(0, 20);
}

const started = Date.now();
const startRss = await box.rssBytes();
let peakRss = startRss;
console.log(
  `soak: ${values.minutes} min against a home box (pid ${box.pid}), RSS ${mb(startRss)}` +
    (keep === null ? "" : `, INBOX kept at ${keep} messages`),
);
const clients = [
  smtpClient("smtp1"),
  smtpClient("smtp2"),
  imapClient("imap1"),
  imapClient("imap2"),
  imapClient("imap3"),
  modseqWatcher(),
  ...(keep === null ? [] : [janitor(keep)]),
];
let last = { ...counts };
while (Date.now() - started < durationMs) {
  await new Promise((r) =>
    setTimeout(r, Math.min(intervalMs, durationMs - (Date.now() - started)))
  );
  const rss = await box.rssBytes();
  peakRss = Math.max(peakRss, rss);
  const secs = intervalMs / 1000;
  const rate = (k: keyof typeof counts) => ((counts[k] - last[k]) / secs).toFixed(1);
  console.log(
    `t=${Math.round((Date.now() - started) / 1000)}s smtp ${rate("smtp")}/s append ${
      rate("append")
    }/s store ${rate("store")}/s expunge ${rate("expunge")}/s fetch ${
      rate("fetch")
    }/s errors ${counts.errors} RSS ${mb(rss)}`,
  );
  last = { ...counts };
}
stopped = true;
await Promise.all(clients);
const problems = await finalCheck();
const endRss = await box.rssBytes();
await box.stop();
const total = (Date.now() - started) / 1000;
console.log(
  `soak done in ${
    total.toFixed(0)
  } s: ${counts.smtp} SMTP, ${counts.append} APPEND, ${counts.store} STORE, ` +
    `${counts.expunge} EXPUNGE, ${counts.fetch} FETCH; ${counts.errors} errors; ` +
    `RSS start ${mb(startRss)}, peak ${mb(peakRss)}, end ${mb(endRss)}; ` +
    `${problems.length} consistency problems`,
);
for (const e of errors) console.log(`error: ${e}`);
for (const p of problems) console.log(`problem: ${p}`);
// Exit 1: a promise broken (lost, doubled or changed data); 3: protocol errors only.
if (problems.length) Deno.exit(1);
if (counts.errors) Deno.exit(3);
