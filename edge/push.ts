/**
 * Web Push from the edge to registered devices: RFC 8030 (delivery), RFC 8291
 * (payload encryption, aes128gcm), RFC 8292 (VAPID), through npm:web-push.
 *
 * A push carries only a kind and a count (`{"k":"mail","n":3}`): the push
 * service learns that a device was woken and how urgently, never who wrote or
 * what (DESIGN.md, Trust model). The phone then syncs over its own signed
 * request. No `Deno.*` calls here: the edge may run on a hosted Deno runtime.
 *
 * @example
 * ```ts
 * const sender = new WebPushSender({ vapid: await loadVapidKeys() });
 * const notifier = new PushNotifier({
 *   sender,
 *   onGone: (deviceId) => registry.remove(accountId, deviceId),
 * });
 * for (const d of await registry.list(accountId)) notifier.notify(d.deviceId, d.subscription, "mail");
 * ```
 */
import webpush from "web-push";
import { limits } from "../src/limits.ts";
import { fromBase64Url } from "../src/encoding.ts";

/** The W3C `PushSubscription.toJSON()` shape a device registers. */
export interface PushSubscription {
  endpoint: string;
  keys: { p256dh: string; auth: string };
}

/** The application server's VAPID key pair (base64url, RFC 8292 §3.2) and contact URI. */
export interface VapidKeys {
  /** Uncompressed P-256 public key, 65 bytes, base64url. */
  publicKey: string;
  /** P-256 private scalar, 32 bytes, base64url. */
  privateKey: string;
  /** `mailto:` or `https:` contact for the push service operator (RFC 8292 §2.1). */
  subject: string;
}

export type PushKind = "mail" | "chat";
/** RFC 8030 §5.3. */
export type PushUrgency = "very-low" | "low" | "normal" | "high";

/** Everything a push says: what kind of thing arrived, and how many. */
export interface PushPayload {
  kind: PushKind;
  count: number;
}

/** How the push service should treat one message. */
export interface PushDelivery {
  /** RFC 8030 §5.3: lets the device's push client skip waking the radio for low priority. */
  urgency: PushUrgency;
  /** RFC 8030 §5.4: a newer message with the same topic replaces an undelivered one. */
  topic: string;
  /** RFC 8030 §5.2: seconds the push service may hold the message for an offline device. */
  ttlSeconds: number;
}

/**
 * What became of one push. `gone` (404/410, RFC 8030 §7.3) means the subscription
 * will never work again and must be deleted; `failed` with `retryable` is worth
 * another attempt later (429, 5xx, network), without it is a fault to fix.
 */
export type PushResult =
  | { outcome: "ok"; status: number }
  | { outcome: "gone"; status: number }
  | {
    outcome: "failed";
    retryable: boolean;
    reason: string;
    status?: number;
    retryAfterSeconds?: number;
  };

/** Sends one Web Push. {@linkcode WebPushSender} is real; {@linkcode RecordingPushSender} records. */
export interface PushSender {
  send(sub: PushSubscription, payload: PushPayload, delivery: PushDelivery): Promise<PushResult>;
}

/** Policy per kind. Topics are constants so unread wake-ups of one kind replace each other. */
export const pushPolicy: Record<PushKind, PushDelivery & { debounceMs: number }> = {
  // Mail can wait a few seconds and a day: one wake-up per burst saves battery.
  mail: {
    urgency: "normal",
    topic: "hearth-mail",
    ttlSeconds: 24 * 60 * 60,
    debounceMs: limits.pushDebounceMs,
  },
  // Chat is conversational: wake now; a chat wake-up older than an hour is stale.
  chat: { urgency: "high", topic: "hearth-chat", ttlSeconds: 60 * 60, debounceMs: 0 },
};

/** The wire form of a payload: short keys, nothing but kind and count. */
export function encodePushPayload(payload: PushPayload): string {
  return JSON.stringify({ k: payload.kind, n: payload.count });
}

/** RFC 8030 §5.4: a topic is at most 32 characters of the base64url alphabet. */
export function isValidTopic(topic: string): boolean {
  return /^[A-Za-z0-9_-]{1,32}$/.test(topic);
}

/**
 * Checks a device-supplied subscription: an `https:` endpoint (RFC 8030 §8; `http:`
 * only with `allowInsecure`, for loopback tests), a 65-byte uncompressed P-256 key
 * and a 16-byte auth secret (RFC 8291 §3). Throws TypeError naming the bad field.
 */
export function parsePushSubscription(
  value: unknown,
  opts: { allowInsecure?: boolean } = {},
): PushSubscription {
  const v = value as Partial<PushSubscription> | null;
  if (typeof v?.endpoint !== "string") throw new TypeError("push subscription needs an endpoint");
  let url: URL;
  try {
    url = new URL(v.endpoint);
  } catch {
    throw new TypeError("push subscription endpoint is not a URL");
  }
  if (url.protocol !== "https:" && !(opts.allowInsecure && url.protocol === "http:")) {
    throw new TypeError("push subscription endpoint must be https");
  }
  const p256dh = decodeKey(v.keys?.p256dh, "p256dh");
  if (p256dh.length !== 65 || p256dh[0] !== 4) {
    throw new TypeError("push subscription p256dh must be an uncompressed P-256 public key");
  }
  if (decodeKey(v.keys?.auth, "auth").length !== 16) {
    throw new TypeError("push subscription auth secret must be 16 bytes");
  }
  return { endpoint: v.endpoint, keys: { p256dh: v.keys!.p256dh, auth: v.keys!.auth } };
}

function decodeKey(value: unknown, name: string): Uint8Array {
  if (typeof value !== "string" || !/^[A-Za-z0-9_-]+={0,2}$/.test(value)) {
    throw new TypeError(`push subscription ${name} must be base64url`);
  }
  return fromBase64Url(value);
}

/** A fresh VAPID key pair (RFC 8292 §3.2) for `subject` (`mailto:` or `https:`). */
export function generateVapidKeys(subject: string): VapidKeys {
  if (!/^(mailto:|https:)/.test(subject)) {
    throw new TypeError("VAPID subject must be a mailto: or https: URI (RFC 8292 §2.1)");
  }
  const { publicKey, privateKey } = webpush.generateVAPIDKeys();
  return { publicKey, privateKey, subject };
}

export interface WebPushSenderOptions {
  vapid: VapidKeys;
  /** Longest wait for the push service's answer. */
  timeoutMs?: number;
  /** Injected for tests; defaults to the global fetch. */
  fetch?: typeof fetch;
}

/**
 * Sends through web-push's request builder (encryption, VAPID JWT) and `fetch`:
 * web-push's own `sendNotification` goes through node's `https.request`, which
 * cannot reach an `http:` test service and has no overall deadline.
 */
export class WebPushSender implements PushSender {
  readonly #vapid: VapidKeys;
  readonly #timeoutMs: number;
  readonly #fetch: typeof fetch;

  constructor(opts: WebPushSenderOptions) {
    this.#vapid = opts.vapid;
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
    this.#fetch = opts.fetch ?? fetch;
  }

  async send(
    sub: PushSubscription,
    payload: PushPayload,
    delivery: PushDelivery,
  ): Promise<PushResult> {
    if (!isValidTopic(delivery.topic)) throw new RangeError(`bad push topic ${delivery.topic}`);
    let details: { endpoint: string; headers: Record<string, string | number>; body: Uint8Array };
    try {
      details = webpush.generateRequestDetails(sub, encodePushPayload(payload), {
        // RFC 8292 §2: the JWT's aud is the endpoint's origin; web-push derives it.
        vapidDetails: this.#vapid,
        // RFC 8291 §4: aes128gcm, the record size and key id travel in the body header.
        contentEncoding: "aes128gcm",
        TTL: delivery.ttlSeconds,
        urgency: delivery.urgency,
        topic: delivery.topic,
      });
    } catch (err) {
      // Bad keys in a subscription or in our VAPID configuration: retrying cannot help.
      return { outcome: "failed", retryable: false, reason: errorText(err) };
    }
    const headers = new Headers();
    for (const [name, value] of Object.entries(details.headers)) {
      if (name.toLowerCase() !== "content-length") headers.set(name, String(value));
    }
    let res: Response;
    try {
      res = await this.#fetch(details.endpoint, {
        method: "POST",
        headers,
        body: new Uint8Array(details.body),
        redirect: "manual",
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
      await res.body?.cancel();
    } catch (err) {
      return { outcome: "failed", retryable: true, reason: errorText(err) };
    }
    return classify(res);
  }
}

function classify(res: Response): PushResult {
  const status = res.status;
  if (status >= 200 && status < 300) return { outcome: "ok", status };
  // RFC 8030 §7.3: the subscription has expired or was never valid.
  if (status === 404 || status === 410) return { outcome: "gone", status };
  // RFC 8030 §8.4 (429) and server errors: try later, honouring Retry-After if given.
  if (status === 429 || status >= 500) {
    const after = Number(res.headers.get("retry-after"));
    return {
      outcome: "failed",
      retryable: true,
      status,
      reason: `push service answered ${status}`,
      ...(Number.isFinite(after) && after > 0 ? { retryAfterSeconds: after } : {}),
    };
  }
  // 400/401/403 (bad VAPID), 413 (payload too large, RFC 8030 §7.2): our fault.
  return { outcome: "failed", retryable: false, status, reason: `push service answered ${status}` };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A push recorded by {@linkcode RecordingPushSender}. */
export interface RecordedPush {
  subscription: PushSubscription;
  payload: PushPayload;
  delivery: PushDelivery;
}

/** Test double: records pushes and answers with `result` (ok by default). */
export class RecordingPushSender implements PushSender {
  readonly sent: RecordedPush[] = [];
  result: PushResult = { outcome: "ok", status: 201 };

  send(sub: PushSubscription, payload: PushPayload, delivery: PushDelivery): Promise<PushResult> {
    this.sent.push({ subscription: sub, payload, delivery });
    return Promise.resolve(this.result);
  }
}

/** Timers the notifier schedules with; injected so tests can move time by hand. */
export interface PushTimers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

export const realTimers: PushTimers = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (handle) => clearTimeout(handle as number),
};

/** Test double: timers that fire only when {@linkcode ManualTimers.advance} passes them. */
export class ManualTimers implements PushTimers {
  #now = 0;
  #next = 0;
  readonly #due = new Map<number, { at: number; fn: () => void }>();

  set(fn: () => void, ms: number): unknown {
    const id = this.#next++;
    this.#due.set(id, { at: this.#now + ms, fn });
    return id;
  }

  clear(handle: unknown): void {
    this.#due.delete(handle as number);
  }

  /** Moves time forward by `ms`, running due timers in order. */
  advance(ms: number): void {
    const until = this.#now + ms;
    for (;;) {
      const next = [...this.#due.entries()].filter(([, t]) => t.at <= until)
        .sort((a, b) => a[1].at - b[1].at)[0];
      if (!next) break;
      this.#due.delete(next[0]);
      this.#now = next[1].at;
      next[1].fn();
    }
    this.#now = until;
  }

  get pending(): number {
    return this.#due.size;
  }
}

export interface PushNotifierOptions {
  sender: PushSender;
  /** Mail debounce window; defaults to `limits.pushDebounceMs`. */
  mailDebounceMs?: number;
  /** Chat debounce window; defaults to 0 (send on the next turn, coalescing a simultaneous burst). */
  chatDebounceMs?: number;
  timers?: PushTimers;
  /** The push service says this subscription is gone: delete it from the registry. */
  onGone?: (deviceId: string, sub: PushSubscription) => void | Promise<void>;
  /** A push failed (or `onGone` threw); the arrival stays in the edge queue either way. */
  onFailure?: (deviceId: string, result: PushResult) => void;
}

interface Pending {
  subscription: PushSubscription;
  count: number;
  handle: unknown;
}

/**
 * Debounces wake-ups per device and kind: the first arrival opens a window, later
 * ones within it only raise the count, and one push goes out when it closes. The
 * window is fixed from the first arrival, so a steady stream cannot postpone the
 * push forever.
 */
export class PushNotifier {
  readonly #sender: PushSender;
  readonly #timers: PushTimers;
  readonly #windowMs: Record<PushKind, number>;
  readonly #onGone?: PushNotifierOptions["onGone"];
  readonly #onFailure?: PushNotifierOptions["onFailure"];
  readonly #pending = new Map<string, Pending>();
  readonly #inFlight = new Set<Promise<void>>();

  constructor(opts: PushNotifierOptions) {
    this.#sender = opts.sender;
    this.#timers = opts.timers ?? realTimers;
    this.#windowMs = {
      mail: opts.mailDebounceMs ?? pushPolicy.mail.debounceMs,
      chat: opts.chatDebounceMs ?? pushPolicy.chat.debounceMs,
    };
    this.#onGone = opts.onGone;
    this.#onFailure = opts.onFailure;
  }

  /** One arrival of `kind` for the device; the latest subscription given is the one used. */
  notify(deviceId: string, subscription: PushSubscription, kind: PushKind): void {
    const key = `${kind}\u0000${deviceId}`;
    const pending = this.#pending.get(key);
    if (pending) {
      pending.count++;
      pending.subscription = subscription;
      return;
    }
    const entry: Pending = { subscription, count: 1, handle: undefined };
    this.#pending.set(key, entry);
    entry.handle = this.#timers.set(() => this.#fire(key, deviceId, kind), this.#windowMs[kind]);
  }

  /** Sends every pending push now and waits for all sends (shutdown, tests). */
  async flush(): Promise<void> {
    for (const [key, p] of [...this.#pending]) {
      this.#timers.clear(p.handle);
      const [kind, deviceId] = key.split("\u0000") as [PushKind, string];
      this.#fire(key, deviceId, kind);
    }
    await this.settled();
  }

  /** Resolves once no push is being sent. */
  async settled(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.all(this.#inFlight);
  }

  /** Drops pending pushes without sending them. */
  close(): void {
    for (const p of this.#pending.values()) this.#timers.clear(p.handle);
    this.#pending.clear();
  }

  #fire(key: string, deviceId: string, kind: PushKind): void {
    const p = this.#pending.get(key);
    if (!p) return;
    this.#pending.delete(key);
    const task = this.#deliver(deviceId, kind, p).finally(() => this.#inFlight.delete(task));
    this.#inFlight.add(task);
  }

  async #deliver(deviceId: string, kind: PushKind, p: Pending): Promise<void> {
    const { urgency, topic, ttlSeconds } = pushPolicy[kind];
    let result: PushResult;
    try {
      result = await this.#sender.send(p.subscription, { kind, count: p.count }, {
        urgency,
        topic,
        ttlSeconds,
      });
    } catch (err) {
      result = { outcome: "failed", retryable: false, reason: errorText(err) };
    }
    try {
      if (result.outcome === "gone") await this.#onGone?.(deviceId, p.subscription);
      else if (result.outcome === "failed") this.#onFailure?.(deviceId, result);
    } catch (err) {
      this.#onFailure?.(deviceId, { outcome: "failed", retryable: true, reason: errorText(err) });
    }
  }
}

/** A registered device's subscription as stored. */
export interface PushRegistration {
  deviceId: string;
  subscription: PushSubscription;
  /** Milliseconds since the epoch. */
  created: number;
}

/**
 * Subscriptions per account in Deno KV: `["push", accountId, deviceId]` →
 * `{subscription, created}`. Callers verify the device's signature first.
 */
export class PushRegistry {
  readonly #kv: Deno.Kv;
  readonly #now: () => number;

  constructor(kv: Deno.Kv, now: () => number = Date.now) {
    this.#kv = kv;
    this.#now = now;
  }

  /** Stores (or replaces) the device's subscription. */
  async add(accountId: string, deviceId: string, subscription: PushSubscription): Promise<void> {
    await this.#kv.set(["push", accountId, deviceId], { subscription, created: this.#now() });
  }

  async remove(accountId: string, deviceId: string): Promise<void> {
    await this.#kv.delete(["push", accountId, deviceId]);
  }

  async list(accountId: string): Promise<PushRegistration[]> {
    const out: PushRegistration[] = [];
    const iter = this.#kv.list<{ subscription: PushSubscription; created: number }>({
      prefix: ["push", accountId],
    });
    for await (const e of iter) {
      out.push({ deviceId: String(e.key[2]), ...e.value });
    }
    return out;
  }
}
