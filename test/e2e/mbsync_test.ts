// mbsync (Debian's isync) mirrors a real home box into a local Maildir and back: the first run
// copies every mailbox down; then changes on both sides (a new local message, a local flag, a
// locally trashed message, a new local folder; a server-side arrival and flag) meet in the middle.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { ImapFlow } from "imapflow";
import { runTool, startTestBox, type TestBox } from "./harness.ts";
import { appendedMessage, lunchMessage } from "./messages.ts";

/** isync 1.5 renamed SSLType to TLSType; Debian 12 ships 1.4. */
async function tlsKeyword(): Promise<string> {
  const res = await runTool("mbsync", ["--version"], { pkg: "isync" });
  const [major, minor] = (res.stdout.match(/(\d+)\.(\d+)/)?.slice(1) ?? ["1", "4"]).map(Number);
  return major > 1 || minor >= 5 ? "TLSType" : "SSLType";
}

function mbsyncrc(box: TestBox, maildir: string, tlsType: string): string {
  return `IMAPAccount hearth
Host localhost
Port ${box.tlsPort}
User ${box.address}
Pass "${box.password}"
${tlsType} IMAPS
CertificateFile ${box.caFile}

IMAPStore hearth-far
Account hearth

MaildirStore hearth-near
Path ${maildir}/
Inbox ${maildir}/INBOX
SubFolders Verbatim

Channel hearth
Far :hearth-far:
Near :hearth-near:
Patterns *
Create Both
Expunge Both
Sync All
SyncState *
`;
}

async function mbsync(rc: string) {
  const res = await runTool("mbsync", ["-c", rc, "-a"], { pkg: "isync" });
  assertEquals(res.code, 0, `mbsync failed:\n${res.stdout}\n${res.stderr}`);
  assert(!/error/i.test(res.stderr), `mbsync reported an error:\n${res.stderr}`);
}

interface MaildirMessage {
  path: string;
  /** Maildir info flags after ":2," (F flagged, S seen, T trashed …). */
  flags: string;
  /** The UID mbsync recorded in the file name, if any. */
  uid?: number;
  text: string;
}

async function readMaildir(dir: string): Promise<MaildirMessage[]> {
  const out: MaildirMessage[] = [];
  for (const sub of ["new", "cur"]) {
    for await (const entry of Deno.readDir(`${dir}/${sub}`)) {
      const path = `${dir}/${sub}/${entry.name}`;
      const uid = entry.name.match(/,U=(\d+)/)?.[1];
      out.push({
        path,
        flags: entry.name.match(/:2,([A-Za-z]*)$/)?.[1] ?? "",
        uid: uid ? Number(uid) : undefined,
        // mbsync stores Maildir files with LF line ends.
        text: (await Deno.readTextFile(path)).replaceAll("\r\n", "\n"),
      });
    }
  }
  return out;
}

function bySubject(messages: MaildirMessage[], subject: string): MaildirMessage {
  const found = messages.filter((m) => m.text.includes(`\nSubject: ${subject}\n`));
  assertEquals(found.length, 1, `one message "${subject}" in ${messages.map((m) => m.path)}`);
  return found[0];
}

Deno.test("mbsync mirrors mailboxes, messages and flags both ways", async () => {
  const box = await startTestBox();
  const work = await Deno.makeTempDir({ prefix: "hearth-mbsync-" });
  const maildir = `${work}/mail`;
  const rc = `${work}/mbsyncrc`;
  const imap = new ImapFlow({
    host: "127.0.0.1",
    port: box.tlsPort,
    secure: true,
    tls: { ca: [box.caPem], servername: "localhost" },
    auth: { user: box.address, pass: box.password },
    logger: false,
    connectionTimeout: 5_000,
    socketTimeout: 10_000,
  });
  try {
    await Deno.mkdir(maildir);
    await Deno.writeTextFile(rc, mbsyncrc(box, maildir, await tlsKeyword()));

    // 1. Server to Maildir: every mailbox, every message, byte for byte.
    await mbsync(rc);
    for (const name of ["INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"]) {
      const stat = await Deno.stat(`${maildir}/${name}/cur`).catch(() => null);
      assert(stat?.isDirectory, `mbsync created the Maildir ${name}`);
    }
    let inbox = await readMaildir(`${maildir}/INBOX`);
    assertEquals(inbox.length, 3);
    const lunch = bySubject(inbox, "Lunch on Friday");
    assertEquals(lunch.uid, 1);
    // mbsync adds its own X-TUID header (how it recognises messages it has just copied).
    assertEquals(lunch.text.replace(/^X-TUID: .*\n/m, ""), lunchMessage.replaceAll("\r\n", "\n"));
    const report = bySubject(inbox, "Quarterly report");
    bySubject(inbox, "Hiking trip to the glacier");
    assertEquals(inbox.map((m) => m.flags).join(""), "", "nothing seen or flagged yet");

    // 2. Changes on both sides.
    //    Near: a new message, a flag, a trashed message, a new folder with a message.
    const fresh = appendedMessage("Written offline", "Composed on the train with no signal.");
    await Deno.writeTextFile(`${maildir}/INBOX/new/1700000000.e2e1.localhost`, fresh);
    const flaggedPath = lunch.path.replace(/\/new\//, "/cur/").replace(/:2,[A-Za-z]*$/, "") +
      ":2,F";
    await Deno.rename(lunch.path, flaggedPath);
    await Deno.rename(
      report.path,
      report.path.replace(/\/new\//, "/cur/").replace(/:2,[A-Za-z]*$/, "") + ":2,ST",
    );
    for (const sub of ["cur", "new", "tmp"]) {
      await Deno.mkdir(`${maildir}/Projects/${sub}`, { recursive: true });
    }
    await Deno.writeTextFile(
      `${maildir}/Projects/cur/1700000001.e2e2.localhost:2,S`,
      appendedMessage("Project kickoff", "The kickoff is on Monday."),
    );
    //    Far: an arrival and a flag set by another client.
    await box.deliver(appendedMessage("Arrived while syncing", "Fresh from the MTA."));
    await imap.connect();
    await imap.mailboxOpen("INBOX");
    assert(await imap.messageFlagsAdd("3", ["\\Seen"], { uid: true }));

    await mbsync(rc);

    // 3. Maildir to server: the new message, the flag, the expunge, the folder.
    const mailbox = await imap.mailboxOpen("INBOX");
    const messages = [];
    for await (const m of imap.fetch("1:*", { uid: true, flags: true, envelope: true })) {
      messages.push({ uid: m.uid, flags: [...(m.flags ?? [])], subject: m.envelope?.subject });
    }
    const subjects = messages.map((m) => m.subject).sort();
    assertEquals(subjects, [
      "Arrived while syncing",
      "Hiking trip to the glacier",
      "Lunch on Friday",
      "Written offline",
    ], `INBOX on the server after the sync (Quarterly report was trashed locally)`);
    assertEquals(mailbox.exists, 4);
    const serverLunch = messages.find((m) => m.subject === "Lunch on Friday")!;
    assertEquals(serverLunch.uid, 1);
    assert(serverLunch.flags.includes("\\Flagged"), `UID 1 flags: ${serverLunch.flags}`);
    const written = messages.find((m) => m.subject === "Written offline")!;
    assert(written.uid > 4, `the uploaded message got a new UID: ${written.uid}`);
    const folders = (await imap.list()).map((m) => m.path);
    assert(folders.includes("Projects"), `mbsync created Projects on the server: ${folders}`);
    const projects = await imap.status("Projects", { messages: true });
    assert(projects, "STATUS Projects answered");
    assertEquals(projects.messages, 1);

    // 4. Server to Maildir: the arrival and the server-side \Seen.
    inbox = await readMaildir(`${maildir}/INBOX`);
    assertEquals(inbox.length, 4);
    bySubject(inbox, "Arrived while syncing");
    assert(bySubject(inbox, "Hiking trip to the glacier").flags.includes("S"));
    assertEquals(bySubject(inbox, "Lunch on Friday").flags, "F");
    // ",U=" is the Maildir's own UID: mbsync now tracks the message it uploaded.
    assert(bySubject(inbox, "Written offline").uid !== undefined, "the local message is tracked");
    assert(!inbox.some((m) => m.text.includes("Quarterly report")), "the trashed one is expunged");

    // 5. A third run with nothing changed changes nothing.
    await mbsync(rc);
    assertEquals((await readMaildir(`${maildir}/INBOX`)).length, 4);
    assertEquals((await imap.status("INBOX", { messages: true }) || { messages: -1 }).messages, 4);
    await imap.logout();
  } finally {
    imap.close();
    await box.stop();
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
});
