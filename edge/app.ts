/**
 * The edge's HTTP API (src/wire/edge_api.ts) as a Hono app. No `Deno.*`
 * calls: it runs on `Deno.serve` here and on a hosted Deno runtime; the
 * outside world (KV, DNS, clock) comes in through {@linkcode EdgeDeps}.
 *
 * @example
 * ```ts
 * const app = createApp({ store, hostname: "mx.example.org" });
 * Deno.serve({ port: 8080 }, app.fetch);
 * ```
 */
import { Hono } from "hono";
import type { Context, MiddlewareHandler } from "hono";
import type { OutboundQueue } from "../src/queue/queue.ts";
import { acceptOutbound } from "./outbound.ts";
import { parsePushSubscription, type PushRegistry } from "./push.ts";
import type { RelayStore } from "./relay.ts";
import { isDiskFull, ProtocolError } from "../src/errors.ts";
import { limits } from "../src/limits.ts";
import { log } from "../src/log.ts";
import { receivedHeader } from "../src/smtp/received.ts";
import { verifyRequest } from "../src/wire/signed_request.ts";
import { jsonObject, readBody, requestPath } from "../src/wire/http_body.ts";
import {
  type AckRequest,
  inboundHeaders,
  type InboundResult,
  type PullResponse,
  type PutAccountsRequest,
  type RegisterHomeRequest,
  type RegisterHomeResponse,
  type SealedItem,
} from "../src/wire/edge_api.ts";
import { type AccountRoute, checkRecipient, type InboundDeps, sealAndCommit } from "./inbound.ts";
import { wellKnownApp, type WellKnownDeps } from "./wellknown.ts";
import { acmeChallengeApp, KvAcmeChallenges } from "./acme_challenge.ts";
import { backupRelayApp } from "./backup_relay.ts";
import { longPoll } from "./long_poll.ts";
import type { ItemRecord } from "./store.ts";
import { encodeRelayAnswer, relayAnswerType } from "../src/wire/relay_answer.ts";

export interface EdgeDeps extends InboundDeps, Pick<WellKnownDeps, "mailClients" | "mtaSts"> {
  /** Relay mailboxes for sync envelopes; without it the relay routes answer 503. */
  relay?: RelayStore;
  /** Called when an envelope was posted to a device's relay mailbox (Web Push). */
  onRelay?: (device: string) => void;
  /** Web Push: device subscriptions and the VAPID public key phones subscribe with. */
  push?: { registry: PushRegistry; vapidPublicKey: string; allowInsecureEndpoints?: boolean };
  /** The relay queue for homes' outbound mail; without it `POST /v1/outbound` answers 503. */
  queue?: OutboundQueue;
  now?: () => number;
}

type Env = {
  Variables: { home: string; device: string; party: string; body: Uint8Array | null };
};

const deviceIdPattern = /^dev-[A-Za-z0-9_-]{8,60}$/;

/** Push subscriptions are kept per account of a home. */
export function pushAccountId(home: string, account: string): string {
  return `${home}/${account}`;
}

function base64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/** A waiting item as pulled, its sealed bytes still binary (binary relay answers keep them so). */
type RawSealedItem = Omit<SealedItem, "sealed"> & { sealed?: Uint8Array };

/** Items for a puller: the sealed bytes of small ones inline, edgePullInlineBytes in all at most. */
function inlineSmall(items: ItemRecord[]): RawSealedItem[] {
  let inline = 0;
  return items.map((i) => {
    const item: RawSealedItem = {
      id: i.id,
      account: i.account,
      size: i.size,
      arrived: i.arrived,
      sealedSize: i.sealedSize,
    };
    if (i.inline && inline + i.inline.length <= limits.edgePullInlineBytes) {
      inline += i.inline.length;
      item.sealed = i.inline;
    }
    return item;
  });
}

/** Items for a JSON answer: inline bytes in base64. */
function asJson(items: RawSealedItem[]): SealedItem[] {
  return items.map(({ sealed, ...item }) => sealed ? { ...item, sealed: base64(sealed) } : item);
}

/** A request body: a message with its envelope is the largest thing posted here. */
const bodyOf = (c: Context) => readBody(c.req.raw, limits.messageBytes + 64 * 1024);
const parseJson = jsonObject;
const pathOf = (c: Context) => requestPath(c.req.raw);

export function createApp(deps: EdgeDeps): Hono<Env> {
  const { store } = deps;
  const now = deps.now ?? Date.now;
  const app = new Hono<Env>();

  // The one place errors become responses; internals never reach the wire.
  app.onError((err, c) => {
    if (err instanceof ProtocolError) {
      return c.json({ error: err.message }, (err.http ?? 400) as 400);
    }
    if (isDiskFull(err)) {
      log.error("edge.disk-full", { path: c.req.path, error: err });
      // RFC 9110 §15.6.4: a temporary condition; the front (or home) retries after Retry-After.
      c.header("retry-after", "60");
      return c.json(
        { error: "the edge's storage is full; try again later" },
        503,
      );
    }
    log.error("edge.http-error", { path: c.req.path, error: err });
    return c.json({ error: "internal error; try again later" }, 500);
  });
  app.notFound((c) => c.json({ error: "no such route" }, 404));

  app.get("/v1/health", (c) => c.json({ ok: true }));
  // MTA-STS policy and mail client autoconfiguration (docs/setup.md).
  app.route("/", wellKnownApp(deps));
  // ACME HTTP-01 (RFC 8555 §8.3): tokens are in KV, so any edge process answers the CA.
  app.route("/", acmeChallengeApp(new KvAcmeChallenges(store.kv)));
  // Friend's-box backup between boxes that cannot reach each other (docs/backup.md).
  app.route("/", backupRelayApp({ store, now }));

  // Registration: signed by the key being pinned, which proves the home holds it.
  app.post("/v1/homes", async (c) => {
    const body = await bodyOf(c);
    const req = parseJson<RegisterHomeRequest>(body);
    if (typeof req.token !== "string" || typeof req.publicKey !== "string") {
      throw new ProtocolError("BAD", "token and publicKey are required");
    }
    await verifyRequest({ method: "POST", path: pathOf(c), headers: c.req.raw.headers, body }, {
      publicKeyOf: (id) => Promise.resolve(id === "new" ? req.publicKey : null),
      claimNonce: (_id, nonce, ttl) => store.claimNonce(`new:${req.publicKey}`, nonce, ttl),
      now,
    });
    const res: RegisterHomeResponse = await store.registerHome(req.token, req.publicKey);
    log.info("edge.home-registered", { home: res.homeId });
    return c.json(res, 201);
  });

  // Every /v1/home route and the outbound relay are signed by a registered home's pinned key.
  const signedByHome: MiddlewareHandler<Env> = async (c, next) => {
    const body = await bodyOf(c);
    const home = await verifyRequest(
      { method: c.req.method, path: pathOf(c), headers: c.req.raw.headers, body },
      {
        publicKeyOf: (id) => store.homeKey(id),
        claimNonce: (id, nonce, ttl) => store.claimNonce(id, nonce, ttl),
        now,
      },
    );
    c.set("home", home);
    c.set("body", body);
    await next();
  };
  app.use("/v1/home/*", signedByHome);
  app.use("/v1/outbound", signedByHome);

  // The outbound relay: a home's DKIM-signed message as the body; the envelope in the query
  // (`?from=A&to=B&to=C`), which the signature covers.
  app.post("/v1/outbound", async (c) => {
    if (!deps.queue) {
      throw new ProtocolError("NO", "this edge does not relay outbound mail", { http: 503 });
    }
    const to = c.req.queries("to") ?? [];
    const raw = c.get("body") ?? new Uint8Array();
    if (raw.length > limits.messageBytes) {
      throw new ProtocolError("NO", `message is larger than ${limits.messageBytes} bytes`, {
        http: 413,
      });
    }
    const id = await acceptOutbound(
      { store, queue: deps.queue },
      c.get("home"),
      c.req.query("from") ?? "",
      to,
      raw,
    );
    return c.json({ id }, 202);
  });

  app.put("/v1/home/accounts", async (c) => {
    const req = parseJson<PutAccountsRequest>(c.get("body"));
    if (!Array.isArray(req.accounts)) throw new ProtocolError("BAD", "accounts must be a list");
    await store.putAccounts(c.get("home"), req.accounts);
    return c.json({ accounts: req.accounts.length });
  });

  // The long-poll: answers at once when mail waits, else when some arrives or the wait ends.
  app.get("/v1/home/mail", async (c) => {
    const home = c.get("home");
    const { items, more } = await longPoll({
      waitSeconds: c.req.query("wait"),
      now,
      closing: () => store.closing,
      read: () => store.list(home, limits.edgePullItems),
      wait: (ms) => store.waitForMail(home, ms),
    });
    return c.json({ items: asJson(inlineSmall(items)), more } satisfies PullResponse);
  });

  app.get("/v1/home/mail/:id", async (c) => {
    const sealed = await store.sealed(c.get("home"), c.req.param("id"));
    if (!sealed) {
      throw new ProtocolError("NO", "no such item (already acknowledged?)", { http: 404 });
    }
    return c.body(sealed as Uint8Array<ArrayBuffer>, 200, {
      "content-type": "application/octet-stream",
    });
  });

  app.post("/v1/home/ack", async (c) => {
    const req = parseJson<AckRequest>(c.get("body"));
    if (!Array.isArray(req.ids) || req.ids.some((id) => typeof id !== "string")) {
      throw new ProtocolError("BAD", "ids must be a list of item ids");
    }
    const deleted = await store.ack(c.get("home"), req.ids);
    return c.json({ deleted });
  });

  // Devices: the home registers its paired phones' keys; each phone then signs its own requests.
  app.put("/v1/home/devices/:id", async (c) => {
    const id = c.req.param("id");
    if (!deviceIdPattern.test(id)) throw new ProtocolError("BAD", "device ids look like dev-…");
    const req = parseJson<{ account?: unknown; publicKey?: unknown }>(c.get("body"));
    if (typeof req.account !== "string" || typeof req.publicKey !== "string") {
      throw new ProtocolError("BAD", "account and publicKey are required");
    }
    await store.putDevice(c.get("home"), id, req.account, req.publicKey);
    return c.json({ device: id });
  });

  app.delete("/v1/home/devices/:id", async (c) => {
    const id = c.req.param("id");
    const device = await store.device(id);
    if (!device || !(await store.removeDevice(c.get("home"), id))) {
      throw new ProtocolError("NO", "no such device of this home", { http: 404 });
    }
    await deps.push?.registry.remove(pushAccountId(device.home, device.account), id);
    return c.json({ removed: id });
  });

  const signedByDevice: MiddlewareHandler<Env> = async (c, next) => {
    const body = await bodyOf(c);
    const device = await verifyRequest(
      { method: c.req.method, path: pathOf(c), headers: c.req.raw.headers, body },
      {
        publicKeyOf: async (id) => (await store.device(id))?.publicKey ?? null,
        claimNonce: (id, nonce, ttl) => store.claimNonce(`device:${id}`, nonce, ttl),
        now,
      },
    );
    if (device !== c.req.param("id")) {
      throw new ProtocolError("NO", "a device may change only its own registration", {
        http: 403,
      });
    }
    c.set("device", device);
    c.set("body", body);
    await next();
  };

  // Pairing boxes (sync/pairing.ts): a new phone posts its hello, unauthenticated but bound by
  // an HMAC the edge cannot check or forge; the home that made the code reads it, signed.
  app.post("/v1/pairing/:box", async (c) => {
    const box = c.req.param("box");
    if (!/^[0-9a-f]{64}$/.test(box)) throw new ProtocolError("BAD", "no such pairing box");
    const body = await bodyOf(c) ?? new Uint8Array();
    if (body.length > 4096) throw new ProtocolError("NO", "a hello is small", { http: 413 });
    parseJson(body);
    const key = ["edge", "pairbox", box];
    const res = await store.kv.atomic().check({ key, versionstamp: null })
      .set(key, body, { expireIn: limits.pairingBoxMs }).commit();
    if (!res.ok) throw new ProtocolError("NO", "this pairing code was already used", { http: 409 });
    return c.json({ posted: true }, 201);
  });

  app.get("/v1/home/pairing/:box", async (c) => {
    const got = await store.kv.get<Uint8Array>(["edge", "pairbox", c.req.param("box")]);
    if (!got.value) throw new ProtocolError("NO", "no hello yet", { http: 404 });
    return c.body(got.value as Uint8Array<ArrayBuffer>, 200, {
      "content-type": "application/json",
    });
  });

  app.get("/v1/push/key", (c) => {
    if (!deps.push) throw new ProtocolError("NO", "this edge sends no push", { http: 503 });
    return c.json({ publicKey: deps.push.vapidPublicKey });
  });

  app.put("/v1/devices/:id/push", signedByDevice, async (c) => {
    if (!deps.push) throw new ProtocolError("NO", "this edge sends no push", { http: 503 });
    let sub;
    try {
      sub = parsePushSubscription(parseJson(c.get("body")), {
        allowInsecure: deps.push.allowInsecureEndpoints,
      });
    } catch (e) {
      throw new ProtocolError("BAD", (e as Error).message);
    }
    const device = (await store.device(c.get("device")))!;
    await deps.push.registry.add(pushAccountId(device.home, device.account), c.get("device"), sub);
    return c.json({ subscribed: true });
  });

  // Mail and chat from a phone (docs/sync.md), from one of the device's own addresses.
  // Recipients served by this edge get it sealed at once, with a push (Urgency: high for chat);
  // others through the relay queue like the home's outbound mail. A chat is a mail with
  // Chat-Version: 1.0 (the Delta Chat convention).
  const sendFromDevice = (kind: "mail" | "chat") => async (c: Context<Env>) => {
    const device = (await store.device(c.get("device")))!;
    const raw = c.get("body") ?? new Uint8Array();
    if (raw.length > limits.messageBytes) {
      throw new ProtocolError("NO", "the message is too large", { http: 413 });
    }
    const head = new TextDecoder().decode(raw.subarray(0, Math.min(raw.length, 16 * 1024)));
    if (kind === "chat" && !/^Chat-Version:\s*1\.0\s*$/im.test(head)) {
      throw new ProtocolError("BAD", "a chat message carries Chat-Version: 1.0");
    }
    const from = c.req.query("from") ?? "";
    const to = c.req.queries("to") ?? [];
    const own = await store.route(from);
    if (own.kind !== "account" || own.account !== device.account || own.home !== device.home) {
      throw new ProtocolError("NO", `this device may not send as ${from}`, { http: 403 });
    }
    if (!to.length || to.length > limits.smtpRecipients) {
      throw new ProtocolError("BAD", "name between one and 100 recipients");
    }
    const local: { address: string; route: AccountRoute }[] = [];
    const remote: string[] = [];
    for (const address of to) {
      const route = await store.route(address);
      if (route.kind === "account") local.push({ address, route });
      else remote.push(address);
    }
    // Refusals (no relay, the hourly limit) come before anyone gets it: a half-delivered message
    // would leave the phone no Sent copy.
    if (remote.length) {
      if (!deps.queue) {
        throw new ProtocolError("NO", "this edge does not relay outbound mail", { http: 503 });
      }
      await acceptOutbound({ store, queue: deps.queue }, device.home, from, remote, raw);
    }
    const id = crypto.randomUUID().replaceAll("-", "").slice(0, 16);
    if (local.length) {
      await sealAndCommit({ ...deps, resolver: undefined }, {
        raw,
        recipients: local,
        client: { ip: "", helo: "", sender: from },
        kind,
        received: (recipient) =>
          receivedHeader({
            helo: c.get("device"),
            clientName: c.get("device"),
            clientIp: "unknown",
            by: deps.hostname,
            protocol: "HTTP",
            id,
            recipient,
            date: new Date(now()),
          }),
      });
    }
    return c.json({ local: local.length, remote: remote.length }, 202);
  };
  app.post("/v1/devices/:id/chat", signedByDevice, sendFromDevice("chat"));
  app.post("/v1/devices/:id/send", signedByDevice, sendFromDevice("mail"));

  // What waits at the edge for the device's account: a phone shows new mail while its home box
  // is offline. Read-only: only the home acks (deletes) items.
  app.get("/v1/devices/:id/mail", signedByDevice, async (c) => {
    return c.json({ items: await deviceMail(c.get("device"), ""), more: false });
  });

  /** Sealed items of a device's account waiting here, newer than `since`. */
  async function deviceMail(deviceId: string, since: string): Promise<SealedItem[]> {
    return asJson(await deviceMailRaw(deviceId, since));
  }

  /** Mail waiting here for a device's account, newer than `since`; small ones inline. */
  async function deviceMailRaw(
    deviceId: string,
    since: string,
  ): Promise<RawSealedItem[]> {
    const device = await store.device(deviceId);
    if (!device) return [];
    const { items } = await store.list(device.home, limits.edgePullItems);
    return inlineSmall(items.filter((i) => i.account === device.account && i.id > since));
  }

  app.delete("/v1/devices/:id/push", signedByDevice, async (c) => {
    const device = (await store.device(c.get("device")))!;
    await deps.push?.registry.remove(pushAccountId(device.home, device.account), c.get("device"));
    return c.json({ subscribed: false });
  });

  // Relay mailboxes: a home and its devices exchange sealed sync envelopes through the edge.
  /** The home a party (a home id or a device id) belongs to, or null. */
  const homeOf = async (party: string): Promise<string | null> => {
    if (party.startsWith("home-")) return (await store.home(party)) ? party : null;
    return (await store.device(party))?.home ?? null;
  };
  const signedByParty: MiddlewareHandler<Env> = async (c, next) => {
    if (!deps.relay) throw new ProtocolError("NO", "this edge relays no sync", { http: 503 });
    const body = await bodyOf(c);
    const party = await verifyRequest(
      { method: c.req.method, path: pathOf(c), headers: c.req.raw.headers, body },
      {
        publicKeyOf: async (id) =>
          id.startsWith("home-")
            ? await store.homeKey(id)
            : (await store.device(id))?.publicKey ?? null,
        claimNonce: (id, nonce, ttl) =>
          store.claimNonce(id.startsWith("home-") ? id : `device:${id}`, nonce, ttl),
        now,
      },
    );
    c.set("party", party);
    c.set("body", body);
    await next();
  };
  const ownMailbox: MiddlewareHandler<Env> = async (c, next) => {
    if (c.get("party") !== c.req.param("id")) {
      throw new ProtocolError("NO", "only its owner reads a relay mailbox", { http: 403 });
    }
    await next();
  };

  app.post("/v1/relay/:id", signedByParty, async (c) => {
    const id = await relayPost(
      c.get("party"),
      c.req.param("id"),
      c.get("body") ?? new Uint8Array(),
    );
    // `?ack=ID,ID`: the poster also acknowledges envelopes of its own mailbox (saves a request).
    const ack = (c.req.query("ack") ?? "").split(",").filter(Boolean);
    if (ack.length > limits.edgePullItems) throw new ProtocolError("BAD", "too many ids to ack");
    if (ack.length) await deps.relay!.ack(c.get("party"), ack);
    return c.json({ id }, 201);
  });

  /** What waits in `me`'s relay mailbox (long-poll up to `?wait=S`), as the relay GET answers. */
  const relayPull = async (c: Context<Env>, me: string) => {
    const { items, more } = await longPoll({
      waitSeconds: c.req.query("wait"),
      now,
      closing: () => store.closing,
      read: () => deps.relay!.list(me, limits.edgePullItems),
      wait: (ms) => deps.relay!.wait(me, ms),
    });
    // `?mail=ID` (a device): also the account's mail waiting here newer than ID ("" for
    // all), so one request brings a phone both its envelopes and new sealed messages.
    const since = c.req.query("mail");
    const wantsMail = since !== undefined && !me.startsWith("home-");
    if (c.req.header("accept") === relayAnswerType) {
      const body = encodeRelayAnswer({
        items,
        more,
        mail: wantsMail ? await deviceMailRaw(me, since) : undefined,
      });
      return c.body(body, 200, { "content-type": relayAnswerType });
    }
    const mail = wantsMail ? await deviceMail(me, since) : undefined;
    return c.json({
      items: items.map((i) => ({ id: i.id, at: i.at, envelope: base64(i.envelope) })),
      more,
      mail,
    });
  };

  /** Posts one envelope from `party` to `to` (a home and its own devices only). */
  const relayPost = async (party: string, to: string, envelope: Uint8Array): Promise<string> => {
    const [mine, theirs] = await Promise.all([homeOf(party), homeOf(to)]);
    if (!theirs || mine !== theirs) {
      throw new ProtocolError("NO", "envelopes go only between a home and its devices", {
        http: 403,
      });
    }
    const id = await deps.relay!.post(to, envelope);
    // A phone is woken by push to fetch it (it does not poll).
    if (!to.startsWith("home-")) deps.onRelay?.(to);
    return id;
  };

  app.get("/v1/relay/:id", signedByParty, ownMailbox, (c) => relayPull(c, c.get("party")));

  // One round trip for a phone woken by push: post its envelopes, acknowledge what it
  // processed, and take what waits, in one request.
  app.post("/v1/relay/:id/exchange", signedByParty, ownMailbox, async (c) => {
    const req = parseJson<{ ack?: unknown; send?: unknown }>(c.get("body"));
    const ack = Array.isArray(req.ack) ? req.ack.filter((x) => typeof x === "string") : [];
    const send = Array.isArray(req.send) ? req.send : [];
    if (ack.length > limits.edgePullItems || send.length > limits.edgePullItems) {
      throw new ProtocolError("BAD", "too many envelopes in one exchange");
    }
    for (const item of send as { to?: unknown; envelope?: unknown }[]) {
      if (typeof item?.to !== "string" || typeof item?.envelope !== "string") {
        throw new ProtocolError("BAD", "each envelope to send has a recipient and base64 bytes");
      }
      let bytes: Uint8Array;
      try {
        bytes = Uint8Array.from(atob(item.envelope), (ch) => ch.charCodeAt(0));
      } catch {
        throw new ProtocolError("BAD", "an envelope is not base64");
      }
      await relayPost(c.get("party"), item.to, bytes);
    }
    if (ack.length) await deps.relay!.ack(c.get("party"), ack as string[]);
    return await relayPull(c, c.get("party"));
  });

  app.post("/v1/relay/:id/ack", signedByParty, ownMailbox, async (c) => {
    const req = parseJson<AckRequest>(c.get("body"));
    if (!Array.isArray(req.ids) || req.ids.some((id) => typeof id !== "string")) {
      throw new ProtocolError("BAD", "ids must be a list of envelope ids");
    }
    return c.json({ deleted: await deps.relay!.ack(c.get("party"), req.ids) });
  });

  // Inbound mail from an HTTP mail front: the same rules as the SMTP front.
  app.post("/v1/inbound", async (c) => {
    const auth = c.req.header("authorization") ?? "";
    const token = auth.startsWith("Bearer ") ? auth.slice(7).trim() : "";
    const front = token ? await store.frontName(token) : null;
    if (!front) throw new ProtocolError("NO", "a valid bearer token is required", { http: 401 });
    const raw = await bodyOf(c) ?? new Uint8Array();
    if (raw.length > limits.messageBytes) {
      throw new ProtocolError("NO", `message is larger than ${limits.messageBytes} bytes`, {
        http: 413,
      });
    }
    const h = c.req.raw.headers;
    const to = (h.get(inboundHeaders.to) ?? "").split(",").map((s) => s.trim()).filter(Boolean);
    if (!to.length) throw new ProtocolError("BAD", `${inboundHeaders.to} names no recipient`);
    if (to.length > limits.smtpRecipients) {
      throw new ProtocolError("BAD", `more than ${limits.smtpRecipients} recipients`);
    }
    const from = h.get(inboundHeaders.from) ?? "";
    const client = {
      ip: h.get(inboundHeaders.clientIp) ?? "",
      helo: h.get(inboundHeaders.helo) ?? "",
      sender: from,
    };
    const result: InboundResult = { accepted: [], rejected: [] };
    const recipients: { address: string; route: AccountRoute }[] = [];
    for (const address of to) {
      try {
        recipients.push({ address, route: await checkRecipient(store, address) });
        result.accepted.push(address);
      } catch (e) {
        if (!(e instanceof ProtocolError) || !e.smtp) throw e;
        result.rejected.push({
          address,
          code: e.smtp.code,
          enhanced: e.smtp.enhanced,
          reason: e.message,
        });
      }
    }
    if (recipients.length) {
      const id = crypto.randomUUID().replaceAll("-", "").slice(0, 16);
      await sealAndCommit(deps, {
        raw,
        recipients,
        client,
        received: (recipient) =>
          receivedHeader({
            helo: client.helo || "unknown",
            clientName: front,
            clientIp: client.ip || "unknown",
            by: deps.hostname,
            // The front spoke SMTP to the sender; it reached us over HTTPS.
            protocol: "HTTP",
            id,
            recipient,
            date: new Date(now()),
          }),
      });
    }
    return c.json(result, recipients.length ? 200 : 400);
  });

  return app;
}
