// The phone is driven by push only. (1) With the home box stopped, mail sent to the edge shows up
// on the phone after one push-driven sync, and restarting home adds no duplicate anywhere.
// (2) The battery model: over a day of 40 messages in 12 bursts (time compressed: the edge's
// debounce is shortened), the phone makes requests only when a push wakes it, and none while idle.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { startEdge } from "../../edge/main.ts";
import { RecordingPushSender } from "../../edge/push.ts";
import { openSealed } from "../../src/crypto/age.ts";
import type { Phone } from "../../sync/phone/client.ts";
import { appendedMessage } from "./messages.ts";
import { pairPhone } from "./phone_pairing.ts";
import { type HomeProcess, startHomeProcess, startTestBox, waitFor } from "./harness.ts";

const subscription = {
  endpoint: "https://push.example/sub/phone",
  keys: {
    p256dh:
      "BAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    auth: "AAAAAAAAAAAAAAAAAAAAAA",
  },
};

/** A phone app that syncs exactly once per push, and never otherwise. */
function pushDriven(phone: Phone, sender: RecordingPushSender) {
  let handled = 0;
  let busy = Promise.resolve();
  const requestsAtPush: number[] = [];
  const original = sender.send.bind(sender);
  sender.send = (sub, payload, delivery) => {
    const result = original(sub, payload, delivery);
    busy = busy.then(async () => {
      requestsAtPush.push(phone.requests);
      await phone.sync();
      handled++;
    });
    return result;
  };
  return {
    get handled() {
      return handled;
    },
    settled: () => busy,
    requestsAtPush,
  };
}

async function post(url: string, token: string, subject: string) {
  const res = await fetch(`${url}/v1/inbound`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "hearth-rcpt-to": "me@hearth.localhost" },
    body: appendedMessage(subject, `The body of ${subject}.`),
  });
  assertEquals(res.status, 200, await res.text());
}

Deno.test("with home stopped, mail reaches the phone by push; home's return adds no duplicate", async () => {
  const edgeDir = await Deno.makeTempDir({ prefix: "hearth-edge-" });
  const sender = new RecordingPushSender();
  const edge = await startEdge({
    dataDir: edgeDir,
    hostname: "edge.localhost",
    listen: "127.0.0.1",
    httpPort: 0,
    smtpPort: null,
    push: { sender, mailDebounceMs: 100 },
  });
  let home: HomeProcess | undefined;
  try {
    const token = await edge.store.createPairing("hearth.localhost");
    home = await startHomeProcess({ messages: [], edge: { url: edge.url, token } });
    // The IMAP login unlocks the account at home (as the owner's client would).
    const { RawImap } = await import("./raw_imap.ts");
    const login = async () => {
      const c = await RawImap.connect(home!.port);
      await c.ok(`LOGIN ${home!.address} "${home!.password}"`);
      return c;
    };
    let imap = await login();
    const phone = await pairPhone(home);
    await phone.subscribePush(subscription);
    await waitFor("the first sync", 20_000, async () => {
      await phone.sync();
      return phone.doc.mailboxes().size > 0;
    });
    imap.close();

    await home.kill("SIGTERM");
    const driver = pushDriven(phone, sender);
    const front = await edge.store.createFrontToken("test");
    await post(edge.url, front, "While home sleeps");
    await waitFor("a push", 10_000, () => driver.handled >= 1);
    await driver.settled();
    const pending = phone.list("INBOX");
    assertEquals(pending.length, 1);
    assert(pending[0].pending, "listed as waiting at the edge");
    const raw = await openSealed(phone.pendingSealed(pending[0].blob)!, phone.identity!);
    assert(new TextDecoder().decode(raw).includes("Subject: While home sleeps"));

    await home.restart();
    imap = await login();
    await waitFor("home to fetch it and tell the phone", 20_000, async () => {
      await driver.settled();
      const list = phone.list("INBOX");
      return list.length === 1 && !list[0].pending;
    });
    assertEquals(phone.list().length, 1, "no duplicate on the phone");
    await imap.ok("SELECT INBOX");
    const search = await imap.ok("SEARCH ALL");
    assertEquals(search.untagged.map((u) => u.text), ["* SEARCH 1"], "one message at home");
    imap.close();
  } finally {
    await home?.kill("SIGKILL");
    if (home) await Deno.remove(home.dataDir, { recursive: true }).catch(() => {});
    await edge.close();
    await Deno.remove(edgeDir, { recursive: true }).catch(() => {});
  }
});

Deno.test("battery model: over a day of 12 bursts the phone only talks when pushed", async () => {
  const edgeDir = await Deno.makeTempDir({ prefix: "hearth-edge-" });
  const sender = new RecordingPushSender();
  const edge = await startEdge({
    dataDir: edgeDir,
    hostname: "edge.localhost",
    listen: "127.0.0.1",
    httpPort: 0,
    smtpPort: null,
    push: { sender, mailDebounceMs: 150 },
  });
  const token = await edge.store.createPairing("hearth.localhost");
  const box = await startTestBox({ messages: [], edge: { url: edge.url, token } });
  try {
    const { RawImap } = await import("./raw_imap.ts");
    const imap = await RawImap.connect(box.port);
    await imap.ok(`LOGIN ${box.address} "${box.password}"`);
    const phone = await pairPhone(box);
    await phone.subscribePush(subscription);
    await waitFor("the first sync", 20_000, async () => {
      await phone.sync();
      return phone.doc.mailboxes().size > 0;
    });
    await new Promise((r) => setTimeout(r, 500));
    await phone.sync();
    const driver = pushDriven(phone, sender);
    const front = await edge.store.createFrontToken("test");
    const requestsBefore = phone.requests;
    const pushesBefore = sender.sent.length;

    // 40 messages in 12 bursts, quiet in between (a day, compressed).
    const bursts = [3, 5, 2, 4, 3, 6, 1, 4, 3, 2, 4, 3];
    assertEquals(bursts.reduce((a, b) => a + b), 40);
    let n = 0;
    const idleChecks: number[] = [];
    for (const size of bursts) {
      for (let i = 0; i < size; i++) await post(edge.url, front, `Burst mail ${++n}`);
      await waitFor("the burst to reach the phone", 20_000, async () => {
        await driver.settled();
        return phone.list("INBOX").filter((m) => !m.pending).length === n;
      });
      // Quiet: with no push, the phone makes no request at all.
      const quiet = phone.requests;
      await new Promise((r) => setTimeout(r, 400));
      await driver.settled();
      idleChecks.push(phone.requests - quiet - 0);
    }
    await driver.settled();
    const pushes = sender.sent.length - pushesBefore;
    const requests = phone.requests - requestsBefore;
    assertEquals(phone.list("INBOX").length, 40);
    // Every request was made inside a push-driven sync: requests = syncs × requests per sync.
    assertEquals(driver.handled, pushes);
    assertEquals(requests, pushes, "one request per push-driven sync");
    assert(pushes <= 40, `${pushes} pushes for 40 messages (debounced)`);
    console.log(`battery model: ${pushes} pushes, ${requests} requests for 40 messages`);
    imap.close();
  } finally {
    await box.stop();
    await edge.close();
    await Deno.remove(edgeDir, { recursive: true }).catch(() => {});
  }
});

Deno.test("a chat from the phone reaches a local account at once, with an Urgency: high push", async () => {
  const edgeDir = await Deno.makeTempDir({ prefix: "hearth-edge-" });
  const sender = new RecordingPushSender();
  const edge = await startEdge({
    dataDir: edgeDir,
    hostname: "edge.localhost",
    listen: "127.0.0.1",
    httpPort: 0,
    smtpPort: null,
    push: { sender, mailDebounceMs: 100 },
  });
  const token = await edge.store.createPairing("hearth.localhost");
  const friend = "friend@hearth.localhost";
  const box = await startTestBox({
    messages: [],
    edge: { url: edge.url, token },
    accounts: [friend],
  });
  try {
    const { RawImap } = await import("./raw_imap.ts");
    const phone = await pairPhone(box);
    // The friend's phone: a device of the friend's account, subscribed for push.
    const { generateSigningKey } = await import("../../src/crypto/device.ts");
    const { signRequest } = await import("../../src/wire/signed_request.ts");
    const homeId = (await edge.store.homeIds())[0];
    const route = await edge.store.route(friend);
    assert(route.kind === "account", "the friend's address is registered at the edge");
    const friendKey = await generateSigningKey();
    await edge.store.putDevice(homeId, "dev-friend-0001", route.account, friendKey.publicKey);
    const body = new TextEncoder().encode(JSON.stringify(subscription));
    const path = "/v1/devices/dev-friend-0001/push";
    const headers = await signRequest(friendKey, "dev-friend-0001", "PUT", path, body);
    assertEquals((await fetch(edge.url + path, { method: "PUT", headers, body })).status, 200);

    const before = sender.sent.length;
    await phone.chat(friend, "Lunch at noon? 🥪");
    await waitFor("the chat push", 5_000, () => sender.sent.length > before);
    const push = sender.sent[sender.sent.length - 1];
    assertEquals(push.payload, { kind: "chat", count: 1 });
    assertEquals(push.delivery.urgency, "high");

    const imap = await RawImap.connect(box.port);
    await imap.ok(`LOGIN ${friend} "${box.password}"`);
    let text = "";
    await waitFor("the chat in the friend's INBOX", 15_000, async () => {
      await imap.ok("SELECT INBOX");
      const bodies = await imap.fetchAllBodies();
      text = [...bodies.values()].map((b) => new TextDecoder().decode(b)).join("\n");
      return text.includes("Chat-Version: 1.0");
    });
    assert(text.includes(`From: <${box.address}>`), text);
    assert(text.includes("Lunch at noon?"), text);
    imap.close();
  } finally {
    await box.stop();
    await edge.close();
    await Deno.remove(edgeDir, { recursive: true }).catch(() => {});
  }
});

Deno.test("changes the phone makes while home is down reach it once the phone unlocks it", async () => {
  const edgeDir = await Deno.makeTempDir({ prefix: "hearth-edge-" });
  const edge = await startEdge({
    dataDir: edgeDir,
    hostname: "edge.localhost",
    listen: "127.0.0.1",
    httpPort: 0,
    smtpPort: null,
  });
  let home: HomeProcess | undefined;
  try {
    const token = await edge.store.createPairing("hearth.localhost");
    const messages = Array.from({ length: 6 }, (_, i) => appendedMessage(`Wombat ${i}`, "Body"));
    home = await startHomeProcess({ messages, edge: { url: edge.url, token } });
    const { RawImap } = await import("./raw_imap.ts");
    const login = async () => {
      const c = await RawImap.connect(home!.port);
      await c.ok(`LOGIN ${home!.address} "${home!.password}"`);
      return c;
    };
    const imap = await login();
    const phone = await pairPhone(home);
    await waitFor("the first sync", 20_000, async () => {
      await phone.sync({ flush: true });
      return phone.list("INBOX").length === 6;
    });
    imap.close();

    // Home restarts and nobody logs in: the account is locked, and the phone's changes reach
    // a home that cannot merge them yet (it drops them and asks the phone for the identity).
    await home.kill("SIGKILL");
    // While it is down, the phone flags in three bursts, syncing after each (sent, no answer).
    const all = phone.list("INBOX");
    for (let i = 0; i < all.length; i += 2) {
      for (const m of all.slice(i, i + 2)) await phone.flag(m.id, [...m.flags, "$Phone"]);
      await phone.sync();
    }
    await home.restart();
    const keyword = async () => {
      const c = await login();
      await c.ok("SELECT INBOX");
      const r = await c.ok("SEARCH KEYWORD $Phone");
      c.close();
      return r.untagged.map((u) => u.text).join(" ").split(" ").length - 2;
    };
    let syncs = 0;
    await waitFor("the phone's 6 changes at home", 20_000, async () => {
      await phone.sync({ flush: true });
      // The owner's IMAP login (which would unlock the account too) waits until the phone has
      // had its chance: the phone alone must unlock it and deliver the changes.
      return ++syncs > 10 && await keyword() === 6;
    }, 300);
  } finally {
    await home?.kill("SIGKILL");
    if (home) await Deno.remove(home.dataDir, { recursive: true }).catch(() => {});
    await edge.close();
    await Deno.remove(edgeDir, { recursive: true }).catch(() => {});
  }
});
