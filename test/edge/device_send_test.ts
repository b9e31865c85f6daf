// Mail from a phone through the edge (POST /v1/devices/ID/send): from the device's own address
// only, sealed at once for local recipients, and refused before anyone gets it when the remote
// part cannot go (no relay queue), so the phone never holds a half-sent message.
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { createApp } from "../../edge/app.ts";
import { EdgeStore } from "../../edge/store.ts";
import { generateAccountKey } from "../../src/crypto/age.ts";
import { generateSigningKey } from "../../src/crypto/device.ts";
import { log } from "../../src/log.ts";
import { addressKey } from "../../src/mail/address_key.ts";
import { signRequest } from "../../src/wire/signed_request.ts";

log.setLevel("warn");

const mail = new TextEncoder().encode(
  "From: <me@a.test>\r\nTo: <you@a.test>\r\nSubject: plain mail\r\n\r\nhello\r\n",
);

async function setUp() {
  const kv = await Deno.openKv(":memory:");
  const store = new EdgeStore(kv);
  const app = createApp({ store, hostname: "edge.test" });
  const homeKey = await generateSigningKey();
  const { homeId } = await store.registerHome(
    await store.createPairing("a.test"),
    homeKey.publicKey,
  );
  await store.putAccounts(homeId, [
    {
      id: "acct-me",
      recipient: (await generateAccountKey()).recipient,
      addressKeys: [await addressKey("me@a.test")],
    },
    {
      id: "acct-you",
      recipient: (await generateAccountKey()).recipient,
      addressKeys: [await addressKey("you@a.test")],
    },
  ]);
  const key = await generateSigningKey();
  await store.putDevice(homeId, "dev-phone-0001", "acct-me", key.publicKey);
  const send = async (query: string) => {
    const path = `/v1/devices/dev-phone-0001/send?${query}`;
    const headers = await signRequest(key, "dev-phone-0001", "POST", path, mail);
    return await app.request(path, { method: "POST", headers, body: mail });
  };
  const waiting = async () => (await store.list(homeId, 100)).items.length;
  return { kv, send, waiting };
}

Deno.test("a phone's mail reaches a local account sealed; no Chat-Version needed", async () => {
  const t = await setUp();
  try {
    const res = await t.send("from=me%40a.test&to=you%40a.test");
    assertEquals(res.status, 202, await res.clone().text());
    assertEquals(await res.json(), { local: 1, remote: 0 });
    assertEquals(await t.waiting(), 1);
  } finally {
    t.kv.close();
  }
});

Deno.test("a phone's mail is refused whole when its remote part cannot go", async () => {
  const t = await setUp();
  try {
    const res = await t.send("from=me%40a.test&to=you%40a.test&to=kim%40remote.example");
    assertEquals(res.status, 503);
    assertEquals(await t.waiting(), 0, "the local recipient did not get it either");
    const forged = await t.send("from=you%40a.test&to=you%40a.test");
    assertEquals(forged.status, 403, "only from the device's own account");
  } finally {
    t.kv.close();
  }
});
