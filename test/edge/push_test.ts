/**
 * Web Push from the edge, against a test push service on 127.0.0.1 that records
 * each request; bodies are decrypted with npm:http_ece as a browser would.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { createECDH, randomBytes } from "node:crypto";
import { Buffer } from "node:buffer";
import ece from "http_ece";
import {
  generateVapidKeys,
  ManualTimers,
  parsePushSubscription,
  PushNotifier,
  PushRegistry,
  type PushResult,
  type PushSubscription,
  RecordingPushSender,
  WebPushSender,
} from "../../edge/push.ts";
import { fromBase64Url } from "../../src/encoding.ts";

interface Recorded {
  path: string;
  headers: Headers;
  body: Uint8Array;
}

/** A push service: `/gone/*` answers 410, `/busy/*` 503, `/hang/*` never, the rest 201. */
function startPushService() {
  const requests: Recorded[] = [];
  const release = Promise.withResolvers<void>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const path = new URL(req.url).pathname;
    requests.push({ path, headers: req.headers, body: new Uint8Array(await req.arrayBuffer()) });
    if (path.startsWith("/gone/")) return new Response(null, { status: 410 });
    if (path.startsWith("/busy/")) {
      return new Response(null, { status: 503, headers: { "retry-after": "30" } });
    }
    if (path.startsWith("/hang/")) await release.promise;
    return new Response(null, { status: 201, headers: { location: `${path}/msg` } });
  });
  const origin = `http://127.0.0.1:${server.addr.port}`;
  return {
    requests,
    origin,
    async close() {
      release.resolve();
      await server.shutdown();
    },
  };
}

/** A browser-side subscription: a real P-256 ECDH key pair and a 16-byte auth secret. */
function makeDevice(endpoint: string) {
  const ecdh = createECDH("prime256v1");
  ecdh.generateKeys();
  const auth = randomBytes(16).toString("base64url");
  const subscription: PushSubscription = {
    endpoint,
    keys: { p256dh: ecdh.getPublicKey().toString("base64url"), auth },
  };
  return {
    subscription,
    /** RFC 8291: what the device's push client would hand to the service worker. */
    decrypt(body: Uint8Array): unknown {
      const plain = ece.decrypt(Buffer.from(body), {
        version: "aes128gcm",
        privateKey: ecdh,
        authSecret: auth,
      });
      return JSON.parse(plain.toString("utf8"));
    },
  };
}

const vapid = generateVapidKeys("mailto:postmaster@hearth.test");

/** Checks the RFC 8292 header: `vapid t=<JWT>, k=<key>`, signature and claims. */
async function checkVapid(headers: Headers, origin: string) {
  const m = /^vapid t=([\w-]+\.[\w-]+\.[\w-]+), k=([\w-]+)$/.exec(headers.get("authorization")!);
  assert(m, `VAPID Authorization header: ${headers.get("authorization")}`);
  const [jwt, k] = [m[1], m[2]];
  assertEquals(k, vapid.publicKey);
  const [h, p, s] = jwt.split(".");
  const claims = JSON.parse(new TextDecoder().decode(fromBase64Url(p)));
  assertEquals(JSON.parse(new TextDecoder().decode(fromBase64Url(h))).alg, "ES256");
  // RFC 8292 §2: aud is the origin of the push resource; exp at most 24 hours ahead.
  assertEquals(claims.aud, origin);
  assertEquals(claims.sub, vapid.subject);
  assert(claims.exp > Date.now() / 1000 && claims.exp <= Date.now() / 1000 + 24 * 3600);
  const key = await crypto.subtle.importKey(
    "raw",
    fromBase64Url(k) as Uint8Array<ArrayBuffer>,
    { name: "ECDSA", namedCurve: "P-256" },
    false,
    ["verify"],
  );
  const ok = await crypto.subtle.verify(
    { name: "ECDSA", hash: "SHA-256" },
    key,
    fromBase64Url(s) as Uint8Array<ArrayBuffer>,
    new TextEncoder().encode(`${h}.${p}`),
  );
  assert(ok, "VAPID JWT signature verifies with k");
}

Deno.test("WebPushSender sends an aes128gcm push with VAPID, TTL, Urgency and Topic", async () => {
  const svc = startPushService();
  try {
    const device = makeDevice(`${svc.origin}/push/dev1`);
    const result = await new WebPushSender({ vapid, timeoutMs: 5_000 }).send(
      device.subscription,
      { kind: "mail", count: 2 },
      { urgency: "normal", topic: "hearth-mail", ttlSeconds: 86400 },
    );
    assertEquals(result, { outcome: "ok", status: 201 });
    assertEquals(svc.requests.length, 1);
    const { headers, body, path } = svc.requests[0];
    assertEquals(path, "/push/dev1");
    assertEquals(headers.get("content-encoding"), "aes128gcm");
    assertEquals(headers.get("ttl"), "86400");
    assertEquals(headers.get("urgency"), "normal");
    assertEquals(headers.get("topic"), "hearth-mail");
    await checkVapid(headers, svc.origin);
    assertEquals(device.decrypt(body), { k: "mail", n: 2 });
  } finally {
    await svc.close();
  }
});

Deno.test("PushNotifier coalesces 5 mail arrivals within the window into one push of count 5", async () => {
  const svc = startPushService();
  try {
    const timers = new ManualTimers();
    const notifier = new PushNotifier({
      sender: new WebPushSender({ vapid, timeoutMs: 5_000 }),
      mailDebounceMs: 3_000,
      timers,
    });
    const device = makeDevice(`${svc.origin}/push/dev1`);
    for (let i = 0; i < 5; i++) {
      notifier.notify("dev1", device.subscription, "mail");
      timers.advance(500);
    }
    await notifier.settled();
    assertEquals(svc.requests.length, 0, "nothing is sent while the window is open");
    timers.advance(1_000);
    await notifier.settled();
    assertEquals(svc.requests.length, 1);
    const { headers, body } = svc.requests[0];
    assertEquals(headers.get("urgency"), "normal");
    assertEquals(headers.get("topic"), "hearth-mail");
    assertEquals(headers.get("ttl"), String(24 * 3600));
    // Only kind and count: no sender, subject, address or message id reaches the push service.
    assertEquals(device.decrypt(body), { k: "mail", n: 5 });
    // RFC 8291 §4: 86-byte header, one delimiter byte, 16-byte tag: the body is no bigger
    // than the plaintext above, so nothing else rides along.
    assertEquals(body.length, 86 + '{"k":"mail","n":5}'.length + 1 + 16);

    // The next arrival opens a new window.
    notifier.notify("dev1", device.subscription, "mail");
    timers.advance(3_000);
    await notifier.settled();
    assertEquals(svc.requests.length, 2);
    assertEquals(device.decrypt(svc.requests[1].body), { k: "mail", n: 1 });
    assertEquals(timers.pending, 0);
  } finally {
    await svc.close();
  }
});

Deno.test("PushNotifier sends chat at once with Urgency high, apart from pending mail", async () => {
  const svc = startPushService();
  try {
    const timers = new ManualTimers();
    const notifier = new PushNotifier({ sender: new WebPushSender({ vapid }), timers });
    const device = makeDevice(`${svc.origin}/push/dev1`);
    notifier.notify("dev1", device.subscription, "mail");
    notifier.notify("dev1", device.subscription, "chat");
    timers.advance(0);
    await notifier.settled();
    assertEquals(svc.requests.length, 1);
    const chat = svc.requests[0];
    assertEquals(chat.headers.get("urgency"), "high");
    assertEquals(chat.headers.get("topic"), "hearth-chat");
    assertEquals(chat.headers.get("ttl"), "3600");
    assertEquals(device.decrypt(chat.body), { k: "chat", n: 1 });
    await notifier.flush(); // the mail push, without waiting for its window
    assertEquals(svc.requests.length, 2);
    assertEquals(device.decrypt(svc.requests[1].body), { k: "mail", n: 1 });
  } finally {
    await svc.close();
  }
});

Deno.test("PushNotifier with real timers sends chat on the next turn", async () => {
  const sender = new RecordingPushSender();
  const notifier = new PushNotifier({ sender });
  try {
    notifier.notify("dev1", makeDevice("https://push.test/a").subscription, "chat");
    for (let i = 0; i < 100 && sender.sent.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assertEquals(sender.sent.map((s) => [s.payload, s.delivery.urgency]), [[
      { kind: "chat", count: 1 },
      "high",
    ]]);
  } finally {
    notifier.close();
  }
});

Deno.test("PushNotifier debounces each device on its own", async () => {
  const sender = new RecordingPushSender();
  const timers = new ManualTimers();
  const notifier = new PushNotifier({ sender, timers, mailDebounceMs: 1_000 });
  const a = makeDevice("https://push.test/a").subscription;
  const b = makeDevice("https://push.test/b").subscription;
  notifier.notify("a", a, "mail");
  notifier.notify("b", b, "mail");
  notifier.notify("a", a, "mail");
  timers.advance(1_000);
  await notifier.settled();
  assertEquals(
    sender.sent.map((s) => [s.subscription.endpoint, s.payload.count]),
    [["https://push.test/a", 2], ["https://push.test/b", 1]],
  );
});

Deno.test("a 410 from the push service reports the subscription gone", async () => {
  const svc = startPushService();
  try {
    const gone: string[] = [];
    const timers = new ManualTimers();
    const notifier = new PushNotifier({
      sender: new WebPushSender({ vapid, timeoutMs: 5_000 }),
      timers,
      onGone: (deviceId, sub) => void gone.push(`${deviceId} ${new URL(sub.endpoint).pathname}`),
    });
    notifier.notify("old", makeDevice(`${svc.origin}/gone/old`).subscription, "mail");
    await notifier.flush();
    assertEquals(svc.requests.length, 1);
    assertEquals(gone, ["old /gone/old"]);
  } finally {
    await svc.close();
  }
});

Deno.test("WebPushSender reports 503 as retryable and a silent service as a timeout", async () => {
  const svc = startPushService();
  try {
    const sender = new WebPushSender({ vapid, timeoutMs: 300 });
    const delivery = { urgency: "normal", topic: "hearth-mail", ttlSeconds: 60 } as const;
    const busy = await sender.send(makeDevice(`${svc.origin}/busy/x`).subscription, {
      kind: "mail",
      count: 1,
    }, delivery);
    assertEquals(busy, {
      outcome: "failed",
      retryable: true,
      status: 503,
      reason: "push service answered 503",
      retryAfterSeconds: 30,
    });
    const started = Date.now();
    const hung: PushResult = await sender.send(makeDevice(`${svc.origin}/hang/x`).subscription, {
      kind: "mail",
      count: 1,
    }, delivery);
    assertEquals(hung.outcome === "failed" && hung.retryable, true);
    assert(Date.now() - started < 3_000);
  } finally {
    await svc.close();
  }
});

Deno.test("parsePushSubscription accepts a browser subscription and rejects bad ones", () => {
  const good = makeDevice("https://push.example/abc").subscription;
  assertEquals(parsePushSubscription(JSON.parse(JSON.stringify(good))), good);
  const bad = (v: unknown, opts = {}) => {
    try {
      parsePushSubscription(v, opts);
      return "accepted";
    } catch (err) {
      return err instanceof TypeError ? err.message : `not a TypeError: ${err}`;
    }
  };
  assertEquals(bad(null), "push subscription needs an endpoint");
  assertEquals(
    bad({ ...good, endpoint: "http://push.example/abc" }),
    "push subscription endpoint must be https",
  );
  assertEquals(
    bad({ ...good, endpoint: "http://127.0.0.1:1/x" }, { allowInsecure: true }),
    "accepted",
  );
  assertEquals(
    bad({ ...good, keys: { ...good.keys, p256dh: good.keys.auth } }),
    "push subscription p256dh must be an uncompressed P-256 public key",
  );
  assertEquals(
    bad({ ...good, keys: { ...good.keys, auth: "AAAA" } }),
    "push subscription auth secret must be 16 bytes",
  );
  assertEquals(
    bad({ ...good, keys: { ...good.keys, auth: "not base64!" } }),
    "push subscription auth must be base64url",
  );
});

Deno.test("PushRegistry stores, lists and removes subscriptions per account", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const registry = new PushRegistry(kv, () => 1_000);
    const phone = makeDevice("https://push.example/phone").subscription;
    const tablet = makeDevice("https://push.example/tablet").subscription;
    await registry.add("alice", "phone", phone);
    await registry.add("alice", "tablet", tablet);
    await registry.add("bob", "phone", tablet);
    assertEquals(await registry.list("alice"), [
      { deviceId: "phone", subscription: phone, created: 1_000 },
      { deviceId: "tablet", subscription: tablet, created: 1_000 },
    ]);
    await registry.remove("alice", "phone");
    assertEquals((await registry.list("alice")).map((r) => r.deviceId), ["tablet"]);
    assertEquals((await registry.list("bob")).length, 1);
  } finally {
    kv.close();
  }
});
