/**
 * The phone side of Hearth (docs/sync.md): a replica of the account
 * document, kept current in one short exchange with the home box through the
 * edge's relay mailboxes, run when a push wakes the phone or the user acts.
 * No connection stays open and nothing polls while idle. A sync the user
 * starts tries the home box's LAN URL first, with the same sealed envelopes
 * (sync/lan.ts), and goes through the edge when the home does not answer.
 *
 * The core uses only web APIs (fetch, WebCrypto) and two small interfaces:
 * {@linkcode PhoneStorage} for what it keeps and `fetch` for the network, so
 * it runs in Deno (`hearth phone`) and in a browser.
 *
 * @example
 * ```ts
 * const phone = await Phone.join(code, storage);
 * await phone.sync();
 * for (const m of phone.list("INBOX")) console.log(m.id, m.flags);
 * ```
 */
import {
  generateAccountKey,
  openSealed,
  recipientOf,
  sealToRecipient,
} from "../../src/crypto/age.ts";
import { generateSigningKey, type SigningKey } from "../../src/crypto/device.ts";
import { fromBase64Url, toBase64Url } from "../../src/encoding.ts";
import { limits } from "../../src/limits.ts";
import { signRequest } from "../../src/wire/signed_request.ts";
import type { SealedItem } from "../../src/wire/edge_api.ts";
import {
  decodeRelayAnswer,
  type RelayAnswer,
  relayAnswerType,
} from "../../src/wire/relay_answer.ts";
import { AccountDoc, type DocMessage } from "../doc.ts";
import { openEnvelope, sealEnvelope } from "../envelope.ts";
import { decodeEnvelopes, encodeEnvelopes, lanExchangePath } from "../lan.ts";
import { decodeMessage, encodeMessage, type SyncMessage, type Welcome } from "../messages.ts";
import { decodePairingCode, makeHello, pairingBoxId } from "../pairing.ts";
import { Reassembler, splitPayload } from "../parts.ts";
import { SyncPeer } from "../peer.ts";
import { decodeSummaries, summarize, type Summary } from "../summary.ts";
import { composeMail } from "./compose.ts";
import { blobIdOf, PhoneMailStore } from "./mail_store.ts";

/** Where the phone keeps its state (files in Deno, IndexedDB in a browser). */
export interface PhoneStorage {
  get(key: string): Promise<Uint8Array | null>;
  set(key: string, value: Uint8Array): Promise<void>;
}

/** A message the edge holds for the account that the home box has not fetched yet. */
interface PendingMail {
  /** The edge's item id (ordered by arrival). */
  item: string;
  /** The blob id it will have at home (sha256 of the sealed bytes, as home/store/blobs.ts). */
  blob: string;
  size: number;
  arrived: number;
  /** The age file, base64url, when the edge sent it inline. */
  sealed?: string;
}

interface DeviceState {
  device: string;
  signing: SigningKey;
  age: { identity: string; recipient: string };
  edge: string;
  homeId: string;
  homeKey: string;
  welcome?: Welcome;
  /** Newest edge item seen, so each sync asks only for newer ones. */
  lastItem?: string;
  /** Sealed replies to what the last exchange brought, sent with the next one. */
  outbox?: { to: string; envelope: string }[];
  /** Envelopes the last exchange brought and this phone processed, acknowledged next time. */
  acks?: string[];
  pending?: PendingMail[];
  /** Bodies and summaries to ask the home for; `posted` once a request carried them. */
  wants?: { blobs: string[]; summaries: string[]; posted: boolean };
  /** Copies of mail this phone sent, for the account's Sent folder, until the home has them. */
  appends?: SentCopy[];
  /** The home box's LAN URLs as set on this phone (`hearth phone lan`); else the welcome's. */
  lan?: string[];
}

/** Mail this phone sent; its sealed bytes are in the phone's storage under the blob id. */
interface SentCopy {
  blob: string;
  date: number;
  size: number;
  /** Posted to the home (again after the home asked for an unlock). */
  posted: boolean;
}

/** What {@linkcode Phone.body} found. */
export type BodyResult =
  /** The message as sent (opened with the account identity). */
  | { kind: "body"; raw: Uint8Array; fetched: boolean }
  /** Not on the phone, and the home box did not send it in time (offline or asleep). */
  | { kind: "waiting" }
  /** The home box no longer has it (expunged). */
  | { kind: "gone" }
  /** Mail at the edge that was too large to come inline: readable once the home box has it. */
  | { kind: "at-edge" };

export interface PhoneOptions {
  fetch?: typeof fetch;
  /** Envelope size on the relay (the edge's limit). */
  envelopeBytes?: number;
}

/** A message as the phone lists it. */
export interface PhoneMessage extends DocMessage {
  id: string;
  mailboxName: string;
  /** True for mail still waiting at the edge (the home box is offline) or sent from this phone
   * and not yet stored at home: not yet in a folder. */
  pending: boolean;
  /** Sender, subject, date and snippet, once the phone has them. */
  summary?: Summary;
}

export interface SyncReport {
  /** HTTP requests this exchange made. */
  requests: number;
  /** Whether it went to the home box on the LAN or through the edge. */
  via: "lan" | "edge";
  /** Why the LAN path was not taken (or failed after its first round), when it was tried. */
  lanError?: string;
  received: number;
  sent: number;
  bytesIn: number;
  bytesOut: number;
}

/** Rounds of one LAN sync (the phone's replies go at once while the home answers). */
const maxLanRounds = 4;

/** The LAN path did not work this time; the edge is used instead. */
class LanUnavailable extends Error {}

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const dec = <T>(b: Uint8Array) => JSON.parse(new TextDecoder().decode(b)) as T;

export class Phone {
  readonly #storage: PhoneStorage;
  readonly #fetch: typeof fetch;
  readonly #envelopeBytes: number;
  #state: DeviceState;
  doc: AccountDoc;
  /** Summaries and sealed blobs this phone keeps. */
  readonly mail: PhoneMailStore;
  #peer: SyncPeer;
  /** Blobs the home said it no longer has (this run). */
  readonly #gone = new Set<string>();
  readonly #parts = new Reassembler();
  /** Every HTTP request since this object was made (the battery test counts them). */
  requests = 0;

  private constructor(
    storage: PhoneStorage,
    state: DeviceState,
    doc: AccountDoc,
    syncState: Uint8Array | null,
    mail: PhoneMailStore,
    opts: PhoneOptions,
  ) {
    this.#storage = storage;
    this.#state = state;
    this.doc = doc;
    this.mail = mail;
    this.#peer = new SyncPeer(doc, syncState);
    this.#fetch = opts.fetch ?? fetch;
    this.#envelopeBytes = opts.envelopeBytes ?? 60 * 1024;
  }

  get device(): string {
    return this.#state.device;
  }

  get address(): string | undefined {
    return this.#state.welcome?.address;
  }

  /** The account identity (for opening sealed messages), once paired. */
  get identity(): string | undefined {
    return this.#state.welcome?.identity;
  }

  /**
   * Joins the account behind a pairing code from `hearth phone pair`: posts
   * this phone's keys, then waits (up to `waitMs`) for the home's welcome.
   */
  static async join(
    codeText: string,
    storage: PhoneStorage,
    opts: PhoneOptions & { waitMs?: number } = {},
  ): Promise<Phone> {
    const code = decodePairingCode(codeText);
    const signing = await generateSigningKey();
    const age = await generateAccountKey();
    const state: DeviceState = {
      device: code.device,
      signing,
      age,
      edge: code.edge,
      homeId: code.homeId,
      homeKey: code.homeKey,
    };
    const mail = await PhoneMailStore.open(storage);
    const phone = new Phone(storage, state, AccountDoc.empty(), null, mail, opts);
    const hello = await makeHello(code, { publicKey: signing.publicKey, recipient: age.recipient });
    const res = await phone.#request(
      "POST",
      `/v1/pairing/${await pairingBoxId(code.secret)}`,
      enc(hello),
      false,
    );
    if (!res.ok) {
      throw new Error(`the edge refused the pairing (${res.status}): ${await errorOf(res)}`);
    }
    await phone.#save();
    const deadline = Date.now() + (opts.waitMs ?? 10 * 60_000);
    // The home registers this device once it has checked the hello: until then the edge
    // does not know the key and answers 401.
    while (!phone.#state.welcome) {
      if (Date.now() > deadline) throw new Error("the home box did not answer the pairing in time");
      const got = await phone.#fetchEnvelopes(5);
      if (got === null) await new Promise((r) => setTimeout(r, 500));
      else await phone.#handle(got.messages, []);
      if (got?.ids.length) await phone.#ack(got.ids);
    }
    await phone.#save();
    return phone;
  }

  /** Opens a phone that joined before. */
  static async open(storage: PhoneStorage, opts: PhoneOptions = {}): Promise<Phone> {
    const raw = await storage.get("device");
    if (!raw) throw new Error("this phone has not joined an account yet (hearth phone join CODE)");
    const state = dec<DeviceState>(raw);
    const docBytes = await storage.get("doc");
    const doc = docBytes ? AccountDoc.load(docBytes) : AccountDoc.empty();
    const mail = await PhoneMailStore.open(storage);
    return new Phone(storage, state, doc, await storage.get("sync"), mail, opts);
  }

  async #save() {
    if (this.#state.pending?.length || this.#state.appends?.length) {
      const blobs = new Set([...this.doc.messages()].map(([, m]) => m.blob));
      const keep: PendingMail[] = [];
      for (const p of this.#state.pending ?? []) {
        if (!blobs.has(p.blob)) keep.push(p);
        // Home has it now; the phone keeps the sealed bytes it already holds.
        else if (p.sealed) await this.mail.putBlob(p.blob, fromBase64Url(p.sealed)).catch(() => {});
      }
      this.#state.pending = keep;
      this.#state.appends = this.#state.appends?.filter((a) => !blobs.has(a.blob));
    }
    await this.mail.save();
    await this.#storage.set("device", enc(this.#state));
    await this.#storage.set("doc", this.doc.save());
    await this.#storage.set("sync", this.#peer.state());
  }

  async #request(
    method: string,
    path: string,
    body: Uint8Array | null,
    signed = true,
    extra: Record<string, string> = {},
  ): Promise<Response> {
    this.requests++;
    const headers: Record<string, string> = signed
      ? {
        ...extra,
        ...await signRequest(this.#state.signing, this.#state.device, method, path, body),
      }
      : { ...extra };
    if (body) headers["content-type"] = "application/octet-stream";
    return await this.#fetch(new URL(path, this.#state.edge), {
      method,
      headers,
      body: body as Uint8Array<ArrayBuffer> | null,
    });
  }

  /** Envelopes waiting for this phone, opened and reassembled; null while not registered. */
  async #fetchEnvelopes(
    waitSeconds = 0,
  ): Promise<{ ids: string[]; messages: SyncMessage[]; bytes: number } | null> {
    const mail = this.#state.welcome ? `&mail=${this.#state.lastItem ?? ""}` : "";
    const res = await this.#request(
      "GET",
      `/v1/relay/${this.#state.device}?wait=${waitSeconds}${mail}`,
      null,
      true,
      { accept: relayAnswerType },
    );
    if (res.status === 401 && !this.#state.welcome) {
      await res.body?.cancel();
      return null;
    }
    if (!res.ok) throw new Error(`the edge answered ${res.status}: ${await errorOf(res)}`);
    return await this.#readRelay(res);
  }

  /**
   * Opens a relay answer: envelopes for this phone, and mail waiting at the edge. The binary
   * form (src/wire/relay_answer.ts) is asked for; an edge that answers JSON is read too.
   */
  async #readRelay(
    res: Response,
  ): Promise<{ ids: string[]; messages: SyncMessage[]; bytes: number }> {
    const raw = new Uint8Array(await res.arrayBuffer());
    let body: RelayAnswer;
    if (res.headers.get("content-type") === relayAnswerType) {
      body = decodeRelayAnswer(raw);
    } else {
      const json = JSON.parse(new TextDecoder().decode(raw)) as {
        items: { id: string; at?: number; envelope: string }[];
        more: boolean;
        mail?: (Omit<SealedItem, "sealed"> & { sealed?: string })[];
      };
      body = {
        items: json.items.map((i) => ({ ...i, envelope: fromBase64(i.envelope) })),
        more: json.more,
        mail: json.mail?.map(({ sealed, ...m }) =>
          sealed ? { ...m, sealed: fromBase64(sealed) } : m
        ),
      };
    }
    for (const m of body.mail ?? []) {
      const sealed = m.sealed ?? null;
      const blob = sealed ? await blobIdOf(sealed) : `edge-${m.id}`;
      (this.#state.pending ??= []).push({
        item: m.id,
        blob,
        size: m.size,
        arrived: m.arrived,
        sealed: sealed ? toBase64Url(sealed) : undefined,
      });
      // The phone holds the sealed bytes: it makes the summary itself, as the home would.
      if (sealed) await this.#summarizeSealed(blob, sealed);
      if (!this.#state.lastItem || m.id > this.#state.lastItem) this.#state.lastItem = m.id;
    }
    const messages: SyncMessage[] = [];
    const me = { id: this.#state.device, identity: this.#state.age.identity };
    const keyOf = (id: string) =>
      Promise.resolve(id === this.#state.homeId ? this.#state.homeKey : null);
    for (const item of body.items) {
      try {
        const { payload } = await openEnvelope(item.envelope, me, keyOf);
        const whole = this.#parts.add(payload);
        if (whole) messages.push(decodeMessage(whole));
      } catch (e) {
        // A damaged or foreign envelope is dropped (and acked): it can never be opened.
        console.warn(`hearth phone: dropped an envelope: ${(e as Error).message}`);
      }
    }
    return { ids: body.items.map((i) => i.id), messages, bytes: raw.length };
  }

  async #ack(ids: string[]) {
    const res = await this.#request(
      "POST",
      `/v1/relay/${this.#state.device}/ack`,
      enc({ ids }),
    );
    await res.body?.cancel();
  }

  /** Seals `messages` for the home, in envelope-sized parts. */
  async #seal(messages: SyncMessage[]): Promise<Uint8Array[]> {
    const w = this.#state.welcome;
    if (!w) return [];
    const out: Uint8Array[] = [];
    for (const m of messages) {
      for (const part of splitPayload(encodeMessage(m), this.#envelopeBytes - 512)) {
        out.push(
          await sealEnvelope(
            part,
            { id: this.#state.device, key: this.#state.signing },
            { id: w.homeId, recipient: w.homeRecipient },
          ),
        );
      }
    }
    return out;
  }

  /** Posts `messages` to the home now; the first post also acknowledges `ack`. */
  async #send(messages: SyncMessage[], ack: string[] = []): Promise<number> {
    const w = this.#state.welcome;
    if (!w || !messages.length) return 0;
    let bytes = 0;
    let ackQuery = ack.length ? `?ack=${ack.join(",")}` : "";
    for (const sealed of await this.#seal(messages)) {
      bytes += sealed.length;
      const res = await this.#request("POST", `/v1/relay/${w.homeId}${ackQuery}`, sealed);
      if (!res.ok) throw new Error(`the edge answered ${res.status}: ${await errorOf(res)}`);
      await res.body?.cancel();
      ackQuery = "";
    }
    return bytes;
  }

  /** Makes and keeps the summary of a sealed message this phone holds (if it has none). */
  async #summarizeSealed(blob: string, sealed: Uint8Array) {
    const identity = this.#state.welcome?.identity;
    if (!identity || this.mail.has(blob)) return;
    try {
      this.mail.putSummaries([[blob, summarize(await openSealed(sealed, identity))]]);
    } catch {
      // Not sealed to this account: listed without a summary.
    }
  }

  /** Applies received messages; what to answer goes to `out`. */
  async #handle(messages: SyncMessage[], out: SyncMessage[]) {
    for (const m of messages) {
      if (m.kind === "welcome") {
        this.#state.welcome = m.welcome;
      } else if (m.kind === "summaries") {
        try {
          this.mail.putSummaries(await decodeSummaries(m.batch));
        } catch (e) {
          console.warn(`hearth phone: dropped summaries: ${(e as Error).message}`);
        }
        const w = this.#state.wants;
        if (w) w.summaries = w.summaries.filter((b) => !this.mail.has(b));
      } else if (m.kind === "blob") {
        await this.#receiveBlob(m.blob, m.sealed);
      } else if (m.kind === "sync") {
        for (const frame of this.#peer.receive(m.frame)) out.push({ kind: "sync", frame });
      } else if (m.kind === "state" && m.state === "locked" && this.#state.welcome) {
        // The home box restarted and nobody has logged in: lend it the identity (docs/sync.md).
        out.push({
          kind: "unlock",
          account: this.#state.welcome.account,
          identity: this.#state.welcome.identity,
        });
        out.push(...this.#peer.start().map((frame) => ({ kind: "sync" as const, frame })));
        // What the locked home dropped goes again, after the unlock.
        const request = this.#wantsRequest();
        if (request) out.push(request);
        for (const a of this.#state.appends ?? []) a.posted = false;
      }
    }
  }

  async #receiveBlob(blob: string, sealed: Uint8Array) {
    const w = this.#state.wants;
    if (w) w.blobs = w.blobs.filter((b) => b !== blob);
    if (!sealed.length) {
      this.#gone.add(blob);
      return;
    }
    try {
      await this.mail.putBlob(blob, sealed);
    } catch (e) {
      console.warn(`hearth phone: dropped a body: ${(e as Error).message}`);
      return;
    }
    await this.#summarizeSealed(blob, sealed);
  }

  /** The request for what this phone still wants, or null; marks it posted. */
  #wantsRequest(): SyncMessage | null {
    const w = this.#state.wants;
    if (!w || (!w.blobs.length && !w.summaries.length)) return null;
    w.posted = true;
    return { kind: "request", blobs: w.blobs.slice(), summaries: w.summaries.slice() };
  }

  /** Posts the Sent copies not posted yet, each as its own payload. */
  async #postAppends(): Promise<number> {
    let bytes = 0;
    for (const a of this.#state.appends ?? []) {
      if (a.posted) continue;
      const sealed = await this.mail.blob(a.blob);
      if (!sealed) continue;
      bytes += await this.#send([
        { kind: "append", use: "\\Sent", flags: ["\\Seen"], date: a.date, sealed },
      ]);
      a.posted = true;
    }
    return bytes;
  }

  /** The home box's LAN URLs this phone tries first when the user syncs (docs/sync.md). */
  get lanUrls(): string[] {
    return this.#state.lan ?? this.#state.welcome?.lan ?? [];
  }

  /** Sets the home box's LAN URLs (`[]`: never try the LAN; `null`: those of the welcome). */
  async setLanUrls(urls: string[] | null): Promise<void> {
    for (const u of urls ?? []) {
      const url = new URL(u); // TypeError when it is not a URL
      if (url.protocol !== "http:" && url.protocol !== "https:") {
        throw new TypeError(`${u} is not an http:// or https:// URL`);
      }
    }
    if (urls === null) delete this.#state.lan;
    else this.#state.lan = urls;
    await this.#save();
  }

  /**
   * One exchange, one request (`POST /v1/relay/DEVICE/exchange`): it carries this phone's
   * changes, the replies to what the previous exchange brought and its acknowledgement, and
   * brings what waits (envelopes, and mail still at the edge). Replies to what it brings go
   * with the next exchange — the home keeps sending changes meanwhile — unless `flush` is set
   * (a user waiting on the screen), the home asked for something only a reply gives (an
   * unlock), or the home's message shows it has changes this phone lacks (it sends them only
   * once it has the reply), when they are posted at once.
   *
   * `lan` (default: `flush`, a sync the user started) tries the home box's LAN URLs first with
   * the same envelopes ({@linkcode lanUrls}); the edge is used when none answers within
   * `limits.lanConnectTimeoutMs`. A push-driven sync goes to the edge, which holds what the
   * push announced.
   */
  async sync(
    opts: { flush?: boolean; waitSeconds?: number; lan?: boolean } = {},
  ): Promise<SyncReport> {
    const w = this.#state.welcome;
    if (!w) throw new Error("this phone has not joined an account yet");
    const before = this.requests;
    const local: SyncMessage[] = this.#peer.start().map((frame) => ({
      kind: "sync" as const,
      frame,
    }));
    const w0 = this.#state.wants;
    if (w0 && !w0.posted) {
      const request = this.#wantsRequest();
      if (request) local.push(request);
    }
    const sealedLocal = await this.#seal(local);
    let lanError: string | undefined;
    for (const url of (opts.lan ?? opts.flush ?? false) ? this.lanUrls : []) {
      const outbox = (this.#state.outbox ?? []).map((o) => fromBase64(o.envelope));
      try {
        return await this.#syncOnLan(url, [...outbox, ...sealedLocal], local.length, before);
      } catch (e) {
        if (!(e instanceof LanUnavailable)) throw e;
        lanError = `${url}: ${e.message}`;
      }
    }
    const send = [
      ...(this.#state.outbox ?? []),
      ...sealedLocal.map((e) => ({ to: w.homeId, envelope: toBase64(e) })),
    ];
    const body = enc({ ack: this.#state.acks ?? [], send });
    const wait = Math.max(0, Math.floor(opts.waitSeconds ?? 0));
    const res = await this.#request(
      "POST",
      `/v1/relay/${this.#state.device}/exchange?wait=${wait}&mail=${this.#state.lastItem ?? ""}`,
      body,
      true,
      { accept: relayAnswerType },
    );
    if (!res.ok) throw new Error(`the edge answered ${res.status}: ${await errorOf(res)}`);
    const got = await this.#readRelay(res);
    this.#state.outbox = [];
    this.#state.acks = got.ids;
    const out: SyncMessage[] = [];
    await this.#handle(got.messages, out);
    let bytesOut = body.length;
    // A reply that the home needs before it can send what this phone lacks goes at once: kept
    // for the next exchange, it waited for a push that never came, since the home posts nothing
    // more until it has the reply. After a restart the home's first sync frame names its heads
    // but carries no changes (mail it fetched from the edge while it opened the document, say).
    const behind = out.length > 0 && this.#peer.behindPeer();
    if (opts.flush || behind || out.some((m) => m.kind !== "sync")) {
      bytesOut += await this.#send(out, this.#state.acks);
      if (!out.length && this.#state.acks.length) await this.#ack(this.#state.acks);
      this.#state.acks = [];
    } else {
      this.#state.outbox = (await this.#seal(out)).map((e) => ({
        to: w.homeId,
        envelope: toBase64(e),
      }));
    }
    // After an unlock in `out`, so that a home that was locked can store them.
    bytesOut += await this.#postAppends();
    await this.#save();
    return {
      requests: this.requests - before,
      via: "edge",
      lanError,
      received: got.messages.length,
      sent: local.length + out.length,
      bytesIn: got.bytes,
      bytesOut,
    };
  }

  /**
   * A sync with the home box at `url` (its HTTP port): the envelopes go in one request and the
   * home's come back in its answer; replies go at once, for up to {@linkcode maxLanRounds}
   * rounds. Throws {@linkcode LanUnavailable} when the first round fails: nothing has changed
   * then, and the same envelopes go through the edge.
   */
  async #syncOnLan(
    url: string,
    envelopes: Uint8Array[],
    sent: number,
    before: number,
  ): Promise<SyncReport> {
    let got = await this.#lanRound(url, envelopes);
    const report: SyncReport = {
      requests: 0,
      via: "lan",
      received: got.messages.length,
      sent,
      bytesIn: got.bytesIn,
      bytesOut: got.bytesOut,
    };
    // Delivered to the home: what waited for the next exchange went with this one.
    this.#state.outbox = [];
    const out: SyncMessage[] = [];
    await this.#handle(got.messages, out);
    for (let round = 1; out.length && round < maxLanRounds; round++) {
      const replies = out.splice(0);
      report.sent += replies.length;
      try {
        got = await this.#lanRound(url, await this.#seal(replies));
      } catch (e) {
        if (!(e instanceof LanUnavailable)) throw e;
        report.lanError = `${url}: ${e.message}`;
        out.push(...replies);
        break;
      }
      report.received += got.messages.length;
      report.bytesIn += got.bytesIn;
      report.bytesOut += got.bytesOut;
      await this.#handle(got.messages, out);
    }
    // Replies not delivered go with the next exchange, LAN or edge.
    this.#state.outbox = (await this.#seal(out)).map((e) => ({
      to: this.#state.homeId,
      envelope: toBase64(e),
    }));
    for (const a of this.#state.appends ?? []) {
      if (a.posted) continue;
      const sealed = await this.mail.blob(a.blob);
      if (!sealed) continue;
      const message: SyncMessage = {
        kind: "append",
        use: "\\Sent",
        flags: ["\\Seen"],
        date: a.date,
        sealed,
      };
      try {
        got = await this.#lanRound(url, await this.#seal([message]));
      } catch (e) {
        if (!(e instanceof LanUnavailable)) throw e;
        break; // posted with the next sync
      }
      a.posted = true;
      report.bytesOut += got.bytesOut;
      const more: SyncMessage[] = [];
      await this.#handle(got.messages, more);
      if (more.length) {
        this.#state.outbox.push(
          ...(await this.#seal(more)).map((e) => ({
            to: this.#state.homeId,
            envelope: toBase64(e),
          })),
        );
      }
    }
    await this.#save();
    report.requests = this.requests - before;
    return report;
  }

  /**
   * One request to the home box's LAN port: a `lan` message (fresh nonce and date) and the
   * envelopes; the answer's envelopes, opened, after the echo of the nonce.
   */
  async #lanRound(
    base: string,
    envelopes: Uint8Array[],
  ): Promise<{ messages: SyncMessage[]; bytesIn: number; bytesOut: number }> {
    const nonce = toBase64Url(crypto.getRandomValues(new Uint8Array(16)));
    const [hello] = await this.#seal([{ kind: "lan", nonce, date: Date.now() }]);
    const body = encodeEnvelopes([hello, ...envelopes]);
    const abort = new AbortController();
    // A home that is not there (or not this phone's) answers no headers: the edge takes over.
    let timer = setTimeout(
      () => abort.abort(),
      limits.lanConnectTimeoutMs + body.length / 1000,
    );
    let res: Response;
    this.requests++;
    try {
      res = await this.#fetch(new URL(lanExchangePath, base), {
        method: "POST",
        headers: { "content-type": "application/octet-stream" },
        body: body as Uint8Array<ArrayBuffer>,
        signal: abort.signal,
      });
    } catch (e) {
      throw new LanUnavailable(
        abort.signal.aborted
          ? "the home box did not answer in time"
          : `the home box cannot be reached (${(e as Error).message})`,
      );
    } finally {
      clearTimeout(timer);
    }
    if (!res.ok) {
      throw new LanUnavailable(`the home box answered ${res.status}: ${await errorOf(res)}`);
    }
    timer = setTimeout(() => abort.abort(), limits.lanAnswerTimeoutMs);
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await res.arrayBuffer());
    } catch (e) {
      throw new LanUnavailable(`the answer broke off (${(e as Error).message})`);
    } finally {
      clearTimeout(timer);
    }
    const me = { id: this.#state.device, identity: this.#state.age.identity };
    const keyOf = (id: string) =>
      Promise.resolve(id === this.#state.homeId ? this.#state.homeKey : null);
    const parts = new Reassembler();
    const messages: SyncMessage[] = [];
    try {
      for (const e of decodeEnvelopes(bytes, limits.relayEnvelopeBytes)) {
        const whole = parts.add((await openEnvelope(e, me, keyOf)).payload);
        if (whole) messages.push(decodeMessage(whole));
      }
    } catch (e) {
      throw new LanUnavailable(`the answer is not the home box's (${(e as Error).message})`);
    }
    const echo = messages.shift();
    if (echo?.kind !== "lan" || echo.nonce !== nonce) {
      throw new LanUnavailable("the answer is not to this request");
    }
    return { messages, bytesIn: bytes.length, bytesOut: body.length };
  }

  /**
   * Sends a chat message: a mail with `Chat-Version: 1.0` (the Delta Chat convention, so any
   * mail client shows it), posted to the edge signed by this device. Recipients on the same
   * edge get it at once with an `Urgency: high` push; others by SMTP. A copy goes to the
   * account's Sent folder, as for {@linkcode send}.
   */
  async chat(to: string, text: string): Promise<void> {
    const preview = text.replace(/\s+/g, " ").trim().slice(0, 40);
    await this.#submit("chat", [to], preview, text);
  }

  /**
   * Sends a mail through the edge, signed by this device, from the account's address: local
   * recipients of the edge get it sealed at once, others by SMTP from the edge's queue. A copy,
   * sealed to the account, goes to the home box for the account's Sent folder (once: the home
   * stores the same sealed bytes, and the phone lists it from them meanwhile).
   */
  async send(to: string[], subject: string, text: string): Promise<{ blob: string }> {
    return await this.#submit("send", to, subject, text);
  }

  async #submit(
    route: "send" | "chat",
    to: string[],
    subject: string,
    text: string,
  ): Promise<{ blob: string }> {
    const w = this.#state.welcome;
    if (!w) throw new Error("this phone has not joined an account yet");
    const date = new Date();
    const raw = composeMail({ from: w.address, to, subject, text, chat: route === "chat", date });
    const query = new URLSearchParams([["from", w.address], ...to.map((t) => ["to", t])]);
    const res = await this.#request(
      "POST",
      `/v1/devices/${this.#state.device}/${route}?${query}`,
      raw,
    );
    if (!res.ok) {
      throw new Error(
        `the edge refused the ${route === "chat" ? "chat " : ""}message: ${await errorOf(res)}`,
      );
    }
    await res.body?.cancel();
    // The Sent copy: sealed here, kept, listed as pending in Sent, posted to the home now
    // (or at the next sync if this fails).
    const sealed = await sealToRecipient(raw, await recipientOf(w.identity));
    const blob = await blobIdOf(sealed);
    await this.mail.putBlob(blob, sealed);
    this.mail.putSummaries([[blob, summarize(raw)]]);
    (this.#state.appends ??= []).push({
      blob,
      date: date.getTime(),
      size: raw.length,
      posted: false,
    });
    await this.#save();
    // The mail is sent; a copy that cannot be posted now goes with the next sync.
    await this.#postAppends().catch(() => {});
    await this.#save();
    return { blob };
  }

  /**
   * A message's content (`id` as {@linkcode list} gives it). Fetched lazily: from what the phone
   * holds (mail read from the edge's queue, bodies fetched before, mail it sent), else asked of
   * the home box through the relay and waited for up to `waitMs`, then kept.
   */
  async body(id: string, opts: { waitMs?: number } = {}): Promise<BodyResult> {
    const identity = this.#state.welcome?.identity;
    if (!identity) throw new Error("this phone has not joined an account yet");
    const blob = this.doc.message(id)?.blob ?? id;
    const held = this.pendingSealed(blob) ?? await this.mail.blob(blob);
    if (held) return { kind: "body", raw: await openSealed(held, identity), fetched: false };
    if (this.#state.pending?.some((p) => p.blob === blob)) return { kind: "at-edge" };
    if (!this.doc.message(id)) return { kind: "gone" };
    this.#gone.delete(blob);
    this.#want("blobs", [blob]);
    const deadline = Date.now() + (opts.waitMs ?? limits.phoneBodyWaitMs);
    for (;;) {
      const left = deadline - Date.now();
      // Someone is waiting: replies go at once, and the exchange waits at the edge for the body.
      await this.sync({ flush: true, waitSeconds: Math.min(25, Math.max(0, left / 1000)) });
      const sealed = await this.mail.blob(blob);
      if (sealed) return { kind: "body", raw: await openSealed(sealed, identity), fetched: true };
      if (this.#gone.has(blob)) return { kind: "gone" };
      if (Date.now() >= deadline) return { kind: "waiting" };
    }
  }

  /**
   * Asks the home, with the next sync, for the summaries of these messages (older ones than
   * the first sync brought: docs/sync.md). Returns how many were not asked for before.
   */
  async wantSummaries(ids: string[]): Promise<number> {
    const blobs = ids.map((id) => this.doc.message(id)?.blob).filter((b): b is string =>
      b !== undefined && !this.mail.has(b)
    );
    const n = this.#want("summaries", blobs);
    await this.#save();
    return n;
  }

  #want(what: "blobs" | "summaries", blobs: string[]): number {
    const w = this.#state.wants ??= { blobs: [], summaries: [], posted: false };
    const fresh = blobs.filter((b) => !w[what].includes(b));
    if (fresh.length) {
      w[what].push(...fresh);
      // One request carries what is still wanted; at most maxRequested of each.
      w[what] = w[what].slice(-1000);
      w.posted = false;
    }
    return fresh.length;
  }

  /**
   * Registers this phone's Web Push subscription (the browser's PushSubscription JSON) with
   * the edge: from then on the edge wakes it when mail or a sync envelope arrives.
   */
  async subscribePush(subscription: unknown): Promise<void> {
    const res = await this.#request(
      "PUT",
      `/v1/devices/${this.#state.device}/push`,
      enc(subscription),
    );
    if (!res.ok) throw new Error(`the edge refused the subscription: ${await errorOf(res)}`);
    await res.body?.cancel();
  }

  /**
   * Messages in a mailbox (by name), newest first; all when no name is given. Mail still
   * waiting at the edge is listed in INBOX as pending until the home box has it, and mail this
   * phone sent in Sent until the home stored its copy: the same sealed bytes become the same
   * blob, so it never shows twice.
   */
  list(mailbox?: string): PhoneMessage[] {
    const boxes = this.doc.mailboxes();
    const out: PhoneMessage[] = [];
    const blobs = new Set<string>();
    for (const [id, m] of this.doc.messages()) {
      blobs.add(m.blob);
      const name = boxes.get(m.mailbox)?.name ?? "?";
      if (mailbox !== undefined && name !== mailbox) continue;
      out.push({ ...m, id, mailboxName: name, pending: false, summary: this.mail.summary(m.blob) });
    }
    const pending = (name: string, blob: string, p: { date: number; size: number }) => {
      if (blobs.has(blob) || (mailbox !== undefined && mailbox !== name)) return;
      out.push({
        id: blob,
        mailbox: "",
        mailboxName: name,
        flags: name === "INBOX" ? [] : ["\\Seen"],
        date: p.date,
        size: p.size,
        blob,
        pending: true,
        summary: this.mail.summary(blob),
      });
    };
    for (const p of this.#state.pending ?? []) pending("INBOX", p.blob, { ...p, date: p.arrived });
    const sent = [...boxes.values()].find((b) => b.use === "\\Sent")?.name ?? "Sent";
    for (const a of this.#state.appends ?? []) pending(sent, a.blob, a);
    return out.sort((a, b) => b.date - a.date);
  }

  /** The sealed bytes of a pending message, if the edge sent them (open with {@linkcode identity}). */
  pendingSealed(blob: string): Uint8Array | null {
    const p = this.#state.pending?.find((x) => x.blob === blob);
    return p?.sealed ? fromBase64Url(p.sealed) : null;
  }

  /** Sets a message's flags; sent at the next sync. */
  async flag(id: string, flags: string[]) {
    if (!this.doc.message(id)) throw new Error(`no message ${id} on this phone`);
    this.doc.edit([{ kind: "flags", id, flags }]);
    await this.#save();
  }

  /** Moves a message to the mailbox named `mailbox`; sent at the next sync. */
  async move(id: string, mailbox: string) {
    if (!this.doc.message(id)) throw new Error(`no message ${id} on this phone`);
    const target = [...this.doc.mailboxes()].find(([, b]) => b.name === mailbox);
    if (!target) throw new Error(`no mailbox ${mailbox}`);
    this.doc.edit([{ kind: "move", id, mailbox: target[0] }]);
    await this.#save();
  }
}

function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

function fromBase64(text: string): Uint8Array {
  return fromBase64Url(text.replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, ""));
}

async function errorOf(res: Response): Promise<string> {
  try {
    return (await res.json()).error ?? res.statusText;
  } catch {
    return res.statusText;
  }
}

/** Keeps a phone's state in memory (tests). */
export class MemoryStorage implements PhoneStorage {
  readonly values = new Map<string, Uint8Array>();
  get(key: string) {
    return Promise.resolve(this.values.get(key) ?? null);
  }
  set(key: string, value: Uint8Array) {
    this.values.set(key, value);
    return Promise.resolve();
  }
}
