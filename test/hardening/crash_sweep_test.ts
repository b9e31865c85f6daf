/**
 * Crash consistency sweep: `hearth home` is SIGKILLed at a random moment
 * during mixed load (SMTP in, IMAP APPEND, STORE, EXPUNGE, MOVE), restarted,
 * and checked: every acknowledged message and flag change is there, nothing
 * acknowledged as expunged or moved away is back, a UID never names two
 * messages within a UIDVALIDITY, HIGHESTMODSEQ never goes backwards, and every
 * listed message fetches whole. 5 iterations in `deno task test`;
 * `deno task crash-sweep` runs 50 (HEARTH_CRASH_ITERATIONS).
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { type HomeProcess, startHomeProcess } from "../e2e/harness.ts";
import { RawImap } from "../e2e/raw_imap.ts";
import { RawSmtp } from "../e2e/raw_smtp.ts";

const iterations = Number(Deno.env.get("HEARTH_CRASH_ITERATIONS") ?? "5");

function messageFor(subject: string): Uint8Array {
  const filler = `${subject} body line that is long enough to matter\r\n`.repeat(
    subject.length * 13 % 400,
  );
  return new TextEncoder().encode(
    `From: load@example.org\r\nTo: me@hearth.localhost\r\nSubject: ${subject}\r\n\r\n` +
      `${filler}end of ${subject}\r\n`,
  );
}

/** What the clients were told, across every iteration. */
interface Acked {
  /** subject → mailbox it must be in ("gone" once an expunge was acknowledged). */
  place: Map<string, "INBOX" | "Archive" | "gone">;
  /** Where a message may also be while its EXPUNGE or MOVE got no answer (the kill came first). */
  maybe: Map<string, "Archive" | "gone">;
  /** subjects whose \Flagged was acknowledged. */
  flagged: Set<string>;
  /** "mailbox/uidvalidity/uid" → subject: a UID may never name another message. */
  uids: Map<string, string>;
  /** highest HIGHESTMODSEQ seen per mailbox. */
  modseq: Map<string, number>;
}

/** One IMAP client doing APPEND, STORE, EXPUNGE and MOVE until the connection dies. */
async function imapLoad(box: HomeProcess, acked: Acked, name: string, stop: () => boolean) {
  const c = await RawImap.connect(box.port);
  try {
    await c.ok(`LOGIN ${box.address} "${box.password}"`);
    await c.ok("SELECT INBOX");
    for (let i = 0; !stop(); i++) {
      const subject = `${name}-${i}`;
      const r = await c.append("INBOX", messageFor(subject));
      if (r.status !== "OK") continue;
      const uid = Number(r.text.match(/APPENDUID \d+ (\d+)/)![1]);
      acked.place.set(subject, "INBOX");
      const op = i % 4;
      if (op === 1) {
        const s = await c.command(`UID STORE ${uid} +FLAGS (\\Flagged)`);
        if (s.status === "OK") acked.flagged.add(subject);
      } else if (op === 2) {
        await c.ok(`UID STORE ${uid} +FLAGS (\\Deleted)`);
        acked.maybe.set(subject, "gone");
        const e = await c.command(`UID EXPUNGE ${uid}`);
        if (e.status === "OK") acked.place.set(subject, "gone");
      } else if (op === 3) {
        acked.maybe.set(subject, "Archive");
        const m = await c.command(`UID MOVE ${uid} Archive`);
        if (m.status === "OK") acked.place.set(subject, "Archive");
      }
      for (const box of ["INBOX", "Archive"]) {
        const st = await c.command(`STATUS ${box} (HIGHESTMODSEQ)`);
        const n = Number(
          st.untagged.map((u) => u.text).join(" ").match(/HIGHESTMODSEQ (\d+)/)?.[1],
        );
        if (st.status === "OK" && n) acked.modseq.set(box, Math.max(acked.modseq.get(box) ?? 0, n));
      }
    }
  } finally {
    c.close();
  }
}

async function smtpLoad(box: HomeProcess, acked: Acked, name: string, stop: () => boolean) {
  for (let i = 0; !stop(); i++) {
    const c = await RawSmtp.connect(box.mxPort!, 5000);
    try {
      await c.command("EHLO load.example");
      await c.command("MAIL FROM:<load@example.org>");
      await c.command(`RCPT TO:<${box.address}>`);
      const subject = `${name}-${i}`;
      const raw = new TextDecoder().decode(messageFor(subject));
      const r = await c.data(raw + ".\r\n");
      if (r.code === 250) acked.place.set(subject, "INBOX");
    } finally {
      c.close();
    }
  }
}

/** Reads both mailboxes after a restart and checks every invariant. */
async function check(box: HomeProcess, acked: Acked, round: number) {
  const c = await RawImap.connect(box.port);
  try {
    await c.ok(`LOGIN ${box.address} "${box.password}"`);
    const found = new Map<string, { mailbox: string; flagged: boolean }>();
    for (const mailbox of ["INBOX", "Archive"]) {
      const sel = await c.ok(`SELECT ${mailbox} (CONDSTORE)`);
      const text = sel.untagged.map((u) => u.text).join("\n");
      const validity = text.match(/UIDVALIDITY (\d+)/)![1];
      const highest = Number(text.match(/HIGHESTMODSEQ (\d+)/)![1]);
      const before = acked.modseq.get(mailbox) ?? 0;
      assert(highest >= before, `round ${round}: ${mailbox} HIGHESTMODSEQ ${highest} < ${before}`);
      acked.modseq.set(mailbox, highest);
      const bodies = await c.fetchAllBodies();
      const flags = await c.ok("UID FETCH 1:* (UID FLAGS)");
      const flaggedUids = new Set(
        flags.untagged.filter((u) => u.text.includes("\\Flagged")).map((u) =>
          Number(u.text.match(/UID (\d+)/)![1])
        ),
      );
      for (const [uid, body] of bodies) {
        const text = new TextDecoder().decode(body);
        const subject = text.match(/^Subject: (.*)\r$/m)?.[1];
        if (!subject?.includes("-")) continue; // the fixture messages
        // Whole: the object is the message as sent, not a prefix of it.
        // (mail that came by SMTP carries the MX's trace fields on top)
        const sent = new TextDecoder().decode(messageFor(subject));
        assert(text.endsWith(sent), `round ${round}: ${subject} is damaged`);
        const key = `${mailbox}/${validity}/${uid}`;
        const prior = acked.uids.get(key);
        assert(
          !prior || prior === subject,
          `round ${round}: UID ${key} named ${prior}, now ${subject}`,
        );
        acked.uids.set(key, subject);
        assert(!found.has(subject), `round ${round}: ${subject} listed twice`);
        found.set(subject, { mailbox, flagged: flaggedUids.has(uid) });
      }
    }
    for (const [subject, place] of acked.place) {
      const f = found.get(subject);
      const maybe = acked.maybe.get(subject);
      if (maybe === "gone" && !f) continue;
      if (maybe === "Archive" && f?.mailbox === "Archive") continue;
      if (place === "gone") {
        assert(!f, `round ${round}: expunged ${subject} is back in ${f?.mailbox}`);
        continue;
      }
      assert(f, `round ${round}: acknowledged ${subject} is missing`);
      assertEquals(f.mailbox, place, `round ${round}: ${subject} in ${f.mailbox}, not ${place}`);
      if (acked.flagged.has(subject)) {
        assert(f.flagged, `round ${round}: ${subject} lost \\Flagged`);
      }
    }
    // What the crash cut short may or may not have happened; take the box's word from now on.
    for (const [subject, f] of found) acked.place.set(subject, f.mailbox as "INBOX" | "Archive");
    for (const [subject, place] of acked.place) {
      if (place !== "gone" && !found.has(subject)) acked.place.delete(subject);
    }
    acked.maybe.clear();
  } finally {
    c.close();
  }
}

Deno.test({
  name: `SIGKILL during mixed load loses nothing acknowledged (${iterations} rounds)`,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const box = await startHomeProcess({ messages: [] });
    const acked: Acked = {
      place: new Map(),
      maybe: new Map(),
      flagged: new Set(),
      uids: new Map(),
      modseq: new Map(),
    };
    let stats = "";
    try {
      const setup = await RawImap.connect(box.port);
      await setup.ok(`LOGIN ${box.address} "${box.password}"`);
      await setup.command("CREATE Archive"); // a new account may have it already
      setup.close();
      for (let round = 0; round < iterations; round++) {
        let stopped = false;
        const stop = () => stopped;
        const load = [
          imapLoad(box, acked, `r${round}a`, stop),
          imapLoad(box, acked, `r${round}b`, stop),
          smtpLoad(box, acked, `r${round}s`, stop),
          smtpLoad(box, acked, `r${round}t`, stop),
        ].map((p) => p.catch(() => {})); // the kill cuts every client off
        await new Promise((r) => setTimeout(r, 300 + Math.random() * 1200));
        const status = await box.kill("SIGKILL");
        stopped = true;
        assertEquals(status.signal, "SIGKILL");
        await Promise.all(load);
        await box.restart();
        await check(box, acked, round);
        stats = `${acked.place.size} messages, ${acked.flagged.size} flagged, ` +
          `${[...acked.place.values()].filter((p) => p === "gone").length} expunged`;
      }
      console.log(`after ${iterations} kills: ${stats}`);
    } catch (e) {
      console.error(box.stderr());
      throw e;
    } finally {
      await box.stop();
    }
  },
});
