/**
 * Crash consistency sweep: `hearth home` is SIGKILLed at a random moment
 * during mixed load (SMTP in, IMAP APPEND, STORE, EXPUNGE, MOVE, mail pulled
 * from a linked edge, and a paired phone's flag changes through the edge's
 * relay), restarted, and checked: every acknowledged message and flag change
 * is there, nothing acknowledged as expunged or moved away is back, every
 * message the edge acknowledged arrived exactly once, every flag change the
 * phone handed to the relay is applied, a UID never names two messages within
 * a UIDVALIDITY, HIGHESTMODSEQ never goes backwards, and every listed message
 * fetches whole. 5 iterations in `deno task test`; `deno task crash-sweep`
 * runs 50 (HEARTH_CRASH_ITERATIONS).
 *
 * The edge runs in this process (it is not killed); the phone is paired with
 * `hearth phone pair`, as an owner would (HEARTH_CRASH_PHONE=0 leaves it out).
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { type Edge, startEdge } from "../../edge/main.ts";
import { log } from "../../src/log.ts";
import type { Phone } from "../../sync/phone/client.ts";
import { type HomeProcess, startHomeProcess, waitFor } from "../e2e/harness.ts";
import { pairPhone } from "../e2e/phone_pairing.ts";
import { RawImap } from "../e2e/raw_imap.ts";
import { RawSmtp } from "../e2e/raw_smtp.ts";

/** The keyword the phone sets. */
const phoneFlag = "$Phone";

const iterations = Number(Deno.env.get("HEARTH_CRASH_ITERATIONS") ?? "5");
/**
 * A paired phone's flag changes in the mix (HEARTH_CRASH_PHONE=0 leaves them out). They found
 * five ways a crash or a locked restart lost a phone's change or undid an IMAP flag
 * (docs/reliability.md); each is fixed, with a test in test/home/sync_host_test.ts or
 * test/sync/peer_test.ts.
 */
const withPhone = Deno.env.get("HEARTH_CRASH_PHONE") !== "0";

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
  /** subjects the edge acknowledged with 250 (each must be at home exactly once). */
  viaEdge: Set<string>;
  /** EMAILIDs (RFC 8474) the phone set {@linkcode phoneFlag} on. */
  phoneFlagged: Set<string>;
  /** How many of those the last check found (not expunged since). */
  phoneChecked: number;
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

/** SMTP to the home box's MX, or (`edge`) to the edge's front: the edge stays up. */
async function smtpLoad(
  box: HomeProcess,
  acked: Acked,
  name: string,
  stop: () => boolean,
  edge?: Edge,
) {
  for (let i = 0; !stop(); i++) {
    const c = await RawSmtp.connect(edge ? edge.smtpPort! : box.mxPort!, 5000);
    try {
      await c.command("EHLO load.example");
      await c.command("MAIL FROM:<load@example.org>");
      await c.command(`RCPT TO:<${box.address}>`);
      const subject = `${name}-${i}`;
      const raw = new TextDecoder().decode(messageFor(subject));
      const r = await c.data(raw + ".\r\n");
      if (r.code === 250) {
        acked.place.set(subject, "INBOX");
        if (edge) acked.viaEdge.add(subject);
      }
    } finally {
      c.close();
    }
    // The edge is never killed: pace its sender so the round does not become all edge mail.
    if (edge) await new Promise((r) => setTimeout(r, 40));
  }
}

/**
 * The phone: syncs through the edge (the home box may be down), adds {@linkcode phoneFlag} to
 * a few INBOX messages, and syncs again.
 * The flags it sends are the ones it has plus its own, so it never clears another client's.
 */
async function phoneLoad(phone: Phone, acked: Acked, stop: () => boolean) {
  while (!stop()) {
    try {
      await phone.sync();
      const targets = phone.list("INBOX")
        .filter((m) => !m.pending && !m.flags.includes(phoneFlag))
        .slice(0, 3);
      for (const m of targets) await phone.flag(m.id, [...m.flags, phoneFlag]);
      await phone.sync();
      for (const m of targets) acked.phoneFlagged.add(emailId(m.blob));
    } catch { /* an exchange cut short: its changes go with the next one */ }
    await new Promise((r) => setTimeout(r, 150));
  }
}

/** The EMAILID the home's IMAP server gives the message with this blob (RFC 8474 §5.1). */
function emailId(blob: string): string {
  return `M${blob.slice(0, 24)}`;
}

/** Items the edge still holds for its (one) home. */
async function waitingAtEdge(edge: Edge): Promise<number> {
  let n = 0;
  for (const home of await edge.store.homeIds()) {
    n += (await edge.store.list(home, 1000)).items.length;
  }
  return n;
}

/** Every message's flags by EMAILID, in both mailboxes. */
async function flagsByEmailId(c: RawImap): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const mailbox of ["INBOX", "Archive"]) {
    await c.ok(`EXAMINE ${mailbox}`);
    const r = await c.ok("UID FETCH 1:* (FLAGS EMAILID)");
    for (const u of r.untagged) {
      const id = u.text.match(/EMAILID \(([^)\s]+)\)/)?.[1];
      if (id) out.set(id, u.text.match(/FLAGS \(([^)]*)\)/)?.[1] ?? "");
    }
  }
  return out;
}

/** Reads both mailboxes after a restart and checks every invariant. */
async function check(box: HomeProcess, acked: Acked, round: number, phone: Phone | null) {
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
    // Sync converges while both sides keep exchanging (a phone syncs on every push): every
    // change the phone made reaches the restarted home, on every message still there. A sync
    // that returned has not necessarily carried its changes yet (the Automerge protocol may
    // first need the home's heads), so the phone goes on syncing here.
    let missing: string[] = [];
    if (phone) {
      try {
        await waitFor("the phone's flag changes at home", 20_000, async () => {
          await phone.sync({ flush: true }).catch(() => {});
          const flags = await flagsByEmailId(c);
          const present = [...acked.phoneFlagged].filter((id) => flags.has(id));
          missing = present.filter((id) => !flags.get(id)!.split(" ").includes(phoneFlag));
          acked.phoneChecked = present.length;
          return missing.length === 0;
        }, 250);
      } catch {
        assert(false, `round ${round}: the phone's ${phoneFlag} is missing on ${missing}`);
      }
    }
  } finally {
    c.close();
  }
}

Deno.test({
  name: `SIGKILL during mixed load with edge pulls${
    withPhone ? " and phone sync" : ""
  } loses nothing (${iterations} rounds)`,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // The in-process edge's info lines would bury the output; HEARTH_LOG=info brings them back.
    if (!Deno.env.get("HEARTH_LOG")) log.setLevel("warn");
    const edgeDir = await Deno.makeTempDir({ prefix: "hearth-sweep-edge-" });
    const edge = await startEdge({
      dataDir: edgeDir,
      hostname: "edge.localhost",
      listen: "127.0.0.1",
      httpPort: 0,
      smtpPort: 0,
    });
    let box: HomeProcess | undefined;
    const acked: Acked = {
      place: new Map(),
      maybe: new Map(),
      flagged: new Set(),
      uids: new Map(),
      modseq: new Map(),
      viaEdge: new Set(),
      phoneFlagged: new Set(),
      phoneChecked: 0,
    };
    let stats = "";
    try {
      const token = await edge.store.createPairing("hearth.localhost");
      box = await startHomeProcess({ messages: [], edge: { url: edge.url, token } });
      const home = box;
      const setup = await RawImap.connect(home.port);
      await setup.ok(`LOGIN ${home.address} "${home.password}"`);
      await setup.command("CREATE Archive"); // a new account may have it already
      setup.close();
      const phone = withPhone ? await pairPhone(home) : null;
      for (let round = 0; round < iterations; round++) {
        let stopped = false;
        const stop = () => stopped;
        // Mail through the edge and the phone's changes go on while the box is down.
        let outsideStopped = false;
        const outsideStop = () => outsideStopped;
        const load = [
          imapLoad(home, acked, `r${round}a`, stop),
          imapLoad(home, acked, `r${round}b`, stop),
          smtpLoad(home, acked, `r${round}s`, stop),
          smtpLoad(home, acked, `r${round}t`, stop),
        ].map((p) => p.catch(() => {})); // the kill cuts every client off
        const outside = [
          smtpLoad(home, acked, `r${round}e`, outsideStop, edge),
          ...(phone ? [phoneLoad(phone, acked, outsideStop)] : []),
        ];
        await new Promise((r) => setTimeout(r, 300 + Math.random() * 1200));
        const status = await home.kill("SIGKILL");
        stopped = true;
        assertEquals(status.signal, "SIGKILL");
        await Promise.all(load);
        await home.restart();
        outsideStopped = true;
        await Promise.all(outside);
        // Every item the edge acknowledged comes home (the restarted box pulls it) before the check.
        await waitFor(
          "the edge to hand everything home",
          30_000,
          async () => (await waitingAtEdge(edge)) === 0,
          200,
        );
        await check(home, acked, round, phone);
        stats = `${acked.place.size} messages (${acked.viaEdge.size} through the edge), ` +
          `${acked.flagged.size} flagged, ` +
          `${[...acked.place.values()].filter((p) => p === "gone").length} expunged` +
          (phone
            ? `, ${acked.phoneFlagged.size} flagged by the phone (${acked.phoneChecked} still there)`
            : "");
      }
      console.log(`after ${iterations} kills: ${stats}`);
      // EMAILIDs that never matched would make the phone's check vacuous.
      if (phone) {
        assert(acked.phoneChecked > 0, "no message flagged by the phone was found at home");
      }
    } catch (e) {
      if (box) console.error(box.stderr());
      throw e;
    } finally {
      await box?.stop();
      await edge.close();
      await Deno.remove(edgeDir, { recursive: true }).catch(() => {});
    }
  },
});
