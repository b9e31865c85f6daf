// Three parties on loopback — edge, home box, phone — with a real IMAP client (imapflow): the
// phone is paired with `hearth phone pair` (the CLI, beside the running box), syncs the account
// document through the edge's relay, marks 30 messages \Seen while the IMAP client flags 30
// others, and after one phone sync both sides have all 60 changes; the IMAP client in IDLE sees
// the phone's as untagged FETCH. The edge's files hold nothing readable of it.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { ImapFlow } from "imapflow";
import { startEdge } from "../../edge/main.ts";
import { MemoryStorage, Phone } from "../../sync/phone/client.ts";
import { appendedMessage } from "./messages.ts";
import { startTestBox, type TestBox, waitFor } from "./harness.ts";
import { scanForPlaintext } from "./plaintext_scan.ts";

const repoRoot = new URL("../../", import.meta.url).pathname;

function imap(box: TestBox, extra: Record<string, unknown> = {}) {
  return new ImapFlow({
    host: "127.0.0.1",
    port: box.tlsPort,
    secure: true,
    tls: { ca: [box.caPem], servername: "localhost" },
    auth: { user: box.address, pass: box.password },
    logger: false,
    connectionTimeout: 5_000,
    greetingTimeout: 5_000,
    socketTimeout: 20_000,
    ...extra,
  });
}

/** Runs `hearth phone pair` as the owner would; returns the code and the finished process. */
async function pairWithCli(box: TestBox): Promise<{ code: string; done: Promise<string> }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "main.ts", "phone", "pair", box.address, "--password-stdin"],
    cwd: repoRoot,
    env: { NO_COLOR: "1", HEARTH_DATA: box.dataDir },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(box.password + "\n"));
  await w.close();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  const deadline = Date.now() + 20_000;
  while (!/hearth phone join (\S+)/.test(out)) {
    if (Date.now() > deadline) throw new Error(`no pairing code: ${out}`);
    const { value, done } = await reader.read();
    if (done) {
      const err = await new Response(child.stderr).text();
      throw new Error(`hearth phone pair ended: ${out} ${err}`);
    }
    out += value;
  }
  const code = out.match(/hearth phone join (\S+)/)![1];
  const done = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      out += value;
    }
    const status = await child.status;
    const err = await new Response(child.stderr).text();
    if (!status.success) throw new Error(`hearth phone pair failed: ${out} ${err}`);
    return out;
  })();
  return { code, done };
}

Deno.test("phone and IMAP client change flags at once; one phone sync merges all 60", async () => {
  const edgeDir = await Deno.makeTempDir({ prefix: "hearth-edge-" });
  const edge = await startEdge({
    dataDir: edgeDir,
    hostname: "edge.localhost",
    listen: "127.0.0.1",
    httpPort: 0,
    smtpPort: null,
  });
  const token = await edge.store.createPairing("hearth.localhost");
  const messages = Array.from(
    { length: 60 },
    (_, i) => appendedMessage(`Quokkasync ${i}`, `Body ${i} of the marsupial series.`),
  );
  const box = await startTestBox({ messages, edge: { url: edge.url, token } });
  const idler = imap(box, { disableAutoIdle: true });
  const writer = imap(box);
  try {
    // The IMAP login unlocks the account, as the owner's mail client would.
    await idler.connect();
    await writer.connect();
    await idler.mailboxOpen("INBOX");

    const pairing = await pairWithCli(box);
    const phone = await Phone.join(pairing.code, new MemoryStorage(), { waitMs: 20_000 });
    assert((await pairing.done).includes(`Paired ${phone.device}`));
    assertEquals(phone.address, box.address);
    await waitFor("the phone to have the mailbox", 20_000, async () => {
      await phone.sync();
      return phone.list("INBOX").length === 60;
    });
    const list = phone.list("INBOX").sort((a, b) => a.date - b.date || a.id.localeCompare(b.id));
    // Settle: let both sides finish the initial exchange so the test measures one sync.
    await new Promise((r) => setTimeout(r, 1_000));
    await phone.sync();

    // IDLE watches for the phone's changes.
    const seenUids = new Set<number>();
    idler.on("flags", (ev: { uid?: number; seq: number; flags: Set<string> }) => {
      if (ev.flags.has("\\Seen")) seenUids.add(ev.seq);
    });
    const idling = idler.idle();
    await new Promise((r) => setTimeout(r, 200));

    // At the same time: the phone marks 30 read, the IMAP client flags the other 30.
    const phoneIds = list.slice(0, 30).map((m) => m.id);
    for (const id of phoneIds) await phone.flag(id, ["\\Seen"]);
    await writer.mailboxOpen("INBOX");
    await writer.messageFlagsAdd("31:60", ["\\Flagged"]);
    // The home sends its changes to the phone's relay mailbox a second after recording them
    // (home/phones.ts gathers them into one message per phone).
    await new Promise((r) => setTimeout(r, 3_000));

    const report = await phone.sync();
    const flagged = phone.list("INBOX").filter((m) => m.flags.includes("\\Flagged")).length;
    assertEquals(flagged, 30, "the phone has the IMAP client's 30 changes after one sync");
    assertEquals(report.requests, 1, "one request for the exchange");

    await waitFor("IDLE to see the phone's 30 changes", 15_000, () => seenUids.size >= 30);
    const status = await writer.search({ seen: true });
    assertEquals((status as number[]).length, 30);
    await idler.status("INBOX", { messages: true });
    await idling;

    // The edge's files hold no subject, body or flag name of any of it.
    const { found } = await scanForPlaintext(edgeDir, ["Quokkasync", "marsupial", "\\Flagged"]);
    assertEquals(found, []);
  } finally {
    idler.close();
    writer.close();
    await box.stop();
    await edge.close();
    await Deno.remove(edgeDir, { recursive: true }).catch(() => {});
  }
});
