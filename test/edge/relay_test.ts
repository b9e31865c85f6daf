// Relay mailboxes through the HTTP API: a home and its device exchange envelopes; nobody else
// can post to them or read them.
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { createApp } from "../../edge/app.ts";
import { RelayStore } from "../../edge/relay.ts";
import { EdgeStore } from "../../edge/store.ts";
import { generateAccountKey } from "../../src/crypto/age.ts";
import { generateSigningKey, type SigningKey } from "../../src/crypto/device.ts";
import { limits } from "../../src/limits.ts";
import { log } from "../../src/log.ts";
import { signRequest } from "../../src/wire/signed_request.ts";

log.setLevel("warn");

async function setUp() {
  const kv = await Deno.openKv(":memory:");
  const store = new EdgeStore(kv);
  const app = createApp({ store, hostname: "edge.test", relay: new RelayStore(kv) });
  const call = async (
    key: SigningKey,
    id: string,
    method: string,
    path: string,
    body?: Uint8Array | unknown,
  ) => {
    const bytes = body === undefined
      ? null
      : body instanceof Uint8Array
      ? body
      : new TextEncoder().encode(JSON.stringify(body));
    const headers = await signRequest(key, id, method, path, bytes);
    return await app.request(path, {
      method,
      headers,
      body: bytes as Uint8Array<ArrayBuffer> | null,
    });
  };
  const home = async (domain: string, device: string) => {
    const key = await generateSigningKey();
    const { homeId } = await store.registerHome(await store.createPairing(domain), key.publicKey);
    await store.putAccounts(homeId, [{
      id: "acct",
      recipient: (await generateAccountKey()).recipient,
      addressKeys: [],
    }]);
    const devKey = await generateSigningKey();
    await store.putDevice(homeId, device, "acct", devKey.publicKey);
    return { homeId, key, device, devKey };
  };
  return { kv, call, home };
}

Deno.test("a home and its device exchange envelopes through relay mailboxes", async () => {
  const t = await setUp();
  try {
    const a = await t.home("a.test", "dev-aaaaaaaa01");
    const envelope = new Uint8Array([1, 2, 3, 4]);
    assertEquals(
      (await t.call(a.key, a.homeId, "POST", `/v1/relay/${a.device}`, envelope)).status,
      201,
    );
    const got = await (await t.call(a.devKey, a.device, "GET", `/v1/relay/${a.device}`)).json();
    assertEquals(got.items.length, 1);
    assertEquals(atob(got.items[0].envelope), "\x01\x02\x03\x04");
    await t.call(a.devKey, a.device, "POST", `/v1/relay/${a.device}/ack`, {
      ids: [got.items[0].id],
    });
    const after = await (await t.call(a.devKey, a.device, "GET", `/v1/relay/${a.device}`)).json();
    assertEquals(after.items, []);
    // A post can acknowledge the poster's own envelopes on the way (one request fewer).
    assertEquals(
      (await t.call(a.key, a.homeId, "POST", `/v1/relay/${a.device}`, envelope)).status,
      201,
    );
    const again = await (await t.call(a.devKey, a.device, "GET", `/v1/relay/${a.device}`)).json();
    assertEquals(
      (await t.call(
        a.devKey,
        a.device,
        "POST",
        `/v1/relay/${a.homeId}?ack=${again.items[0].id}`,
        envelope,
      )).status,
      201,
    );
    const acked = await (await t.call(a.devKey, a.device, "GET", `/v1/relay/${a.device}`)).json();
    assertEquals(acked.items, []);
    // The device answers its home.
    assertEquals(
      (await t.call(a.devKey, a.device, "POST", `/v1/relay/${a.homeId}`, envelope)).status,
      201,
    );
    const home = await (await t.call(a.key, a.homeId, "GET", `/v1/relay/${a.homeId}`)).json();
    assertEquals(home.items.length, 2);
  } finally {
    t.kv.close();
  }
});

Deno.test("one exchange posts, acknowledges and takes what waits in a single request", async () => {
  const t = await setUp();
  try {
    const a = await t.home("a.test", "dev-aaaaaaaa01");
    await t.call(a.key, a.homeId, "POST", `/v1/relay/${a.device}`, new Uint8Array([1]));
    const first =
      await (await t.call(a.devKey, a.device, "POST", `/v1/relay/${a.device}/exchange`, {
        send: [{ to: a.homeId, envelope: btoa("\x07") }],
      })).json();
    assertEquals(first.items.length, 1);
    const second =
      await (await t.call(a.devKey, a.device, "POST", `/v1/relay/${a.device}/exchange`, {
        ack: [first.items[0].id],
      })).json();
    assertEquals(second.items, [], "acknowledged by the second exchange");
    const home = await (await t.call(a.key, a.homeId, "GET", `/v1/relay/${a.homeId}`)).json();
    assertEquals(home.items.map((i: { envelope: string }) => i.envelope), [btoa("\x07")]);
    // Sending to another home's party is refused like a post.
    const b = await t.home("b.test", "dev-bbbbbbbb01");
    const refused = await t.call(a.devKey, a.device, "POST", `/v1/relay/${a.device}/exchange`, {
      send: [{ to: b.device, envelope: btoa("x") }],
    });
    assertEquals(refused.status, 403);
  } finally {
    t.kv.close();
  }
});

Deno.test("another home's parties can neither post to nor read a relay mailbox", async () => {
  const t = await setUp();
  try {
    const a = await t.home("a.test", "dev-aaaaaaaa01");
    const b = await t.home("b.test", "dev-bbbbbbbb01");
    const envelope = new Uint8Array([9]);
    assertEquals(
      (await t.call(b.key, b.homeId, "POST", `/v1/relay/${a.device}`, envelope)).status,
      403,
    );
    assertEquals(
      (await t.call(b.devKey, b.device, "POST", `/v1/relay/${a.homeId}`, envelope)).status,
      403,
    );
    assertEquals((await t.call(b.devKey, b.device, "GET", `/v1/relay/${a.device}`)).status, 403);
    // Signed with b's key but naming a's device as the signer: the signature does not verify.
    assertEquals((await t.call(b.devKey, a.device, "GET", `/v1/relay/${a.device}`)).status, 401);
    const big = new Uint8Array(limits.relayEnvelopeBytes + 1);
    assertEquals((await t.call(a.key, a.homeId, "POST", `/v1/relay/${a.device}`, big)).status, 413);
  } finally {
    t.kv.close();
  }
});
