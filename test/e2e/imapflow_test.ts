// imapflow (npm), an independent IMAP client, against a real home box over implicit TLS and
// STARTTLS: list, open, append, fetch (envelope, structure, parts), search, flags, move, IDLE.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { ImapFlow, type ImapFlowOptions } from "imapflow";
import { startTestBox, type TestBox } from "./harness.ts";
import { appendedMessage, reportCsv } from "./messages.ts";

function client(box: TestBox, mode: "tls" | "starttls", extra: Partial<ImapFlowOptions> = {}) {
  return new ImapFlow({
    host: "127.0.0.1",
    port: mode === "tls" ? box.tlsPort : box.port,
    secure: mode === "tls",
    doSTARTTLS: mode === "starttls" ? true : undefined,
    tls: { ca: [box.caPem], servername: "localhost" },
    auth: { user: box.address, pass: box.password },
    logger: false,
    connectionTimeout: 5_000,
    greetingTimeout: 5_000,
    socketTimeout: 10_000,
    ...extra,
  });
}

/** Runs `body` with a fresh box and a logged-in client; always cleans up. */
async function withClient(
  mode: "tls" | "starttls",
  body: (c: ImapFlow, box: TestBox) => Promise<void>,
) {
  const box = await startTestBox();
  const c = client(box, mode);
  try {
    await c.connect();
    await body(c, box);
    await c.logout();
  } finally {
    c.close();
    await box.stop();
  }
}

async function readAll(stream: AsyncIterable<Uint8Array>): Promise<string> {
  const parts: Uint8Array[] = [];
  for await (const chunk of stream) parts.push(chunk);
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return new TextDecoder().decode(all);
}

Deno.test("imapflow lists the default mailboxes with their special uses over implicit TLS", async () => {
  await withClient("tls", async (c) => {
    assert(c.secureConnection, "the connection is TLS");
    const list = await c.list();
    const byPath = new Map(list.map((m) => [m.path, m]));
    for (const name of ["INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"]) {
      assert(byPath.has(name), `LIST shows ${name}: ${[...byPath.keys()]}`);
    }
    assertEquals(byPath.get("Sent")?.specialUse, "\\Sent");
    assertEquals(byPath.get("Trash")?.specialUse, "\\Trash");
  });
});

Deno.test("imapflow logs in over STARTTLS on the plain port", async () => {
  await withClient("starttls", async (c) => {
    assert(c.secureConnection, "STARTTLS upgraded the connection");
    const box = await c.mailboxOpen("INBOX");
    assertEquals(box.exists, 3);
  });
});

Deno.test("imapflow fetches envelopes, body structures and single body parts", async () => {
  await withClient("tls", async (c) => {
    const mbox = await c.mailboxOpen("INBOX");
    assertEquals(mbox.exists, 3);
    assert(Number(mbox.uidValidity) > 0, "UIDVALIDITY is set");

    const first = await c.fetchOne("1", { envelope: true, uid: true, flags: true, size: true });
    assert(first, "message 1 is fetched");
    assertEquals(first.uid, 1);
    assertEquals(first.envelope?.subject, "Lunch on Friday");
    assertEquals(first.envelope?.from?.[0]?.address, "alice@example.org");
    assertEquals(first.envelope?.from?.[0]?.name, "Alice Example");
    assertEquals(first.envelope?.messageId, "<lunch-1@example.org>");
    assertEquals(new Date(first.envelope!.date!).toISOString(), "2025-03-03T10:00:00.000Z");

    const third = await c.fetchOne("3", { envelope: true });
    assert(third, "message 3 is fetched");
    assertEquals(third.envelope?.inReplyTo, "<lunch-1@example.org>");
    assertEquals(third.envelope?.cc?.[0]?.address, "bob@example.net");

    const report = await c.fetchOne("2", { bodyStructure: true });
    assert(report, "message 2 is fetched");
    const bs = report.bodyStructure!;
    assertEquals(bs.type, "multipart/mixed");
    assertEquals(bs.childNodes?.length, 2);
    assertEquals(bs.childNodes?.[0].type, "text/plain");
    assertEquals(bs.childNodes?.[0].part, "1");
    assertEquals(bs.childNodes?.[1].type, "text/csv");
    assertEquals(bs.childNodes?.[1].encoding, "base64");
    assertEquals(bs.childNodes?.[1].disposition, "attachment");
    assertEquals(bs.childNodes?.[1].dispositionParameters?.filename, "report.csv");

    const alt = await c.fetchOne("3", { bodyStructure: true });
    assert(alt, "message 3 is fetched");
    assertEquals(alt.bodyStructure?.type, "multipart/alternative");
    assertEquals(alt.bodyStructure?.childNodes?.map((n) => n.type), ["text/plain", "text/html"]);

    // BODY[2] of the report, decoded by imapflow from base64.
    const attachment = await c.download("2", "2", { uid: true });
    assert(attachment.content, "part 2 of UID 2 exists");
    assertEquals(await readAll(attachment.content), reportCsv);
    assertEquals(attachment.meta.contentType, "text/csv");

    const text = await c.download("2", "1", { uid: true });
    assert(text.content, "part 1 of UID 2 exists");
    assertEquals(
      (await readAll(text.content)).trim(),
      "The spreadsheet with the zeppelin figures is attached.",
    );

    // A specific part fetched with BODY.PEEK[2.MIME]-free syntax: the raw bytes of part 1 of UID 3.
    const raw = await c.fetchOne("3", { bodyParts: ["1", "2"] }, { uid: true });
    assert(raw, "UID 3 parts are fetched");
    assertEquals(
      new TextDecoder().decode(raw.bodyParts?.get("1")).trim(),
      "Bring crampons and a thermos.",
    );
    assert(new TextDecoder().decode(raw.bodyParts?.get("2")).includes("<b>crampons</b>"));

    // Fetching parts with PEEK must not set \Seen.
    const flags = await c.fetchOne("2", { flags: true });
    assert(flags && !flags.flags?.has("\\Seen"), "BODY.PEEK left \\Seen unset");
  });
});

Deno.test("imapflow searches by sender, subject and body text", async () => {
  await withClient("tls", async (c) => {
    await c.mailboxOpen("INBOX");
    assertEquals(await c.search({ from: "bob@example.net" }, { uid: true }), [2]);
    assertEquals(await c.search({ subject: "glacier" }, { uid: true }), [3]);
    assertEquals(await c.search({ body: "quayside" }, { uid: true }), [1]);
    assertEquals(await c.search({ body: "zeppelin" }, { uid: true }), [2]);
    assertEquals(await c.search({ body: "nothing-like-this-anywhere" }, { uid: true }), []);
    assertEquals(await c.search({ all: true }, { uid: true }), [1, 2, 3]);
    assertEquals(await c.search({ seen: false }, { uid: true }), [1, 2, 3]);
  });
});

Deno.test("imapflow appends, flags and moves messages between mailboxes", async () => {
  await withClient("tls", async (c) => {
    const appended = await c.append(
      "INBOX",
      appendedMessage("Plans for the weekend", "The marmalade factory tour is on Saturday."),
      ["\\Flagged"],
      new Date("2025-03-06T09:00:00Z"),
    );
    assert(appended, "APPEND succeeded");
    assertEquals(appended.uid, 4, "APPENDUID gives the next UID");

    await c.mailboxOpen("INBOX");
    const msg = await c.fetchOne("4", { flags: true, envelope: true, internalDate: true }, {
      uid: true,
    });
    assert(msg, "the appended message is there");
    assertEquals(msg.envelope?.subject, "Plans for the weekend");
    assert(msg.flags?.has("\\Flagged"), `APPEND kept \\Flagged: ${[...(msg.flags ?? [])]}`);
    assertEquals(new Date(msg.internalDate!).toISOString(), "2025-03-06T09:00:00.000Z");
    assertEquals(await c.search({ body: "marmalade" }, { uid: true }), [4]);

    assert(await c.messageFlagsAdd("1", ["\\Seen", "$Important"], { uid: true }));
    const flagged = await c.fetchOne("1", { flags: true }, { uid: true });
    assert(flagged, "UID 1 is fetched");
    assert(flagged.flags?.has("\\Seen"), "\\Seen was added");
    assert(flagged.flags?.has("$Important"), "the keyword was added");
    assertEquals(await c.search({ seen: true }, { uid: true }), [1]);

    assert(await c.messageFlagsRemove("1", ["$Important"], { uid: true }));
    const unflagged = await c.fetchOne("1", { flags: true }, { uid: true });
    assert(unflagged && !unflagged.flags?.has("$Important"), "the keyword was removed");

    const moved = await c.messageMove("2", "Archive", { uid: true });
    assert(moved, "MOVE succeeded");
    assertEquals(moved.destination, "Archive");
    assertEquals(moved.uidMap?.get(2), 1, "COPYUID maps UID 2 to Archive's UID 1");
    assertEquals(await c.search({ all: true }, { uid: true }), [1, 3, 4]);

    const status = await c.status("Archive", { messages: true, uidNext: true });
    assert(status, "STATUS Archive answered");
    assertEquals(status.messages, 1);
    assertEquals(status.uidNext, 2);

    await c.mailboxOpen("Archive");
    const inArchive = await c.fetchOne("1", { envelope: true });
    assert(inArchive, "the moved message is in Archive");
    assertEquals(inArchive.envelope?.subject, "Quarterly report");

    await c.mailboxCreate("Projects/Zeppelin");
    const names = (await c.list()).map((m) => m.path);
    assert(names.includes("Projects/Zeppelin"), `LIST shows the new folder: ${names}`);
  });
});

Deno.test("imapflow in IDLE sees a message that another connection appends", async () => {
  const box = await startTestBox();
  const idler = client(box, "tls", { disableAutoIdle: true });
  const writer = client(box, "starttls");
  try {
    await idler.connect();
    await writer.connect();
    await idler.mailboxOpen("INBOX");
    let sawExists: (count: number) => void;
    const exists = new Promise<number>((resolve) => (sawExists = resolve));
    idler.on("exists", (ev: { count: number }) => sawExists(ev.count));
    const idling = idler.idle();
    // Give the IDLE command time to reach the server before the append.
    await new Promise((r) => setTimeout(r, 200));
    await writer.append("INBOX", appendedMessage("Ping", "Are you there?"));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const count = await Promise.race([
      exists,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("no EXISTS during IDLE within 5 s")), 5_000);
      }),
    ]).finally(() => clearTimeout(timer));
    assertEquals(count, 4);
    // Any command ends IDLE with DONE; the idle() promise then settles.
    const status = await idler.status("INBOX", { messages: true });
    assert(status, "STATUS INBOX answered");
    assertEquals(status.messages, 4);
    await idling;
    await writer.logout();
    await idler.logout();
  } finally {
    idler.close();
    writer.close();
    await box.stop();
  }
});
