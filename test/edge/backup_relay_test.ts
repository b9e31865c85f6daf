// The edge's backup relay (edge/backup_relay.ts): slots, claims, who may post and read, the
// mailbox cap; driven through the Hono app with signed requests (app.request).
import { deepStrictEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import { Hono } from "hono";
import { backupRelayApp, BackupRelayStore } from "../../edge/backup_relay.ts";
import { EdgeStore } from "../../edge/store.ts";
import { generateSigningKey, type SigningKey } from "../../src/crypto/device.ts";
import { limits } from "../../src/limits.ts";
import { ProtocolError } from "../../src/errors.ts";
import { signRequest } from "../../src/wire/signed_request.ts";
import { decodeRelayItems, encodeRelayParts } from "../../src/wire/backup_relay.ts";
import { relayToken, relayTokenHash } from "../../sync/backup/relay.ts";

const peer = "p-0123456789abcdef";

Deno.test("backup relay: a guest claims a slot with the token and talks only with its host", async () => {
  const kv = await Deno.openKv(":memory:");
  const store = new EdgeStore(kv);
  try {
    // Mounted as edge/app.ts does: its one error handler turns refusals into statuses.
    const app = new Hono();
    app.onError((err, c) =>
      err instanceof ProtocolError
        ? c.json({ error: err.message }, (err.http ?? 400) as 400)
        : c.json({ error: "internal" }, 500)
    );
    app.route("/", backupRelayApp({ store }));
    const call = async (
      key: SigningKey,
      id: string,
      method: string,
      path: string,
      body?: unknown,
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
    const hostKey = await generateSigningKey();
    const otherKey = await generateSigningKey();
    const { homeId: host } = await store.registerHome(
      await store.createPairing("friend.example"),
      hostKey.publicKey,
    );
    const { homeId: other } = await store.registerHome(
      await store.createPairing("other.example"),
      otherKey.publicKey,
    );
    const grantToken = "grant-token-0123456789";
    const opened = await call(hostKey, host, "POST", "/v1/backup-relay/slots", {
      peer,
      tokenHash: await relayTokenHash(grantToken),
    });
    assertEquals(opened.status, 201);

    const guestKey = await generateSigningKey();
    const claim = (token: string, key = guestKey) =>
      call(key, "new", "POST", "/v1/backup-relay/guests", {
        home: host,
        peer,
        token,
        publicKey: key.publicKey,
      });
    // The grant's own token is not the relay token: the edge never sees the grant's.
    assertEquals((await claim(grantToken)).status, 403);
    const claimed = await claim(await relayToken(grantToken));
    assertEquals(claimed.status, 201);
    const { guest } = await claimed.json();
    assertEquals((await (await claim(await relayToken(grantToken))).json()).guest, guest);

    const parts = encodeRelayParts([new Uint8Array([1, 2, 3])]);
    assertEquals(
      (await call(guestKey, guest, "POST", `/v1/backup-relay/mail/${host}`, parts)).status,
      201,
    );
    // Not to another home, not to itself; another home cannot post to this guest nor read.
    assertEquals(
      (await call(guestKey, guest, "POST", `/v1/backup-relay/mail/${other}`, parts)).status,
      403,
    );
    assertEquals(
      (await call(otherKey, other, "POST", `/v1/backup-relay/mail/${guest}`, parts)).status,
      403,
    );
    assertEquals((await call(otherKey, other, "GET", `/v1/backup-relay/mail/${host}`)).status, 403);
    assertEquals((await call(guestKey, guest, "GET", `/v1/backup-relay/mail/${host}`)).status, 403);

    const pulled = await call(hostKey, host, "GET", `/v1/backup-relay/mail/${host}?wait=0`);
    const items = decodeRelayItems(new Uint8Array(await pulled.arrayBuffer()));
    assertEquals(items.map((i) => [i.from, [...i.bytes]]), [[guest, [1, 2, 3]]]);
    await call(hostKey, host, "POST", `/v1/backup-relay/mail/${host}/ack`, { ids: [items[0].id] });
    const empty = await call(hostKey, host, "GET", `/v1/backup-relay/mail/${host}?wait=0`);
    assertEquals((await empty.arrayBuffer()).byteLength, 0);
    assertEquals(
      (await call(hostKey, host, "POST", `/v1/backup-relay/mail/${guest}`, parts)).status,
      201,
    );

    // Closing the slot shuts the guest out.
    assertEquals(
      (await call(hostKey, host, "DELETE", `/v1/backup-relay/slots/${peer}`)).status,
      200,
    );
    assertEquals(
      (await call(guestKey, guest, "POST", `/v1/backup-relay/mail/${host}`, parts)).status,
      401,
    );
  } finally {
    store.shutdown();
    kv.close();
  }
});

Deno.test("backup relay: a mailbox holds at most backupRelayMailboxBytes (507 beyond)", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const relay = new BackupRelayStore(kv);
    const part = new Uint8Array(limits.relayEnvelopeBytes);
    const batch = Array.from({ length: 16 }, () => part);
    const fits = Math.floor(limits.backupRelayMailboxBytes / (16 * part.length));
    for (let i = 0; i < fits; i++) await relay.post("home-1", "bkg-1", batch);
    await rejects(
      relay.post("home-1", "bkg-1", batch),
      (e: ProtocolError) => e.http === 507 && /full/.test(e.message),
    );
    // Reading and acknowledging makes room again.
    const { items } = await relay.list("home-1", 4 * 1024 * 1024);
    assert(items.length > 16);
    await relay.ack("home-1", items.map((i) => i.id));
    assertEquals(await relay.post("home-1", "bkg-1", batch), 16);
  } finally {
    kv.close();
  }
});
