/**
 * The backup relay (docs/backup.md, "Through the edge"): store-and-forward
 * mailboxes between a friend's box that keeps a backup (a home registered
 * here, the host) and the home boxes that replicate to it (guests), when
 * neither can reach the other. The edge carries opaque sealed parts: requests
 * are age-sealed to the host's envelope key, answers are signed by the host
 * and sealed to a key of the guest's, so the edge learns only sizes, times
 * and who talks to whom.
 *
 * - A host opens a slot per backup peer (`POST /v1/backup-relay/slots`, signed
 *   by the home): the hash of a token derived from the grant's.
 * - A guest claims it with that token and a key of its own (`POST …/guests`,
 *   signed by that key); the same key again gets the same guest id. A restore
 *   on a new machine claims with a new key: {@linkcode limits.backupRelayGuestsPerSlot}.
 * - Each party has one mailbox (its id): a guest posts only to its host, a host
 *   only to its own guests. A mailbox holds at most
 *   {@linkcode limits.backupRelayMailboxBytes}; parts older than
 *   {@linkcode limits.backupRelayItemMs} are dropped (the requests they carry
 *   are signed for five minutes only).
 *
 * KV: `edge, bk-slot, home, peer` → {tokenHash}; `edge, bk-guest, guest` →
 * {home, peer, publicKey}; `edge, bk-guest-key, home, peer, publicKey` → guest;
 * `edge, bk-relay, mailbox, id` → {bytes, from, at}; `edge, bk-size, mailbox, id` → size.
 *
 * @example
 * ```ts
 * app.route("/", backupRelayApp({ store }));
 * ```
 */
import { type Context, Hono, type MiddlewareHandler } from "hono";
import { sha256, toHex } from "../src/encoding.ts";
import { ProtocolError } from "../src/errors.ts";
import { limits } from "../src/limits.ts";
import { commitRetrying } from "../src/kv.ts";
import { jsonObject, readBody, requestPath } from "../src/wire/http_body.ts";
import { verifyRequest } from "../src/wire/signed_request.ts";
import {
  decodeRelayParts,
  encodeRelayItems,
  type RelayPartItem,
} from "../src/wire/backup_relay.ts";
import type { EdgeStore } from "./store.ts";
import { longPoll, Wakeups } from "./long_poll.ts";

export interface BackupRelayDeps {
  store: EdgeStore;
  now?: () => number;
}

interface SlotRecord {
  tokenHash: string;
  created: number;
}

interface GuestRecord {
  home: string;
  peer: string;
  publicKey: string;
  created: number;
}

interface PartRecord {
  bytes: Uint8Array;
  from: string;
  at: number;
}

type Env = { Variables: { party: string; body: Uint8Array | null } };

const guestPattern = /^bkg-[0-9a-f]{16}$/;
const peerPattern = /^p-[0-9a-f]{16}$/;

async function hashHex(text: string): Promise<string> {
  return toHex(await sha256(new TextEncoder().encode(text)));
}

/** The mailboxes, their caps and their long-poll wake-ups. */
export class BackupRelayStore {
  readonly #kv: Deno.Kv;
  readonly #now: () => number;
  readonly #wakeups = new Wakeups();

  constructor(kv: Deno.Kv, now: () => number = Date.now) {
    this.#kv = kv;
    this.#now = now;
  }

  async openSlot(home: string, peer: string, tokenHash: string): Promise<void> {
    let n = 0;
    for await (const e of this.#kv.list({ prefix: ["edge", "bk-slot", home] })) {
      if (e.key[3] !== peer) n++;
    }
    if (n >= limits.backupRelaySlotsPerHome) {
      throw new ProtocolError("NO", "this home has as many backup relay slots as it may", {
        http: 507,
      });
    }
    await this.#kv.set(["edge", "bk-slot", home, peer], { tokenHash, created: this.#now() });
  }

  /** Closes a slot: its guests can no longer post or read. */
  async closeSlot(home: string, peer: string): Promise<number> {
    let n = 0;
    for await (const e of this.#kv.list<string>({ prefix: ["edge", "bk-guest-key", home, peer] })) {
      await this.#kv.delete(["edge", "bk-guest", e.value]);
      await this.#kv.delete(e.key);
      n++;
    }
    await this.#kv.delete(["edge", "bk-slot", home, peer]);
    return n;
  }

  /** A guest id for `publicKey` on a slot, given the slot's token. */
  async claim(home: string, peer: string, token: string, publicKey: string): Promise<string> {
    const slot = (await this.#kv.get<SlotRecord>(["edge", "bk-slot", home, peer])).value;
    if (!slot || slot.tokenHash !== await hashHex(token)) {
      throw new ProtocolError("NO", "no such backup relay slot, or the token is wrong", {
        http: 403,
      });
    }
    const keyKey = ["edge", "bk-guest-key", home, peer, publicKey];
    const known = await this.#kv.get<string>(keyKey);
    if (known.value) return known.value;
    let n = 0;
    for await (const _ of this.#kv.list({ prefix: ["edge", "bk-guest-key", home, peer] })) n++;
    if (n >= limits.backupRelayGuestsPerSlot) {
      throw new ProtocolError(
        "NO",
        "this backup relay slot has as many keys as it may; ask your friend for a new grant",
        { http: 403 },
      );
    }
    const guest = `bkg-${toHex(crypto.getRandomValues(new Uint8Array(8)))}`;
    const rec: GuestRecord = { home, peer, publicKey, created: this.#now() };
    const res = await commitRetrying(() =>
      this.#kv.atomic().check(known).set(keyKey, guest).set(["edge", "bk-guest", guest], rec)
    );
    if (!res.ok) return (await this.#kv.get<string>(keyKey)).value ?? guest;
    return guest;
  }

  async guest(id: string): Promise<GuestRecord | null> {
    if (!guestPattern.test(id)) return null;
    return (await this.#kv.get<GuestRecord>(["edge", "bk-guest", id])).value;
  }

  /** Bytes and parts waiting in a mailbox (expired ones deleted on the way). */
  async #usage(mailbox: string): Promise<{ bytes: number; items: number }> {
    let bytes = 0, items = 0;
    const oldest = this.#now() - limits.backupRelayItemMs;
    for await (const e of this.#kv.list<number>({ prefix: ["edge", "bk-size", mailbox] })) {
      const id = String(e.key[3]);
      if (parseInt(id.slice(0, 9), 36) < oldest) {
        await this.#drop(mailbox, [id]);
        continue;
      }
      bytes += e.value;
      items++;
    }
    return { bytes, items };
  }

  /** Stores parts for `mailbox`; durable when it resolves; 507 when the mailbox is full. */
  async post(mailbox: string, from: string, parts: Uint8Array[]): Promise<number> {
    const size = parts.reduce((n, p) => n + p.length, 0);
    const used = await this.#usage(mailbox);
    if (
      used.bytes + size > limits.backupRelayMailboxBytes ||
      used.items + parts.length > limits.relayMailboxItems
    ) {
      throw new ProtocolError(
        "NO",
        "the backup relay mailbox is full; try again when its owner has read it",
        { http: 507 },
      );
    }
    const now = this.#now();
    const opts = { expireIn: limits.backupRelayItemMs };
    // A few parts per commit: a KV commit holds at most 800 KiB.
    for (let i = 0; i < parts.length; i += 8) {
      const op = this.#kv.atomic();
      for (const bytes of parts.slice(i, i + 8)) {
        const id = `${now.toString(36).padStart(9, "0")}${
          toHex(crypto.getRandomValues(new Uint8Array(8)))
        }`;
        op.set(["edge", "bk-relay", mailbox, id], { bytes, from, at: now }, opts)
          .set(["edge", "bk-size", mailbox, id], bytes.length, opts);
      }
      await op.commit();
    }
    this.#wakeups.wake(mailbox);
    return parts.length;
  }

  /** Parts waiting in `mailbox`, oldest first, up to `maxBytes` (at least one). */
  async list(
    mailbox: string,
    maxBytes: number,
  ): Promise<{ items: RelayPartItem[]; more: boolean }> {
    const items: RelayPartItem[] = [];
    let bytes = 0;
    const oldest = this.#now() - limits.backupRelayItemMs;
    for await (const e of this.#kv.list<PartRecord>({ prefix: ["edge", "bk-relay", mailbox] })) {
      if (e.value.at < oldest) continue;
      if (items.length && bytes + e.value.bytes.length > maxBytes) return { items, more: true };
      if (items.length >= limits.backupRelayPullItems) return { items, more: true };
      items.push({ id: String(e.key[3]), from: e.value.from, bytes: e.value.bytes });
      bytes += e.value.bytes.length;
    }
    return { items, more: false };
  }

  async #drop(mailbox: string, ids: string[]): Promise<void> {
    for (let i = 0; i < ids.length; i += 50) {
      const op = this.#kv.atomic();
      for (const id of ids.slice(i, i + 50)) {
        op.delete(["edge", "bk-relay", mailbox, id]).delete(["edge", "bk-size", mailbox, id]);
      }
      await op.commit();
    }
  }

  async ack(mailbox: string, ids: string[]): Promise<void> {
    await this.#drop(mailbox, ids);
  }

  /** Resolves when a part may be waiting for `mailbox` or after `ms`. */
  wait(mailbox: string, ms: number): Promise<void> {
    return this.#wakeups.wait(mailbox, ms);
  }
}

/** The backup relay's routes, mounted on the edge's app. */
export function backupRelayApp(deps: BackupRelayDeps): Hono<Env> {
  const { store } = deps;
  const now = deps.now ?? Date.now;
  const relay = new BackupRelayStore(store.kv, now);
  const app = new Hono<Env>();
  const bodyOf = (c: Context) => readBody(c.req.raw, limits.backupRelayPostBytes + 64 * 1024);

  // Homes (hosts) and guests sign every request; a claim is signed by the key it pins.
  const signed: MiddlewareHandler<Env> = async (c, next) => {
    const body = await bodyOf(c);
    const party = await verifyRequest(
      { method: c.req.method, path: requestPath(c.req.raw), headers: c.req.raw.headers, body },
      {
        publicKeyOf: async (id) =>
          id.startsWith("home-")
            ? await store.homeKey(id)
            : (await relay.guest(id))?.publicKey ?? null,
        claimNonce: (id, nonce, ttl) => store.claimNonce(`bk:${id}`, nonce, ttl),
        now,
      },
    );
    c.set("party", party);
    c.set("body", body);
    await next();
  };
  const homeOnly = (c: Context<Env>) => {
    if (!c.get("party").startsWith("home-")) {
      throw new ProtocolError("NO", "only a registered home opens backup relay slots", {
        http: 403,
      });
    }
    return c.get("party");
  };
  const peerParam = (peer: unknown) => {
    if (typeof peer !== "string" || !peerPattern.test(peer)) {
      throw new ProtocolError("BAD", "not a backup peer id");
    }
    return peer;
  };

  app.post("/v1/backup-relay/slots", signed, async (c) => {
    const home = homeOnly(c);
    const req = jsonObject<{ peer?: unknown; tokenHash?: unknown }>(c.get("body"));
    if (typeof req.tokenHash !== "string" || !/^[0-9a-f]{64}$/.test(req.tokenHash)) {
      throw new ProtocolError("BAD", "tokenHash must be 64 hex digits");
    }
    await relay.openSlot(home, peerParam(req.peer), req.tokenHash);
    return c.json({ home, peer: req.peer }, 201);
  });

  app.delete("/v1/backup-relay/slots/:peer", signed, async (c) => {
    const guests = await relay.closeSlot(homeOnly(c), peerParam(c.req.param("peer")));
    return c.json({ guests });
  });

  app.post("/v1/backup-relay/guests", async (c) => {
    const body = await bodyOf(c);
    const req = jsonObject<
      { home?: unknown; peer?: unknown; token?: unknown; publicKey?: unknown }
    >(
      body,
    );
    if (
      typeof req.home !== "string" || typeof req.token !== "string" ||
      typeof req.publicKey !== "string"
    ) {
      throw new ProtocolError("BAD", "home, peer, token and publicKey are required");
    }
    const publicKey = req.publicKey;
    await verifyRequest(
      { method: "POST", path: requestPath(c.req.raw), headers: c.req.raw.headers, body },
      {
        publicKeyOf: (id) => Promise.resolve(id === "new" ? publicKey : null),
        claimNonce: (_id, nonce, ttl) => store.claimNonce(`bk-new:${publicKey}`, nonce, ttl),
        now,
      },
    );
    const guest = await relay.claim(req.home, peerParam(req.peer), req.token, publicKey);
    return c.json({ guest }, 201);
  });

  /** Whether `party` may post to `mailbox`: a guest to its host, a host to its guests. */
  const mayPost = async (party: string, mailbox: string): Promise<boolean> => {
    if (party.startsWith("home-")) return (await relay.guest(mailbox))?.home === party;
    return (await relay.guest(party))?.home === mailbox;
  };
  const ownMailbox: MiddlewareHandler<Env> = async (c, next) => {
    if (c.get("party") !== c.req.param("box")) {
      throw new ProtocolError("NO", "only its owner reads a relay mailbox", { http: 403 });
    }
    await next();
  };

  app.post("/v1/backup-relay/mail/:box", signed, async (c) => {
    const box = c.req.param("box");
    if (!(await mayPost(c.get("party"), box))) {
      throw new ProtocolError(
        "NO",
        "backup parts go only between a friend's box and the homes it keeps backups for",
        { http: 403 },
      );
    }
    let parts: Uint8Array[];
    try {
      parts = decodeRelayParts(c.get("body") ?? new Uint8Array());
    } catch (e) {
      throw new ProtocolError("BAD", (e as Error).message);
    }
    if (parts.some((p) => p.length > limits.relayEnvelopeBytes)) {
      throw new ProtocolError("NO", `a part is at most ${limits.relayEnvelopeBytes} bytes`, {
        http: 413,
      });
    }
    return c.json({ stored: await relay.post(box, c.get("party"), parts) }, 201);
  });

  app.get("/v1/backup-relay/mail/:box", signed, ownMailbox, async (c) => {
    const me = c.get("party");
    const { items, more } = await longPoll({
      waitSeconds: c.req.query("wait"),
      now,
      closing: () => store.closing,
      read: () => relay.list(me, limits.edgePullInlineBytes),
      wait: (ms) => relay.wait(me, ms),
    });
    c.header("hearth-more", more ? "1" : "0");
    c.header("content-type", "application/octet-stream");
    return c.body(encodeRelayItems(items) as Uint8Array<ArrayBuffer>);
  });

  app.post("/v1/backup-relay/mail/:box/ack", signed, ownMailbox, async (c) => {
    const req = jsonObject<{ ids?: unknown }>(c.get("body"));
    if (
      !Array.isArray(req.ids) || req.ids.length > limits.backupRelayPullItems ||
      req.ids.some((id) => typeof id !== "string")
    ) {
      throw new ProtocolError("BAD", "ids must be a list of part ids");
    }
    await relay.ack(c.get("party"), req.ids as string[]);
    return c.json({ deleted: req.ids.length });
  });

  return app;
}
