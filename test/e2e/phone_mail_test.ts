// The phone as a mail client (docs/sync.md, "Summaries, bodies and sending"): edge, home box and
// phone on loopback, the phone driven through `hearth phone …` as its owner would.
// (1) Mail arriving at home reaches the phone with its summary in one sync, and `ls` shows sender
// and subject; `read` fetches a body from the home box through the relay; `send` delivers to a
// local account and to a remote MX, and the Sent folder holds one copy. The edge's files hold
// nothing readable of the mail it relayed to the phone.
// (2) With the home box stopped, `read` opens mail from the edge's queue, and says in a sentence
// that a body it does not hold cannot come now.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { startEdge } from "../../edge/main.ts";
import { TestResolver } from "../../src/dns.ts";
import { limits } from "../../src/limits.ts";
import { DirectoryStorage } from "../../sync/phone/directory_storage.ts";
import { Phone } from "../../sync/phone/client.ts";
import { startFakeMx } from "../src/queue/fake_mx.ts";
import { appendedMessage } from "./messages.ts";
import { pairPhone as pairWithCli } from "./phone_pairing.ts";
import { startHomeProcess, startTestBox, type TestBox, waitFor } from "./harness.ts";
import { RawImap } from "./raw_imap.ts";
import { scanForPlaintext } from "./plaintext_scan.ts";

const repoRoot = new URL("../../", import.meta.url).pathname;

/** Runs `hearth phone ARGS --data DIR`; returns its exit code and output. */
async function hearthPhone(dir: string, args: string[], stdin?: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "main.ts", "phone", ...args, "--data", dir],
    cwd: repoRoot,
    env: { NO_COLOR: "1" },
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

/** Pairs a phone kept in `dir` with the box's account (`hearth phone pair`, then join). */
function pairPhone(box: TestBox, dir: string): Promise<Phone> {
  return pairWithCli(box, { storage: new DirectoryStorage(dir) });
}

async function login(port: number, address: string, password: string): Promise<RawImap> {
  const c = await RawImap.connect(port);
  await c.ok(`LOGIN ${address} "${password}"`);
  return c;
}

/** Every message of a mailbox as text. */
async function texts(imap: RawImap, mailbox: string): Promise<string[]> {
  await imap.ok(`SELECT ${mailbox}`);
  const bodies = await imap.fetchAllBodies();
  return [...bodies.values()].map((b) => new TextDecoder().decode(b));
}

Deno.test("phone: summaries in one sync, read through the relay, send with one Sent copy", async () => {
  const mx = await startFakeMx({ starttls: false });
  const dns = new TestResolver().mx("remote.example", "mx.remote.example")
    .a("mx.remote.example", "127.0.0.1");
  const edgeDir = await Deno.makeTempDir({ prefix: "hearth-edge-" });
  const phoneDir = await Deno.makeTempDir({ prefix: "hearth-phone-" });
  const edge = await startEdge({
    dataDir: edgeDir,
    hostname: "edge.localhost",
    listen: "127.0.0.1",
    httpPort: 0,
    smtpPort: null,
    outbound: { resolver: dns, portFor: () => mx.port, pollMs: 200 },
  });
  const token = await edge.store.createPairing("hearth.localhost");
  const friend = "friend@hearth.localhost";
  const box = await startTestBox({
    messages: [appendedMessage("Wombat census", "Seventeen wombats were counted at dawn.")],
    edge: { url: edge.url, token },
    accounts: [friend],
  });
  let imap: RawImap | undefined;
  try {
    // The owner's IMAP login unlocks the account at home.
    imap = await login(box.port, box.address, box.password);
    const phone = await pairPhone(box, phoneDir);
    await waitFor("the first sync", 20_000, async () => {
      await phone.sync();
      return phone.list("INBOX").some((m) => m.summary);
    });
    assertEquals(phone.list("INBOX")[0].summary?.subject, "Wombat census");
    await new Promise((r) => setTimeout(r, 1_000));
    await phone.sync();

    // New mail at home: one sync brings it with its summary.
    await box.deliver(
      appendedMessage("Platypus sighting", "A platypus swam past the jetty at noon, twice."),
    );
    // The home gathers its changes for a second before it sends them (home/phones.ts).
    await new Promise((r) => setTimeout(r, 3_000));
    const report = await phone.sync();
    assertEquals(report.requests, 1);
    const fresh = phone.list("INBOX").find((m) => m.summary?.subject === "Platypus sighting");
    assert(fresh, "the new message is listed with its summary after one sync");
    assertEquals(fresh.summary!.from, "Dave Sender");
    assertEquals(fresh.summary!.snippet, "A platypus swam past the jetty at noon, twice.");
    assertEquals(fresh.summary!.date, Date.UTC(2025, 2, 6, 9));

    const ls = await hearthPhone(phoneDir, ["ls", "INBOX"]);
    assertEquals(ls.code, 0, ls.stderr);
    const line = ls.stdout.split("\n").find((l) => l.startsWith(fresh.id.slice(0, 16)));
    assert(line?.includes("Dave Sender"), ls.stdout);
    assert(line?.includes("Platypus sighting"), ls.stdout);

    // `read`: the body is not on the phone; the home box sends it through the relay.
    assertEquals(await phone.mail.blob(fresh.blob), null);
    const read = await hearthPhone(phoneDir, ["read", fresh.id.slice(0, 12)]);
    assertEquals(read.code, 0, read.stderr);
    assert(read.stdout.includes("From: Dave Sender <dave@example.org>"), read.stdout);
    assert(read.stdout.includes("To: me@hearth.localhost"), read.stdout);
    assert(read.stdout.includes("Subject: Platypus sighting"), read.stdout);
    assert(read.stdout.includes("A platypus swam past the jetty at noon, twice."), read.stdout);
    const kept = await new DirectoryStorage(phoneDir).get(`blob-${fresh.blob}`);
    assert(kept, "the phone keeps the sealed body it fetched");
    // The second read needs no network: the edge is not asked.
    const again = await hearthPhone(phoneDir, ["read", fresh.id.slice(0, 12), "--wait", "0"]);
    assert(again.stdout.includes("A platypus swam past"), again.stdout + again.stderr);

    // `send`: one local recipient, one remote; body from standard input.
    const sent = await hearthPhone(
      phoneDir,
      ["send", `${friend},kim@remote.example`, "Echidna report"],
      "Two echidnas dug under the fence.\nMore tomorrow.\n",
    );
    assertEquals(sent.code, 0, sent.stderr);
    const friendImap = await login(box.port, friend, box.password);
    let got: string[] = [];
    await waitFor("the friend's copy over IMAP", 15_000, async () => {
      got = await texts(friendImap, "INBOX");
      return got.length > 0;
    });
    friendImap.close();
    assertEquals(got.length, 1);
    assert(got[0].includes("Subject: Echidna report"), got[0]);
    assert(got[0].includes(`From: <${box.address}>`), got[0]);
    assert(!got[0].includes("Chat-Version"), "an ordinary mail, not chat");
    assert(got[0].includes("Two echidnas dug under the fence."), got[0]);
    await waitFor("the remote MX to receive it", 15_000, () => mx.received.length > 0);
    assertEquals(mx.received[0].to, ["kim@remote.example"]);
    assert(new TextDecoder().decode(mx.received[0].raw).includes("Two echidnas"));

    // The Sent copy: stored at home once, listed once on the phone.
    let sentBox: string[] = [];
    await waitFor("the copy in Sent", 15_000, async () => {
      sentBox = await texts(imap!, "Sent");
      return sentBox.length > 0;
    });
    const fromSentPhone = await Phone.open(new DirectoryStorage(phoneDir));
    await waitFor("the phone to see Sent stored at home", 15_000, async () => {
      await fromSentPhone.sync({ flush: true });
      const list = fromSentPhone.list("Sent");
      return list.length === 1 && !list[0].pending;
    });
    assertEquals(fromSentPhone.list("Sent")[0].summary?.subject, "Echidna report");
    await fromSentPhone.sync({ flush: true });
    await new Promise((r) => setTimeout(r, 1_000));
    sentBox = await texts(imap, "Sent");
    assertEquals(sentBox.length, 1, "one copy in Sent");
    assert(sentBox[0].includes("Subject: Echidna report"));
    assert(sentBox[0].includes("More tomorrow."));
    assertEquals(
      fromSentPhone.list().filter((m) => m.summary?.subject === "Echidna report").length,
      1,
    );

    // The edge relayed summaries and a body: none of it is readable in its files.
    const { found } = await scanForPlaintext(edgeDir, [
      "Platypus",
      "jetty",
      "Wombat",
      "Dave Sender",
      "dave@example.org",
    ]);
    assertEquals(found, []);
  } finally {
    imap?.close();
    await box.stop();
    await edge.close();
    await mx.close();
    await Deno.remove(edgeDir, { recursive: true }).catch(() => {});
    await Deno.remove(phoneDir, { recursive: true }).catch(() => {});
  }
});

Deno.test("phone: with home stopped, read opens mail from the edge and explains what cannot come", async () => {
  const edgeDir = await Deno.makeTempDir({ prefix: "hearth-edge-" });
  const phoneDir = await Deno.makeTempDir({ prefix: "hearth-phone-" });
  const edge = await startEdge({
    dataDir: edgeDir,
    hostname: "edge.localhost",
    listen: "127.0.0.1",
    httpPort: 0,
    smtpPort: null,
  });
  const token = await edge.store.createPairing("hearth.localhost");
  const home = await startHomeProcess({
    messages: [appendedMessage("Kept at home", "This body lives on the home box.")],
    edge: { url: edge.url, token },
  });
  try {
    const imap = await login(home.port, home.address, home.password);
    const phone = await pairPhone(home, phoneDir);
    await waitFor("the first sync", 20_000, async () => {
      await phone.sync();
      return phone.list("INBOX").some((m) => m.summary);
    });
    imap.close();
    await home.kill("SIGTERM");

    const front = await edge.store.createFrontToken("test");
    const res = await fetch(`${edge.url}/v1/inbound`, {
      method: "POST",
      headers: { authorization: `Bearer ${front}`, "hearth-rcpt-to": home.address },
      body: appendedMessage("While home sleeps", "Read me from the edge queue."),
    });
    assertEquals(res.status, 200, await res.text());
    await phone.sync();
    const pending = phone.list("INBOX").find((m) => m.pending);
    assert(pending, "the edge's mail is listed");
    assertEquals(pending.summary?.subject, "While home sleeps", "summarised on the phone");

    const read = await hearthPhone(phoneDir, ["read", pending.id.slice(0, 12)]);
    assertEquals(read.code, 0, read.stderr);
    assert(read.stdout.includes("Subject: While home sleeps"), read.stdout);
    assert(read.stdout.includes("Read me from the edge queue."), read.stdout);

    const atHome = phone.list("INBOX").find((m) => m.summary?.subject === "Kept at home")!;
    const offline = await hearthPhone(phoneDir, ["read", atHome.id.slice(0, 12), "--wait", "1"]);
    assertEquals(offline.code, 2);
    assertEquals(
      offline.stderr.trim(),
      `hearth: the body of ${atHome.id.slice(0, 16)} is not on this phone, and the home box ` +
        "did not send it within 1 s (it is offline or asleep); the request waits at the edge: " +
        "run this again once the home box is back",
    );
  } finally {
    await home.kill("SIGKILL");
    await Deno.remove(home.dataDir, { recursive: true }).catch(() => {});
    await edge.close();
    await Deno.remove(edgeDir, { recursive: true }).catch(() => {});
    await Deno.remove(phoneDir, { recursive: true }).catch(() => {});
  }
});

Deno.test("phone: summaries of older messages come on demand, after ls asked for them", async () => {
  const edgeDir = await Deno.makeTempDir({ prefix: "hearth-edge-" });
  const phoneDir = await Deno.makeTempDir({ prefix: "hearth-phone-" });
  const edge = await startEdge({
    dataDir: edgeDir,
    hostname: "edge.localhost",
    listen: "127.0.0.1",
    httpPort: 0,
    smtpPort: null,
  });
  const token = await edge.store.createPairing("hearth.localhost");
  const count = limits.phoneSummariesPerMailbox + 3;
  const box = await startTestBox({
    messages: Array.from(
      { length: count },
      (_, i) => appendedMessage(`Kookaburra ${i}`, `Laugh number ${i}.`),
    ),
    edge: { url: edge.url, token },
  });
  let imap: RawImap | undefined;
  try {
    imap = await login(box.port, box.address, box.password);
    const phone = await pairPhone(box, phoneDir);
    await waitFor("the first sync", 20_000, async () => {
      await phone.sync();
      return phone.list("INBOX").filter((m) => m.summary).length >=
        limits.phoneSummariesPerMailbox;
    });
    assertEquals(phone.list("INBOX").length, count);
    assertEquals(phone.list("INBOX").filter((m) => !m.summary).length, 3, "the oldest wait");

    const ls = await hearthPhone(phoneDir, ["ls"]);
    assertEquals(ls.code, 0, ls.stderr);
    assert(ls.stdout.includes("3 listed without a summary"), ls.stdout);
    const later = await Phone.open(new DirectoryStorage(phoneDir));
    await waitFor("the older summaries", 15_000, async () => {
      await later.sync({ flush: true });
      return later.list("INBOX").every((m) => m.summary);
    });
    const again = await hearthPhone(phoneDir, ["ls", "INBOX"]);
    assert(!again.stdout.includes("without a summary"), again.stdout);
    for (let i = 0; i < count; i++) assert(again.stdout.includes(`Kookaburra ${i}\n`), `${i}`);
  } finally {
    imap?.close();
    await box.stop();
    await edge.close();
    await Deno.remove(edgeDir, { recursive: true }).catch(() => {});
    await Deno.remove(phoneDir, { recursive: true }).catch(() => {});
  }
});
