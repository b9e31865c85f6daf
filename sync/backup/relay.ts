/**
 * The backup protocol through the edge (docs/backup.md, "Through the edge"):
 * for a friend's box that the home box cannot reach, nor it the home box. Each
 * request of sync/backup/client.ts, already signed for the host, is framed,
 * age-sealed to the host's envelope key, split into parts and posted to the
 * host's backup relay mailbox on its edge (edge/backup_relay.ts); the host
 * answers into the guest's mailbox, signed with its Ed25519 key and sealed to
 * a key the request carried. The edge sees sealed parts, their sizes and
 * mailboxes; it can delay or drop them, never read, forge or redirect them.
 *
 * A relay grant's URL names the route: `relay+https://EDGE/HOST_HOME_ID?r=AGE_RECIPIENT&k=ED25519`.
 *
 * @example
 * ```ts
 * const relay = new BackupRelayClient(parseRelayUrl(url)!, peer, token, key);
 * const client = new BackupClient(url, peer, key, { fetch: relay.fetch });
 * ```
 */
import { generateAccountKey, openSealed, sealToRecipient } from "../../src/crypto/age.ts";
import { sign, type SigningKey, verify } from "../../src/crypto/device.ts";
import { sha256, toBase64Url, toHex } from "../../src/encoding.ts";
import { limits } from "../../src/limits.ts";
import { signRequest } from "../../src/wire/signed_request.ts";
import {
  decodeRelayItems,
  encodeRelayParts,
  type RelayPartItem,
} from "../../src/wire/backup_relay.ts";
import { Reassembler, splitPayload } from "../parts.ts";
import { BackupClient } from "./client.ts";

/** Where a relay grant sends the backup protocol: the host's edge, its home id and keys. */
export interface RelayRoute {
  /** The edge's base URL (`https://edge.example`). */
  edge: string;
  /** The friend's box's home id at that edge: its backup relay mailbox. */
  host: string;
  /** The friend's box's envelope key (`age1…`): requests are sealed to it. */
  recipient: string;
  /** The friend's box's Ed25519 public key: answers must be signed by it. */
  hostKey: string;
}

const scheme = "relay+";
const answerDomain = new TextEncoder().encode("hearth-backup-relay-answer-v1\n");

export function isRelayUrl(url: string): boolean {
  return url.startsWith(scheme);
}

export function formatRelayUrl(r: RelayRoute): string {
  const q = new URLSearchParams({ r: r.recipient, k: r.hostKey });
  return `${scheme}${r.edge.replace(/\/+$/, "")}/${r.host}?${q}`;
}

/** The route of a `relay+https://…` URL; TypeError when it is not a complete one. */
export function parseRelayUrl(url: string): RelayRoute {
  let u: URL;
  try {
    u = new URL(url.slice(scheme.length));
  } catch {
    throw new TypeError(`not a backup relay URL: ${url}`);
  }
  const host = u.pathname.split("/").filter(Boolean).pop() ?? "";
  const recipient = u.searchParams.get("r") ?? "";
  const hostKey = u.searchParams.get("k") ?? "";
  if (
    !isRelayUrl(url) || !/^https?:$/.test(u.protocol) || !/^home-[0-9a-f]+$/.test(host) ||
    !recipient.startsWith("age1") || !hostKey
  ) {
    throw new TypeError(
      "not a complete backup relay URL (expected relay+https://EDGE/home-…?r=age1…&k=…)",
    );
  }
  const base = u.pathname.slice(0, u.pathname.lastIndexOf("/"));
  return { edge: `${u.origin}${base}`, host, recipient, hostKey };
}

/**
 * The secret a guest shows the edge to claim a slot: derived from the grant's
 * token, so the edge, which sees it, cannot use it at the host.
 */
export async function relayToken(grantToken: string): Promise<string> {
  const d = await sha256(new TextEncoder().encode(`hearth-backup-relay-token\n${grantToken}`));
  return toBase64Url(d);
}

/** What the host registers at the edge for a slot: the hash of {@linkcode relayToken}. */
export async function relayTokenHash(grantToken: string): Promise<string> {
  return toHex(await sha256(new TextEncoder().encode(await relayToken(grantToken))));
}

function frame(head: unknown, body: Uint8Array): Uint8Array {
  const h = new TextEncoder().encode(JSON.stringify(head));
  const out = new Uint8Array(4 + h.length + body.length);
  new DataView(out.buffer).setUint32(0, h.length);
  out.set(h, 4);
  out.set(body, 4 + h.length);
  return out;
}

function unframe<T>(bytes: Uint8Array): { head: T; body: Uint8Array } {
  if (bytes.length < 4) throw new RangeError("a relayed message is truncated");
  const n = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0);
  if (4 + n > bytes.length) throw new RangeError("a relayed message is truncated");
  const head = JSON.parse(new TextDecoder().decode(bytes.subarray(4, 4 + n))) as T;
  return { head, body: bytes.subarray(4 + n) };
}

interface RequestHead {
  v: 1;
  id: string;
  /** The age recipient the answer is sealed to (fresh per client, never stored). */
  reply: string;
  method: string;
  path: string;
  headers: Record<string, string>;
}

interface AnswerHead {
  v: 1;
  id: string;
  status: number;
  type: string | null;
}

/** Signed edge calls, as a home (keyId = home id) or a guest (keyId = guest id). */
export class EdgeCaller {
  constructor(readonly edge: string, readonly key: SigningKey, public keyId: string) {}

  async call(
    method: string,
    path: string,
    body: Uint8Array | null,
    signal?: AbortSignal,
  ): Promise<Response> {
    const headers = await signRequest(this.key, this.keyId, method, path, body);
    return await fetch(this.edge + path, {
      method,
      headers,
      body: body as Uint8Array<ArrayBuffer> | null,
      signal,
    });
  }

  /** Like call, but a refusal throws an Error with the edge's sentence. */
  async ok(method: string, path: string, body: Uint8Array | null, signal?: AbortSignal) {
    const res = await this.call(method, path, body, signal);
    if (res.ok) return res;
    const reason = await res.json().then((j) => j.error, () => res.statusText);
    throw new RelayError(res.status, `the edge ${this.edge} answered ${res.status}: ${reason}`);
  }

  /**
   * Posts a sealed payload to `mailbox` in parts, a few per request; waits
   * while the mailbox is full (its owner reads it) until `deadline`.
   */
  async post(mailbox: string, sealed: Uint8Array, deadline: number, signal?: AbortSignal) {
    const parts = splitPayload(sealed, limits.relayEnvelopeBytes);
    for (let i = 0; i < parts.length;) {
      const batch: Uint8Array[] = [];
      let bytes = 0;
      while (i < parts.length && bytes + parts[i].length + 4 <= limits.backupRelayPostBytes) {
        bytes += parts[i].length + 4;
        batch.push(parts[i++]);
      }
      for (let wait = 100;; wait = Math.min(wait * 2, 2000)) {
        try {
          await this.ok("POST", `/v1/backup-relay/mail/${mailbox}`, encodeRelayParts(batch), signal)
            .then((r) => r.body?.cancel());
          break;
        } catch (e) {
          if (!(e instanceof RelayError && e.status === 507) || Date.now() + wait > deadline) {
            throw e;
          }
          await new Promise((r) => setTimeout(r, wait));
        }
      }
    }
  }

  /** One long-poll of this party's own mailbox; acknowledges what it returns. */
  async pull(waitS: number, signal?: AbortSignal): Promise<RelayPartItem[]> {
    const res = await this.ok(
      "GET",
      `/v1/backup-relay/mail/${this.keyId}?wait=${waitS}`,
      null,
      signal,
    );
    const items = decodeRelayItems(new Uint8Array(await res.arrayBuffer()));
    if (items.length) {
      const ids = new TextEncoder().encode(JSON.stringify({ ids: items.map((i) => i.id) }));
      await this.ok("POST", `/v1/backup-relay/mail/${this.keyId}/ack`, ids, signal)
        .then((r) => r.body?.cancel());
    }
    return items;
  }
}

/** A refusal from the edge's backup relay, with its HTTP status. */
export class RelayError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = "RelayError";
  }
}

/**
 * The guest side: a `fetch` for {@linkcode BackupClient} that carries each
 * request through the edge and waits for the host's answer. It polls its
 * mailbox only while requests wait for answers.
 */
export class BackupRelayClient {
  readonly #route: RelayRoute;
  readonly #peer: string;
  readonly #grantToken: string;
  readonly #key: SigningKey;
  readonly #answerMs: number;
  #edge: EdgeCaller | null = null;
  #claiming: Promise<EdgeCaller> | null = null;
  #reply: Promise<{ identity: string; recipient: string }> = generateAccountKey();
  readonly #waiting = new Map<
    string,
    { resolve(r: Response): void; reject(e: Error): void }
  >();
  #polling: AbortController | null = null;
  readonly #parts = new Reassembler();

  constructor(
    route: RelayRoute,
    peer: string,
    grantToken: string,
    key: SigningKey,
    opts: { answerMs?: number } = {},
  ) {
    this.#route = route;
    this.#peer = peer;
    this.#grantToken = grantToken;
    this.#key = key;
    this.#answerMs = opts.answerMs ?? limits.backupRelayAnswerMs;
  }

  /** Claims (or finds again) this key's guest id on the host's slot. */
  #guest(): Promise<EdgeCaller> {
    if (this.#edge) return Promise.resolve(this.#edge);
    this.#claiming ??= (async () => {
      const body = new TextEncoder().encode(JSON.stringify({
        home: this.#route.host,
        peer: this.#peer,
        token: await relayToken(this.#grantToken),
        publicKey: this.#key.publicKey,
      }));
      const claim = new EdgeCaller(this.#route.edge, this.#key, "new");
      const res = await claim.ok("POST", "/v1/backup-relay/guests", body);
      const { guest } = await res.json() as { guest: string };
      this.#edge = new EdgeCaller(this.#route.edge, this.#key, guest);
      return this.#edge;
    })().finally(() => this.#claiming = null);
    return this.#claiming;
  }

  /** A `fetch` for BackupClient: the URL's path and the signed request go through the edge. */
  readonly fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = String(input);
    const path = url.slice(url.indexOf("/v1/backup"));
    const headers = Object.fromEntries(new Headers(init?.headers).entries());
    const body = init?.body ? new Uint8Array(init.body as Uint8Array) : new Uint8Array();
    const edge = await this.#guest();
    const id = toHex(crypto.getRandomValues(new Uint8Array(16)));
    const head: RequestHead = {
      v: 1,
      id,
      reply: (await this.#reply).recipient,
      method: init?.method ?? "GET",
      path,
      headers,
    };
    const sealed = await sealToRecipient(frame(head, body), this.#route.recipient);
    const deadline = Date.now() + this.#answerMs;
    const answer = new Promise<Response>((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
    });
    const timer = setTimeout(() => {
      this.#settle(id)?.reject(
        new Error(
          `the friend's box did not answer through the edge relay within ${
            Math.round(this.#answerMs / 1000)
          } s (is it running and linked to ${this.#route.edge}?)`,
        ),
      );
    }, this.#answerMs);
    try {
      this.#startPolling(edge);
      await edge.post(this.#route.host, sealed, deadline);
      return await answer;
    } catch (e) {
      this.#settle(id);
      throw e;
    } finally {
      clearTimeout(timer);
    }
  };

  #settle(id: string) {
    const w = this.#waiting.get(id);
    this.#waiting.delete(id);
    if (!this.#waiting.size) this.#polling?.abort();
    return w;
  }

  #startPolling(edge: EdgeCaller) {
    if (this.#polling) return;
    const stop = new AbortController();
    this.#polling = stop;
    (async () => {
      let backoff = 200;
      while (!stop.signal.aborted) {
        try {
          for (const item of await edge.pull(25, stop.signal)) await this.#take(item);
          backoff = 200;
        } catch (e) {
          if (stop.signal.aborted) break;
          // A refusal of the guest itself (slot closed) ends every waiting request.
          if (e instanceof RelayError && (e.status === 401 || e.status === 403)) {
            for (const id of [...this.#waiting.keys()]) this.#settle(id)?.reject(e);
            break;
          }
          await new Promise((r) => setTimeout(r, backoff));
          backoff = Math.min(backoff * 2, 5000);
        }
      }
    })().finally(() => {
      if (this.#polling === stop) this.#polling = null;
      // A request that came in while this poll was ending starts a new one.
      if (this.#waiting.size && this.#edge) this.#startPolling(this.#edge);
    });
  }

  async #take(item: RelayPartItem) {
    let whole: Uint8Array | null;
    try {
      whole = this.#parts.add(item.bytes);
    } catch {
      return; // not a part of ours: dropped (it was acknowledged)
    }
    if (!whole) return;
    let head: AnswerHead, body: Uint8Array;
    try {
      const signed = await openSealed(whole, (await this.#reply).identity);
      const payload = signed.subarray(64);
      const ok = await verify(this.#route.hostKey, signed.subarray(0, 64), concat(payload));
      if (!ok) return; // not signed by the friend's box: ignored
      ({ head, body } = unframe<AnswerHead>(payload));
    } catch {
      return;
    }
    const w = this.#settle(head.id);
    w?.resolve(
      new Response(head.status === 204 ? null : body as Uint8Array<ArrayBuffer>, {
        status: head.status,
        headers: head.type ? { "content-type": head.type } : {},
      }),
    );
  }
}

function concat(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(answerDomain.length + payload.length);
  out.set(answerDomain);
  out.set(payload, answerDomain.length);
  return out;
}

export interface RelayHostOptions {
  /** The host's edge, home id and signing key (as linked: `hearth home link`). */
  edge: string;
  homeId: string;
  key: SigningKey;
  /** The host's envelope identity (`AGE-SECRET-KEY-1…`): requests are sealed to it. */
  identity: string;
  /** Answers one request (the backup host's app). */
  handle(req: Request): Promise<Response>;
  signal: AbortSignal;
  /** Requests handled at once. */
  concurrency?: number;
  onError?: (e: Error) => void;
}

/**
 * The host side: pulls the host's backup relay mailbox, hands each whole
 * request to `handle`, seals and signs the answer back to the guest that
 * posted it. Runs until `signal` aborts.
 */
export async function serveBackupRelay(opts: RelayHostOptions): Promise<void> {
  const edge = new EdgeCaller(opts.edge, opts.key, opts.homeId);
  const byGuest = new Map<string, Reassembler>();
  const running = new Set<Promise<void>>();
  const limit = opts.concurrency ?? 4;
  let backoff = 200;
  while (!opts.signal.aborted) {
    let items: RelayPartItem[];
    try {
      items = await edge.pull(25, opts.signal);
      backoff = 200;
    } catch (e) {
      if (opts.signal.aborted) break;
      opts.onError?.(e as Error);
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 30_000);
      continue;
    }
    for (const item of items) {
      let parts = byGuest.get(item.from);
      if (!parts) {
        if (byGuest.size >= 64) byGuest.delete(byGuest.keys().next().value!);
        byGuest.set(item.from, parts = new Reassembler());
      }
      let whole: Uint8Array | null;
      try {
        whole = parts.add(item.bytes);
      } catch {
        continue;
      }
      if (!whole) continue;
      while (running.size >= limit) await Promise.race(running);
      const job = answer(opts, edge, item.from, whole).catch((e) => opts.onError?.(e as Error))
        .finally(() => running.delete(job));
      running.add(job);
    }
  }
  await Promise.allSettled(running);
}

async function answer(opts: RelayHostOptions, edge: EdgeCaller, from: string, sealed: Uint8Array) {
  let head: RequestHead, body: Uint8Array;
  try {
    ({ head, body } = unframe<RequestHead>(await openSealed(sealed, opts.identity)));
  } catch {
    return; // not sealed to this box, or damaged: nobody to answer
  }
  if (head.v !== 1 || typeof head.reply !== "string" || !head.path?.startsWith("/v1/backup")) {
    return;
  }
  const res = await opts.handle(
    new Request(`http://backup-relay${head.path}`, {
      method: head.method,
      headers: head.headers,
      body: head.method === "GET" || head.method === "HEAD"
        ? null
        : body as Uint8Array<ArrayBuffer>,
    }),
  );
  const out = frame(
    { v: 1, id: head.id, status: res.status, type: res.headers.get("content-type") } as AnswerHead,
    new Uint8Array(await res.arrayBuffer()),
  );
  const signature = await sign(opts.key.privateKey, concat(out));
  const signed = new Uint8Array(64 + out.length);
  signed.set(signature);
  signed.set(out, 64);
  await edge.post(
    from,
    await sealToRecipient(signed, head.reply),
    Date.now() + limits.backupRelayAnswerMs,
    opts.signal,
  );
}

/**
 * A client for a peer's URL: direct for `http(s)://`, through the edge for
 * `relay+http(s)://` (which needs the grant's token to claim its slot).
 */
export function backupClientFor(
  url: string,
  peer: string,
  token: string | undefined,
  key: SigningKey,
  opts: { keyId?: string; fetch?: typeof fetch; answerMs?: number } = {},
): BackupClient {
  if (!isRelayUrl(url)) return new BackupClient(url, peer, key, opts);
  if (!token) {
    throw new TypeError(
      "a backup through the edge relay needs the grant (URL#PEER.TOKEN), not only its URL",
    );
  }
  const relay = new BackupRelayClient(parseRelayUrl(url), peer, token, key, opts);
  return new BackupClient(url, peer, key, { keyId: opts.keyId, fetch: relay.fetch });
}
