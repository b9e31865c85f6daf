// The edge's HTTP API in-process (app.request): registration, signed requests and what they
// refuse, pull/ack isolation between homes, HTTP inbound, large items, retention and orphans.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { createApp } from "../../edge/app.ts";
import { EdgeStore, inlineBytes } from "../../edge/store.ts";
import { generateAccountKey, openSealed } from "../../src/crypto/age.ts";
import { generateSigningKey, type SigningKey } from "../../src/crypto/device.ts";
import { addressKey } from "../../src/mail/address_key.ts";
import { signRequest } from "../../src/wire/signed_request.ts";
import type { PullResponse } from "../../src/wire/edge_api.ts";
import { log } from "../../src/log.ts";

log.setLevel("warn");
const now = Date.parse("2026-11-30T12:00:00Z");

interface Home {
  id: string;
  key: SigningKey;
  identity: string;
}

async function setUp() {
  let clock = now;
  const kv = await Deno.openKv(":memory:");
  const store = new EdgeStore(kv, { now: () => clock });
  const app = createApp({ store, hostname: "edge.test", now: () => clock });

  const send = async (
    key: SigningKey | null,
    keyId: string,
    method: string,
    path: string,
    body?: unknown,
    tweak?: (h: Record<string, string>) => void,
  ) => {
    const bytes = body === undefined ? null : new TextEncoder().encode(JSON.stringify(body));
    const headers = key ? await signRequest(key, keyId, method, path, bytes, clock) : {};
    tweak?.(headers);
    return await app.request(path, { method, headers, body: bytes });
  };

  const addHome = async (domain: string, local: string): Promise<Home> => {
    const token = await store.createPairing(domain);
    const key = await generateSigningKey();
    const res = await send(key, "new", "POST", "/v1/homes", { token, publicKey: key.publicKey });
    assertEquals(res.status, 201);
    const { homeId } = await res.json();
    const acct = await generateAccountKey();
    const put = await send(key, homeId, "PUT", "/v1/home/accounts", {
      accounts: [{
        id: "acct-1",
        recipient: acct.recipient,
        addressKeys: [await addressKey(`${local}@${domain}`)],
      }],
    });
    assertEquals(put.status, 200);
    return { id: homeId, key, identity: acct.identity };
  };

  return {
    store,
    app,
    send,
    addHome,
    advance: (ms: number) => (clock += ms),
    close: () => kv.close(),
  };
}

async function post(app: ReturnType<typeof createApp>, token: string, to: string, raw: string) {
  return await app.request("/v1/inbound", {
    method: "POST",
    headers: {
      authorization: `Bearer ${token}`,
      "content-type": "message/rfc822",
      "hearth-mail-from": "sender@example.org",
      "hearth-rcpt-to": to,
      "hearth-client-ip": "192.0.2.7",
    },
    body: raw,
  });
}

const message = "From: sender@example.org\nTo: me@a.test\nSubject: hi\n\nbody line\n";

Deno.test("a pairing token registers one home, once", async () => {
  const t = await setUp();
  try {
    const token = await t.store.createPairing("a.test");
    const key = await generateSigningKey();
    const first = await t.send(key, "new", "POST", "/v1/homes", {
      token,
      publicKey: key.publicKey,
    });
    assertEquals(first.status, 201);
    assertEquals((await first.json()).domain, "a.test");
    const other = await generateSigningKey();
    const again = await t.send(other, "new", "POST", "/v1/homes", {
      token,
      publicKey: other.publicKey,
    });
    assertEquals(again.status, 403);
    // Signed by a key other than the one it asks to pin: refused.
    const token2 = await t.store.createPairing("b.test");
    const forged = await t.send(other, "new", "POST", "/v1/homes", {
      token: token2,
      publicKey: key.publicKey,
    });
    assertEquals(forged.status, 401);
  } finally {
    t.close();
  }
});

Deno.test("unsigned, badly signed, replayed and stale requests are refused", async () => {
  const t = await setUp();
  try {
    const home = await t.addHome("a.test", "me");
    assertEquals((await t.send(null, home.id, "GET", "/v1/home/mail")).status, 401);
    const wrongKey = await generateSigningKey();
    assertEquals((await t.send(wrongKey, home.id, "GET", "/v1/home/mail")).status, 401);
    // A signature over another path does not carry over.
    const moved = await t.send(home.key, home.id, "GET", "/v1/home/mail", undefined, (h) => {
      h["hearth-signature"] = h["hearth-signature"].replace(/^./, (c) => c === "A" ? "B" : "A");
    });
    assertEquals(moved.status, 401);
    // Replay: the same headers twice.
    const headers = await signRequest(home.key, home.id, "GET", "/v1/home/mail", null, now);
    assertEquals((await t.app.request("/v1/home/mail", { headers })).status, 200);
    const replay = await t.app.request("/v1/home/mail", { headers });
    assertEquals(replay.status, 401);
    assert((await replay.json()).error.includes("replayed"));
    // Stale: signed ten minutes ago.
    const stale = await signRequest(
      home.key,
      home.id,
      "GET",
      "/v1/home/mail",
      null,
      Date.parse("2026-11-30T11:50:00Z"),
    );
    const old = await t.app.request("/v1/home/mail", { headers: stale });
    assertEquals(old.status, 401);
    assert((await old.json()).error.includes("date"));
    // A body that is not the one signed.
    const body = new TextEncoder().encode(JSON.stringify({ ids: [] }));
    const signed = await signRequest(home.key, home.id, "POST", "/v1/home/ack", body, now);
    const swapped = await t.app.request("/v1/home/ack", {
      method: "POST",
      headers: signed,
      body: JSON.stringify({ ids: ["x"] }),
    });
    assertEquals(swapped.status, 401);
  } finally {
    t.close();
  }
});

Deno.test("HTTP inbound seals to the account; only that home pulls and acks it", async () => {
  const t = await setUp();
  try {
    const a = await t.addHome("a.test", "me");
    const b = await t.addHome("b.test", "you");
    const front = await t.store.createFrontToken("test-front");
    assertEquals((await post(t.app, "wrong", "me@a.test", message)).status, 401);
    const res = await post(t.app, front, "me@a.test, nobody@a.test, x@elsewhere.test", message);
    assertEquals(res.status, 200);
    const result = await res.json();
    assertEquals(result.accepted, ["me@a.test"]);
    assertEquals(result.rejected.map((r: { code: number }) => r.code), [550, 554]);

    // Home b sees nothing of a's and cannot ack it.
    const pullB = await (await t.send(b.key, b.id, "GET", "/v1/home/mail")).json() as PullResponse;
    assertEquals(pullB.items, []);
    const pullA = await (await t.send(a.key, a.id, "GET", "/v1/home/mail")).json() as PullResponse;
    assertEquals(pullA.items.length, 1);
    const item = pullA.items[0];
    await t.send(b.key, b.id, "POST", "/v1/home/ack", { ids: [item.id] });
    assertEquals((await t.store.list(a.id, 10)).items.length, 1, "b's ack deleted nothing");

    const sealed = Uint8Array.from(atob(item.sealed!), (c) => c.charCodeAt(0));
    const plain = new TextDecoder().decode(await openSealed(sealed, a.identity));
    assert(plain.startsWith("Received: from unknown (test-front [192.0.2.7])"), plain);
    assert(plain.endsWith("Subject: hi\r\n\r\nbody line\r\n"), "CRLF only");
    assertEquals(item.size, new TextEncoder().encode(plain).length);

    const ack = await t.send(a.key, a.id, "POST", "/v1/home/ack", { ids: [item.id] });
    assertEquals((await ack.json()).deleted, 1);
    assertEquals((await t.store.list(a.id, 10)).items.length, 0);
  } finally {
    t.close();
  }
});

Deno.test("a long-poll answers as soon as mail arrives", async () => {
  const t = await setUp();
  try {
    const a = await t.addHome("a.test", "me");
    const front = await t.store.createFrontToken("f");
    const started = performance.now();
    const pull = t.send(a.key, a.id, "GET", "/v1/home/mail?wait=5");
    await new Promise((r) => setTimeout(r, 100));
    await post(t.app, front, "me@a.test", message);
    const got = await (await pull).json() as PullResponse;
    assertEquals(got.items.length, 1);
    assert(performance.now() - started < 2_000, "answered before the wait ended");
  } finally {
    t.close();
  }
});

Deno.test("a large item is stored in chunks and fetched whole", async () => {
  const t = await setUp();
  try {
    const a = await t.addHome("a.test", "me");
    const front = await t.store.createFrontToken("f");
    const big = message + "x".repeat(70).concat("\n").repeat(3000);
    assertEquals((await post(t.app, front, "me@a.test", big)).status, 200);
    const pull = await (await t.send(a.key, a.id, "GET", "/v1/home/mail")).json() as PullResponse;
    const item = pull.items[0];
    assert(item.sealedSize > inlineBytes && item.sealed === undefined);
    const res = await t.send(a.key, a.id, "GET", `/v1/home/mail/${item.id}`);
    const sealed = new Uint8Array(await res.arrayBuffer());
    assertEquals(sealed.length, item.sealedSize);
    const plain = await openSealed(sealed, a.identity);
    assertEquals(plain.length, item.size);
    await t.send(a.key, a.id, "POST", "/v1/home/ack", { ids: [item.id] });
    let chunks = 0;
    for await (const _ of t.store.kv.list({ prefix: ["edge", "chunk"] })) chunks++;
    assertEquals(chunks, 0, "the ack deleted the chunks");
  } finally {
    t.close();
  }
});

Deno.test("orphaned chunks and expired items are collected", async () => {
  const t = await setUp();
  try {
    const a = await t.addHome("a.test", "me");
    const front = await t.store.createFrontToken("f");
    await post(t.app, front, "me@a.test", message);
    // A crash between chunks and their record: chunks of an id that has no item.
    const orphanId = `${
      (t.store.now() - 2 * 3600_000).toString(36).padStart(9, "0")
    }00ff00ff00ff00ff`;
    await t.store.kv.set(["edge", "chunk", orphanId, 0], new Uint8Array(10));
    assertEquals(await t.store.collectOrphans(), 1);
    assertEquals(await t.store.expire(), 0);
    t.advance(15 * 24 * 3600_000);
    assertEquals(await t.store.expire(), 1);
    assertEquals((await t.store.list(a.id, 10)).items.length, 0);
  } finally {
    t.close();
  }
});

Deno.test("a full KV answers 503 with Retry-After and a clear text, not 500", async () => {
  const t = await setUp();
  try {
    await t.addHome("a.test", "me");
    const front = await t.store.createFrontToken("f");
    // What Deno KV's SQLite reports when the disk is full (SQLITE_FULL).
    t.store.commitSealed = () => Promise.reject(new TypeError("database or disk is full"));
    const res = await post(t.app, front, "me@a.test", message);
    assertEquals(res.status, 503);
    assertEquals(res.headers.get("retry-after"), "60");
    assertEquals((await res.json()).error, "the edge's storage is full; try again later");
  } finally {
    t.close();
  }
});
