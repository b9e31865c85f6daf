// A real `hearth home` process (harness.startHomeProcess) keeps what clients changed across a
// restart on the same ports: messages, flags, folders, UIDVALIDITY and UIDNEXT, and mail that
// `hearth deliver` dropped off while it was down.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { ImapFlow } from "imapflow";
import { type HomeProcess, startHomeProcess } from "./harness.ts";
import { appendedMessage } from "./messages.ts";

function connect(box: HomeProcess, mode: "tls" | "starttls") {
  const c = new ImapFlow({
    host: "127.0.0.1",
    port: mode === "tls" ? box.tlsPort : box.port,
    secure: mode === "tls",
    doSTARTTLS: mode === "starttls" ? true : undefined,
    tls: { ca: [box.caPem], servername: "localhost" },
    auth: { user: box.address, pass: box.password },
    logger: false,
    connectionTimeout: 5_000,
    socketTimeout: 10_000,
  });
  c.on("error", () => {});
  return c;
}

Deno.test("hearth home keeps messages, flags and folders across a restart on the same ports", async () => {
  const box = await startHomeProcess();
  try {
    const before = connect(box, "tls");
    let uidValidity: bigint;
    try {
      await before.connect();
      const inbox = await before.mailboxOpen("INBOX");
      uidValidity = inbox.uidValidity;
      assertEquals(inbox.exists, 3);
      assert(await before.messageFlagsAdd("2", ["\\Answered", "$Label1"], { uid: true }));
      await before.mailboxCreate("Receipts");
      assert(await before.messageMove("3", "Receipts", { uid: true }));
      const appended = await before.append("INBOX", appendedMessage("Before restart", "kept?"));
      assert(appended, "APPEND succeeded");
      assertEquals(appended.uid, 4, "APPENDUID names UID 4");
      await before.logout();
    } finally {
      before.close();
    }

    const ports = [box.port, box.tlsPort];
    const stopped = await box.kill("SIGTERM");
    assertEquals(stopped.code, 0, "SIGTERM stops hearth home cleanly (exit 0)");
    await box.deliver(appendedMessage("Delivered while down", "queued on disk"));
    await box.restart();
    assertEquals([box.port, box.tlsPort], ports, "the restart listens on the same ports");

    const after = connect(box, "starttls");
    try {
      await after.connect();
      const inbox = await after.mailboxOpen("INBOX");
      assertEquals(inbox.uidValidity, uidValidity, "UIDVALIDITY is unchanged");
      const seen: Record<number, { subject?: string; flags: string[] }> = {};
      for await (const m of after.fetch("1:*", { uid: true, flags: true, envelope: true })) {
        seen[m.uid] = { subject: m.envelope?.subject, flags: [...(m.flags ?? [])].sort() };
      }
      assertEquals(Object.keys(seen).map(Number), [1, 2, 4, 5]);
      assertEquals(seen[1].subject, "Lunch on Friday");
      assertEquals(seen[2].flags.filter((f) => f !== "\\Recent"), ["$Label1", "\\Answered"]);
      assertEquals(seen[4].subject, "Before restart");
      assertEquals(seen[5].subject, "Delivered while down");
      const receipts = await after.status("Receipts", { messages: true, uidNext: true });
      assert(receipts, "Receipts still exists");
      assertEquals(receipts.messages, 1);
      assertEquals(receipts.uidNext, 2);
      await after.logout();
    } finally {
      after.close();
    }
  } catch (e) {
    throw new Error(`${(e as Error).message}\nhearth home log:\n${box.stderr()}`, { cause: e });
  } finally {
    await box.stop();
  }
});
