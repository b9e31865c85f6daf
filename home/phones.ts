/**
 * The home box's side of phone sync (docs/sync.md): pairing new phones, and
 * a loop that takes envelopes from the home's relay mailbox on the edge,
 * merges each phone's changes into the account document and the IMAP state,
 * and sends every paired phone what it lacks when the home changes.
 *
 * Everything goes through the edge, outbound only, signed with the home key;
 * envelopes are sealed to each device (sync/envelope.ts). A phone on the LAN
 * may also post the same envelopes to the home box's HTTP port
 * ({@linkcode PhoneService.openLanExchange}, home/phone_lan.ts): what the home
 * has for it then goes in the answer instead of its relay mailbox.
 *
 * @example
 * ```ts
 * const pairing = await startPairing({ dataDir, kv, link }, "me@example.org", password);
 * console.log(pairing.code);
 * await pairing.done; // the phone joined
 * const service = startPhoneService({ dataDir, kv, registry, link });
 * ```
 */
import { generateAccountKey } from "../src/crypto/age.ts";
import type { SigningKey } from "../src/crypto/device.ts";
import { fromBase64Url, toHex } from "../src/encoding.ts";
import { ProtocolError, UsageError } from "../src/errors.ts";
import { limits } from "../src/limits.ts";
import { log } from "../src/log.ts";
import { signRequest } from "../src/wire/signed_request.ts";
import { openEnvelope, sealEnvelope } from "../sync/envelope.ts";
import { decodeEnvelopes } from "../sync/lan.ts";
import { decodeMessage, encodeMessage, type SyncMessage } from "../sync/messages.ts";
import {
  checkHello,
  encodePairingCode,
  type Hello,
  newPairingSecret,
  pairingBoxId,
  type PairingCode,
} from "../sync/pairing.ts";
import { Reassembler, splitPayload } from "../sync/parts.ts";
import { SyncPeer } from "../sync/peer.ts";
import { encodeSummaries } from "../sync/summary.ts";
import { type EdgeLinkConfig, homeSigningKey } from "./edge_link.ts";
import { appendFromPhone, newSummaries, sealedBlob, summariesOf } from "./phone_mail.ts";
import { type AccountRegistry, identityFor, loginKey } from "./store/accounts.ts";
import type { AccountStore } from "./store/account_store.ts";
import { DocHost } from "./sync_host.ts";

/** A paired phone, as the home keeps it. */
interface PhoneRecord {
  account: string;
  publicKey: string;
  recipient: string;
  created: number;
}

/** Envelope bytes per relay post (the edge's limit, with room for the age header). */
const partBytes = 60 * 1024 - 512;

/** The home box's envelope key (age X25519), made on first use; phones seal to it. */
export async function homeEnvelopeKey(
  dataDir: string,
): Promise<{ identity: string; recipient: string }> {
  const path = `${dataDir}/home-envelope.key`;
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const key = await generateAccountKey();
  try {
    await Deno.writeTextFile(path, JSON.stringify(key) + "\n", { mode: 0o600, createNew: true });
    return key;
  } catch (e) {
    if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    return JSON.parse(await Deno.readTextFile(path));
  }
}

interface EdgeCaller {
  link: EdgeLinkConfig;
  key: SigningKey;
}

async function call(
  edge: EdgeCaller,
  method: string,
  path: string,
  body: Uint8Array | null,
  signal?: AbortSignal,
): Promise<Response> {
  const headers = await signRequest(edge.key, edge.link.homeId, method, path, body);
  if (body) headers["content-type"] = "application/octet-stream";
  return await fetch(new URL(path, edge.link.url), {
    method,
    headers,
    body: body as Uint8Array<ArrayBuffer> | null,
    signal,
  });
}

async function expectOk(res: Response, what: string): Promise<Response> {
  if (res.ok) return res;
  const reason = await res.json().then((j) => j.error, () => res.statusText);
  throw new Error(`${what}: the edge answered ${res.status} (${reason})`);
}

/** Seals `message` to a device in envelope-sized parts. */
async function sealFor(
  edge: EdgeCaller,
  device: string,
  recipient: string,
  message: SyncMessage,
): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (const part of splitPayload(encodeMessage(message), partBytes)) {
    out.push(
      await sealEnvelope(part, { id: edge.link.homeId, key: edge.key }, { id: device, recipient }),
    );
  }
  return out;
}

/** Posts one sealed envelope to a device's relay mailbox. */
async function postSealed(edge: EdgeCaller, device: string, sealed: Uint8Array): Promise<void> {
  await expectOk(await call(edge, "POST", `/v1/relay/${device}`, sealed), "sending to a phone")
    .then((r) => r.body?.cancel());
}

/** Seals `message` to a device and posts it to its relay mailbox. */
async function sendTo(
  edge: EdgeCaller,
  device: string,
  recipient: string,
  message: SyncMessage,
): Promise<void> {
  for (const sealed of await sealFor(edge, device, recipient, message)) {
    await postSealed(edge, device, sealed);
  }
}

/** What to do once messages reached a phone, or once it is known they will not. */
interface AfterDelivery {
  done?: () => Promise<unknown>;
  failed?: () => void;
}

/**
 * The answer to a LAN exchange being built: the home's envelopes for the phone are collected
 * here instead of posted to its relay mailbox while it is open, and what waits on their
 * delivery runs once the answer was written (or is undone if it was not).
 */
class LanAnswer {
  readonly envelopes: Uint8Array[] = [];
  open = true;
  #after: AfterDelivery[] = [];
  /** The phone went away: what is added now will not reach it either. */
  #gone = false;

  add(sealed: Uint8Array[], after: AfterDelivery) {
    this.envelopes.push(...sealed);
    if (this.#gone) after.failed?.();
    else this.#after.push(after);
  }

  async delivered() {
    const after = this.#after;
    this.#after = [];
    for (const a of after) {
      await a.done?.().catch((e) => log.warn("phone.lan-save-failed", { error: e }));
    }
  }

  failed() {
    this.#gone = true;
    const after = this.#after;
    this.#after = [];
    for (const a of after) a.failed?.();
  }
}

/** A LAN exchange whose envelopes were opened and checked (home/phone_lan.ts runs it). */
export interface LanExchange {
  device: string;
  /** Handles what the phone sent; resolves with the home's envelopes for it. */
  run(): Promise<Uint8Array[]>;
  /** The answer was written: keeps the sync state and summary marks it advanced. */
  delivered(): Promise<void>;
  /** The answer was not written: drops them, so the next exchange sends it all again. */
  failed(): void;
}

function refused(text: string, http = 403): never {
  throw new ProtocolError("NO", text, { http });
}

export interface PairingOptions {
  dataDir: string;
  kv: Deno.Kv;
  link: EdgeLinkConfig;
  /** The home box's LAN URLs (its HTTP port), given to the phone in the welcome. */
  lanUrls?: string[];
  /** How long to wait for the phone. */
  waitMs?: number;
}

/**
 * Starts pairing a phone with the account at `address` (its password proves
 * the right to hand out the identity). Returns the code to show and a
 * promise that resolves with the new device id once the phone joined.
 */
export async function startPairing(
  opts: PairingOptions,
  address: string,
  password: string,
): Promise<{ code: string; device: string; done: Promise<string> }> {
  const identity = await identityFor(opts.kv, address, password);
  if (!identity) throw new UsageError(`that password does not open ${address}`);
  const account = (await opts.kv.get<string>(["login", await loginKey(address)])).value!;
  const key = await homeSigningKey(opts.dataDir);
  const edge: EdgeCaller = { link: opts.link, key };
  const code: PairingCode = {
    edge: opts.link.url,
    homeId: opts.link.homeId,
    homeKey: key.publicKey,
    device: `dev-${toHex(crypto.getRandomValues(new Uint8Array(12)))}`,
    secret: newPairingSecret(),
  };
  const box = await pairingBoxId(code.secret);
  const done = (async () => {
    const deadline = Date.now() + (opts.waitMs ?? 10 * 60_000);
    let hello: Hello | null = null;
    while (!hello) {
      if (Date.now() > deadline) throw new UsageError("no phone joined in time; run it again");
      const res = await call(edge, "GET", `/v1/home/pairing/${box}`, null);
      if (res.status === 404) {
        await res.body?.cancel();
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      hello = await (await expectOk(res, "reading the pairing box")).json();
    }
    if (!(await checkHello(code, hello!))) {
      throw new UsageError("the phone's answer does not match the code; pairing refused");
    }
    await expectOk(
      await call(
        edge,
        "PUT",
        `/v1/home/devices/${code.device}`,
        new TextEncoder().encode(JSON.stringify({ account, publicKey: hello!.publicKey })),
      ),
      "registering the phone",
    ).then((r) => r.body?.cancel());
    const record: PhoneRecord = {
      account,
      publicKey: hello!.publicKey,
      recipient: hello!.recipient,
      created: Date.now(),
    };
    await opts.kv.set(["phone", code.device], record);
    const envelopeKey = await homeEnvelopeKey(opts.dataDir);
    await sendTo(edge, code.device, record.recipient, {
      kind: "welcome",
      welcome: {
        account,
        address,
        identity,
        homeRecipient: envelopeKey.recipient,
        homeKey: key.publicKey,
        homeId: opts.link.homeId,
        ...(opts.lanUrls?.length ? { lan: opts.lanUrls } : {}),
      },
    });
    log.info("phone.paired", { device: code.device });
    return code.device;
  })();
  return { code: encodePairingCode(code), device: code.device, done };
}

export interface PhoneServiceOptions {
  dataDir: string;
  kv: Deno.Kv;
  registry: AccountRegistry;
  link: EdgeLinkConfig;
  waitSeconds?: number;
  /**
   * Delay that gathers the home's changes into one message per phone (1 s: a burst of arrivals
   * becomes one envelope rather than one per arrival, each with its own sealing overhead and
   * summary batch; a phone woken by push does not notice the second).
   */
  pushDelayMs?: number;
}

export interface PhoneService {
  /**
   * Opens a LAN exchange from the body a phone posted to the home's HTTP port (sync/lan.ts):
   * checks every envelope (sealed to this home, signed by one paired phone) and the opening
   * `lan` message (fresh date, unseen nonce). Throws a ProtocolError (400, 403, 409) when
   * refused; nothing has changed then.
   */
  openLanExchange(body: Uint8Array): Promise<LanExchange>;
  stop(): Promise<void>;
}

interface AccountSync {
  store: AccountStore;
  host: DocHost;
  peers: Map<string, SyncPeer>;
  unsubscribe: () => void;
  timer?: ReturnType<typeof setTimeout>;
}

/** Runs phone sync for every paired phone until stopped. */
export function startPhoneService(opts: PhoneServiceOptions): PhoneService {
  const stopping = new AbortController();
  const accounts = new Map<string, AccountSync>();
  const parts = new Map<string, Reassembler>();
  let edge!: EdgeCaller;
  let envelopeKey!: { identity: string; recipient: string };
  /** LAN exchanges in progress, by device: the home's messages for it go in their answer. */
  const lanAnswers = new Map<string, LanAnswer>();
  /** Nonces of LAN exchanges seen, until their date is too old to be taken anyway. */
  const lanNonces = new Map<string, number>();

  /**
   * Sends messages to a phone: into the answer of its LAN exchange in progress, else to its
   * relay mailbox. `after.done` runs once they reached the phone (or the edge, which keeps
   * them); `after.failed` if they did not.
   */
  const deliver = async (
    device: string,
    rec: PhoneRecord,
    messages: SyncMessage[],
    after: AfterDelivery = {},
  ) => {
    const sealed: Uint8Array[] = [];
    for (const m of messages) sealed.push(...await sealFor(edge, device, rec.recipient, m));
    const lan = lanAnswers.get(device);
    if (lan?.open) return lan.add(sealed, after);
    try {
      for (const e of sealed) await postSealed(edge, device, e);
    } catch (e) {
      after.failed?.();
      throw e;
    }
    await after.done?.();
  };

  const phone = async (device: string) => (await opts.kv.get<PhoneRecord>(["phone", device])).value;

  const phonesOf = async (account: string): Promise<[string, PhoneRecord][]> => {
    const out: [string, PhoneRecord][] = [];
    for await (const e of opts.kv.list<PhoneRecord>({ prefix: ["phone"] })) {
      if (e.key.length === 2 && e.value.account === account) out.push([String(e.key[1]), e.value]);
    }
    return out;
  };

  const peerFor = async (acct: AccountSync, device: string): Promise<SyncPeer> => {
    let peer = acct.peers.get(device);
    if (!peer) {
      const saved = (await opts.kv.get<Uint8Array>(["phone", device, "sync"])).value;
      peer = new SyncPeer(acct.host.doc, saved, { announceFresh: true });
      acct.peers.set(device, peer);
    }
    return peer;
  };

  const savePeer = (device: string, peer: SyncPeer) =>
    opts.kv.set(["phone", device, "sync"], peer.state());

  /** Sends each phone of the account what it lacks (after the home changed). */
  const pushChanges = async (acct: AccountSync) => {
    await ready;
    const phones: { device: string; rec: PhoneRecord; peer: SyncPeer }[] = [];
    for (const [device, rec] of await phonesOf(acct.store.id)) {
      phones.push({ device, rec, peer: await peerFor(acct, device) });
    }
    // The frames first, then the save, then the sends: what a phone gets must survive a crash
    // of this box, so the saved document holds at least what the frames carry.
    const frames = phones.map((p) => p.peer.start());
    await acct.host.saveIfChanged().catch((e) => {
      for (const p of phones) acct.peers.delete(p.device);
      throw e;
    });
    for (const [i, { device, rec, peer }] of phones.entries()) {
      await sendFrames(acct, device, rec, peer, frames[i]);
      await sendSummaries(acct, device, rec);
    }
  };

  /**
   * Sends sync frames to a phone (its relay mailbox, or the answer of its LAN exchange). If
   * delivering fails, the peer's state in memory (which counts the frames as sent) is dropped
   * for the saved one, so the next exchange sends them again rather than only what came after;
   * the state is saved only once they were delivered.
   */
  const sendFrames = (
    acct: AccountSync,
    device: string,
    rec: PhoneRecord,
    peer: SyncPeer,
    frames: Uint8Array[],
  ) =>
    deliver(device, rec, frames.map((frame) => ({ kind: "sync" as const, frame })), {
      done: () => savePeer(device, peer),
      failed: () => {
        if (acct.peers.get(device) === peer) acct.peers.delete(device);
      },
    });

  const summaryRuns = new Map<string, Promise<void>>();
  /**
   * Sends a phone the summaries of what was added since the last ones it got (docs/sync.md),
   * one run per phone at a time. The heads they cover are kept in KV.
   */
  const sendSummaries = (acct: AccountSync, device: string, rec: PhoneRecord) => {
    const key = ["phone", device, "summarized"];
    const run = async () => {
      const since = (await opts.kv.get<string[]>(key)).value;
      if (since && since.join(",") === acct.host.doc.heads().join(",")) return;
      const { entries, heads } = await newSummaries(acct.store, acct.host.doc, since);
      const done = () => opts.kv.set(key, heads);
      if (!entries.length) return void await done();
      const batch = await encodeSummaries(entries);
      await deliver(device, rec, [{ kind: "summaries", batch }], { done });
    };
    const p = (summaryRuns.get(device) ?? Promise.resolve()).then(run);
    summaryRuns.set(device, p.catch(() => {}));
    return p;
  };

  const opening = new Map<string, Promise<AccountSync | null>>();
  /** The account's document, opened when the account is unlocked; null when it is locked. */
  const accountSync = (account: string, identity?: string): Promise<AccountSync | null> => {
    const have = accounts.get(account);
    if (have) return Promise.resolve(have);
    // One opening per account at a time: an unlock and a phone's message may race.
    let p = opening.get(account);
    if (!p) {
      p = openAccount(account, identity);
      opening.set(account, p);
      p.finally(() => opening.delete(account)).catch(() => {});
    }
    return p;
  };

  /** Stops following an account: saved (stop), or dropped unsaved (a merge that failed). */
  const closeAccount = async (acct: AccountSync, how: { save: boolean }) => {
    if (accounts.get(acct.store.id) === acct) accounts.delete(acct.store.id);
    clearTimeout(acct.timer);
    acct.unsubscribe();
    if (how.save) await acct.host.close();
    else acct.host.discard();
    opts.registry.release(acct.store);
  };

  const openAccount = async (account: string, identity?: string) => {
    const store = identity
      ? await opts.registry.holdWithIdentity(account, identity)
      : opts.registry.hold(account);
    if (!store) return null;
    const host = await DocHost.open(opts.kv, store);
    const acct: AccountSync = { store, host, peers: new Map(), unsubscribe: () => {} };
    acct.unsubscribe = host.onChange(() => {
      if (acct.timer) return;
      acct.timer = setTimeout(() => {
        acct.timer = undefined;
        pushChanges(acct).catch((e) => log.warn("phone.push-failed", { error: e }));
      }, opts.pushDelayMs ?? 1_000);
    });
    accounts.set(account, acct);
    // What happened while no document was open (mail fetched from the edge, IMAP changes)
    // was reconciled by DocHost.open: tell the phones.
    pushChanges(acct).catch((e) => log.warn("phone.push-failed", { error: e }));
    return acct;
  };

  const handle = async (device: string, rec: PhoneRecord, m: SyncMessage) => {
    if (m.kind === "unlock") {
      if (m.account !== rec.account) return;
      const acct = await accountSync(rec.account, m.identity);
      if (!acct) log.warn("phone.unlock-refused", { device });
      return;
    }
    if (m.kind !== "sync" && m.kind !== "request" && m.kind !== "append") return;
    const acct = await accountSync(rec.account);
    if (!acct) {
      // Nobody has unlocked the account since the box started: ask the phone for the identity.
      await deliver(device, rec, [{ kind: "state", state: "locked" }]);
      return;
    }
    if (m.kind === "request") {
      for (const blob of m.blobs) {
        const sealed = await sealedBlob(acct.store, blob);
        await deliver(device, rec, [{ kind: "blob", blob, sealed }]);
      }
      const entries = await summariesOf(acct.store, m.summaries);
      if (entries.length) {
        const batch = await encodeSummaries(entries);
        await deliver(device, rec, [{ kind: "summaries", batch }]);
      }
      return;
    }
    if (m.kind === "append") {
      const stored = await appendFromPhone(acct.store, m).catch((e) => {
        log.warn("phone.append-failed", { device, error: (e as Error).message });
        return false;
      });
      log.info("phone.append", { device, stored });
      return;
    }
    const peer = await peerFor(acct, device);
    let replies: Uint8Array[] | null;
    try {
      replies = await acct.host.merge(async () => {
        const before = acct.host.doc.heads();
        let out: Uint8Array[];
        try {
          out = peer.receive(m.frame);
        } catch (e) {
          log.warn("phone.bad-frame", { device, error: (e as Error).message });
          return null;
        }
        await acct.host.applyRemote(acct.host.doc.editsSince(before));
        return out;
      });
    } catch (e) {
      // The store did not take the phone's changes: the document in memory has them, so it
      // is dropped unsaved, and the envelope stays at the edge to be delivered again.
      await closeAccount(acct, { save: false });
      throw e;
    }
    if (!replies) return;
    await acct.host.saveIfChanged().catch((e) => {
      acct.peers.delete(device);
      throw e;
    });
    await sendFrames(acct, device, rec, peer, replies);
    await sendSummaries(acct, device, rec);
  };

  const openLanExchange = async (body: Uint8Array): Promise<LanExchange> => {
    await ready;
    let envelopes: Uint8Array[];
    try {
      envelopes = decodeEnvelopes(body, limits.relayEnvelopeBytes);
    } catch (e) {
      refused((e as Error).message, 400);
    }
    if (!envelopes.length) refused("a LAN exchange carries at least one envelope", 400);
    const me = { id: opts.link.homeId, identity: envelopeKey.identity };
    const keyOf = async (id: string) => (await phone(id))?.publicKey ?? null;
    // All parts of a message come in one request: a LAN exchange shares no state with another.
    const reassembler = new Reassembler();
    const messages: SyncMessage[] = [];
    let device: string | null = null;
    for (const e of envelopes) {
      let opened: { sender: string; payload: Uint8Array };
      try {
        opened = await openEnvelope(e, me, keyOf);
      } catch (err) {
        refused((err as Error).message);
      }
      if (device !== null && opened.sender !== device) {
        refused("a LAN exchange carries envelopes of one device only");
      }
      device = opened.sender;
      try {
        const whole = reassembler.add(opened.payload);
        if (whole) messages.push(decodeMessage(whole));
      } catch (err) {
        refused(`a sync message is malformed: ${(err as Error).message}`, 400);
      }
    }
    const [hello, ...rest] = messages;
    if (hello?.kind !== "lan") refused("a LAN exchange starts with a lan message", 400);
    const now = Date.now();
    if (Math.abs(hello.date - now) > limits.lanClockSkewMs) {
      refused("the phone's clock is more than five minutes off; set it right and sync again");
    }
    for (const [n, until] of lanNonces) if (until < now) lanNonces.delete(n);
    // A recorded request played again (by anyone on the LAN) is refused.
    if (lanNonces.has(hello.nonce)) refused("this LAN exchange was seen before");
    if (lanAnswers.has(device!)) refused("a LAN exchange of this phone is in progress", 409);
    const rec = (await phone(device!))!;
    lanNonces.set(hello.nonce, now + 2 * limits.lanClockSkewMs);
    const dev = device!;
    const answer = new LanAnswer();
    lanAnswers.set(dev, answer);
    return {
      device: dev,
      run: async () => {
        try {
          answer.add(await sealFor(edge, dev, rec.recipient, { ...hello, date: Date.now() }), {});
          // What the home posted to the relay mailbox meanwhile waits there, unread: the
          // answer carries every change the phone's message does not show it has.
          const open = await accountSync(rec.account);
          if (open) (await peerFor(open, dev)).forgetSent();
          for (const m of rest) await handle(dev, rec, m);
          const acct = accounts.get(rec.account);
          if (acct) {
            // And what the home has for it now (after the replies: only what they lack).
            const peer = await peerFor(acct, dev);
            const frames = peer.start();
            await acct.host.saveIfChanged().catch((e) => {
              acct.peers.delete(dev);
              throw e;
            });
            await sendFrames(acct, dev, rec, peer, frames);
            await sendSummaries(acct, dev, rec);
          } else if (!rest.some((m) => ["sync", "request", "append"].includes(m.kind))) {
            // Locked, and handle() said nothing: ask the phone for the identity.
            await deliver(dev, rec, [{ kind: "state", state: "locked" }]);
          }
          return answer.envelopes;
        } catch (e) {
          answer.failed();
          throw e;
        } finally {
          answer.open = false;
          if (lanAnswers.get(dev) === answer) lanAnswers.delete(dev);
        }
      },
      delivered: () => answer.delivered(),
      failed: () => answer.failed(),
    };
  };

  // An account unlocked by a login (or a phone) gets its document opened if it has phones.
  const stopUnlock = opts.registry.onUnlock((account) => {
    phonesOf(account).then((phones) => {
      if (phones.length && !stopping.signal.aborted) return accountSync(account);
    }).catch((e) => log.warn("phone.open-failed", { error: e }));
  });

  const ready = (async () => {
    edge = { link: opts.link, key: await homeSigningKey(opts.dataDir) };
    envelopeKey = await homeEnvelopeKey(opts.dataDir);
  })();

  const ack = async (ids: string[]) => {
    if (!ids.length) return;
    await expectOk(
      await call(
        edge,
        "POST",
        `/v1/relay/${opts.link.homeId}/ack`,
        new TextEncoder().encode(JSON.stringify({ ids })),
      ),
      "acknowledging envelopes",
    ).then((r) => r.body?.cancel());
  };

  const loop = (async () => {
    await ready;
    const me = { id: opts.link.homeId, identity: envelopeKey.identity };
    const keyOf = async (id: string) => (await phone(id))?.publicKey ?? null;
    let backoff = 1_000;
    // Phones of accounts already unlocked get the home's news from the start.
    for await (const e of opts.kv.list<PhoneRecord>({ prefix: ["phone"] })) {
      if (e.key.length === 2) await accountSync(e.value.account);
    }
    while (!stopping.signal.aborted) {
      try {
        const wait = opts.waitSeconds ?? 25;
        const res = await expectOk(
          await call(
            edge,
            "GET",
            `/v1/relay/${opts.link.homeId}?wait=${wait}`,
            null,
            AbortSignal.any([stopping.signal, AbortSignal.timeout(wait * 1000 + 30_000)]),
          ),
          "reading the relay mailbox",
        );
        const { items } = await res.json() as { items: { id: string; envelope: string }[] };
        for (const item of items) {
          let message: { sender: string; rec: PhoneRecord; m: SyncMessage } | undefined;
          try {
            const bytes = fromBase64Url(
              item.envelope.replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, ""),
            );
            const { sender, payload } = await openEnvelope(bytes, me, keyOf);
            let r = parts.get(sender);
            if (!r) parts.set(sender, r = new Reassembler());
            const whole = r.add(payload);
            const rec = await phone(sender);
            if (whole && rec) message = { sender, rec, m: decodeMessage(whole) };
          } catch (e) {
            log.warn("phone.envelope-dropped", { error: (e as Error).message });
          }
          // A failure to store (not a bad envelope) acknowledges nothing: the batch comes
          // again and is reassembled from scratch (handling a sync frame twice is harmless).
          if (message) {
            await handle(message.sender, message.rec, message.m).catch((e) => {
              parts.delete(message.sender);
              throw e;
            });
          }
        }
        await ack(items.map((i) => i.id));
        backoff = 1_000;
      } catch (e) {
        if (stopping.signal.aborted) break;
        log.warn("phone.relay-failed", { error: (e as Error).message, retryInMs: backoff });
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 60_000);
      }
    }
  })();

  return {
    openLanExchange,
    async stop() {
      stopUnlock();
      stopping.abort();
      await loop.catch(() => {});
      for (const acct of [...accounts.values()]) await closeAccount(acct, { save: true });
    },
  };
}
