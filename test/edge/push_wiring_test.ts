// Web Push wired into a running edge: the home registers a device, the device subscribes with a
// request signed by its own key (another device cannot), and mail for the account wakes it with
// one content-free push per debounce window.
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { startEdge } from "../../edge/main.ts";
import { RecordingPushSender } from "../../edge/push.ts";
import { generateAccountKey } from "../../src/crypto/age.ts";
import { generateSigningKey, type SigningKey } from "../../src/crypto/device.ts";
import { log } from "../../src/log.ts";
import { addressKey } from "../../src/mail/address_key.ts";
import { signRequest } from "../../src/wire/signed_request.ts";

log.setLevel("warn");

const subscription = {
  endpoint: "https://push.example/sub/1",
  keys: {
    // A valid uncompressed P-256 point shape (65 bytes, 0x04 first) and a 16-byte secret.
    p256dh:
      "BAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    auth: "AAAAAAAAAAAAAAAAAAAAAA",
  },
};

async function signedFetch(
  url: string,
  key: SigningKey,
  keyId: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<Response> {
  const bytes = body === undefined ? null : new TextEncoder().encode(JSON.stringify(body));
  const headers = await signRequest(key, keyId, method, path, bytes);
  return await fetch(url + path, { method, headers, body: bytes });
}

Deno.test("a device subscribes with its own key and is woken once per burst of mail", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hearth-edge-push-" });
  const sender = new RecordingPushSender();
  const edge = await startEdge({
    dataDir: dir,
    hostname: "edge.localhost",
    listen: "127.0.0.1",
    httpPort: 0,
    smtpPort: null,
    push: { sender, mailDebounceMs: 300 },
  });
  try {
    const token = await edge.store.createPairing("a.test");
    const homeKey = await generateSigningKey();
    const { homeId } = await edge.store.registerHome(token, homeKey.publicKey);
    const acct = await generateAccountKey();
    await edge.store.putAccounts(homeId, [{
      id: "acct-1",
      recipient: acct.recipient,
      addressKeys: [await addressKey("me@a.test")],
    }]);
    const phone = await generateSigningKey();
    const other = await generateSigningKey();
    const put = (id: string, key: SigningKey) =>
      signedFetch(edge.url, homeKey, homeId, "PUT", `/v1/home/devices/${id}`, {
        account: "acct-1",
        publicKey: key.publicKey,
      });
    assertEquals((await put("dev-phone-0001", phone)).status, 200);
    assertEquals((await put("dev-other-0002", other)).status, 200);

    // The other device cannot subscribe in the phone's name.
    const forged = await signedFetch(
      edge.url,
      other,
      "dev-other-0002",
      "PUT",
      "/v1/devices/dev-phone-0001/push",
      subscription,
    );
    assertEquals(forged.status, 403);
    await forged.body?.cancel();
    const ok = await signedFetch(
      edge.url,
      phone,
      "dev-phone-0001",
      "PUT",
      "/v1/devices/dev-phone-0001/push",
      subscription,
    );
    assertEquals(ok.status, 200);
    await ok.body?.cancel();
    const vapid = await (await fetch(`${edge.url}/v1/push/key`)).json();
    assertEquals(typeof vapid.publicKey, "string");

    const front = await edge.store.createFrontToken("test");
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${edge.url}/v1/inbound`, {
        method: "POST",
        headers: { authorization: `Bearer ${front}`, "hearth-rcpt-to": "me@a.test" },
        body: `Subject: secret subject ${i}\r\n\r\nsecret body\r\n`,
      });
      assertEquals(res.status, 200);
      await res.body?.cancel();
    }
    await new Promise((r) => setTimeout(r, 600));
    assertEquals(sender.sent.length, 1, "one push for the burst");
    assertEquals(sender.sent[0].payload, { kind: "mail", count: 3 });
    assertEquals(sender.sent[0].subscription.endpoint, subscription.endpoint);
    assertEquals(sender.sent[0].delivery.urgency, "normal");
  } finally {
    await edge.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
