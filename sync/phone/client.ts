/**
 * The phone side of Hearth (docs/sync.md): a replica of the account
 * document, kept current in one short exchange with the home box through the
 * edge's relay mailboxes, run when a push wakes the phone or the user acts.
 * No connection stays open and nothing polls while idle.
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
import { generateAccountKey } from "../../src/crypto/age.ts";
import { generateSigningKey, type SigningKey } from "../../src/crypto/device.ts";
import { fromBase64Url, sha256, toBase64Url, toHex } from "../../src/encoding.ts";
import { signRequest } from "../../src/wire/signed_request.ts";
import { AccountDoc, type DocMessage } from "../doc.ts";
import { openEnvelope, sealEnvelope } from "../envelope.ts";
import { decodeMessage, encodeMessage, type SyncMessage, type Welcome } from "../messages.ts";
import { decodePairingCode, makeHello, pairingBoxId } from "../pairing.ts";
import { Reassembler, splitPayload } from "../parts.ts";
import { SyncPeer } from "../peer.ts";

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
}

export interface PhoneOptions {
  fetch?: typeof fetch;
  /** Envelope size on the relay (the edge's limit). */
  envelopeBytes?: number;
}

/** A message as the phone lists it. */
export interface PhoneMessage extends DocMessage {
  id: string;
  mailboxName: string;
  /** True for mail still waiting at the edge (the home box is offline): not yet in a folder. */
  pending: boolean;
}

export interface SyncReport {
  /** HTTP requests this exchange made. */
  requests: number;
  received: number;
  sent: number;
  bytesIn: number;
  bytesOut: number;
}

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const dec = <T>(b: Uint8Array) => JSON.parse(new TextDecoder().decode(b)) as T;

export class Phone {
  readonly #storage: PhoneStorage;
  readonly #fetch: typeof fetch;
  readonly #envelopeBytes: number;
  #state: DeviceState;
  doc: AccountDoc;
  #peer: SyncPeer;
  readonly #parts = new Reassembler();
  /** Every HTTP request since this object was made (the battery test counts them). */
  requests = 0;

  private constructor(
    storage: PhoneStorage,
    state: DeviceState,
    doc: AccountDoc,
    syncState: Uint8Array | null,
    opts: PhoneOptions,
  ) {
    this.#storage = storage;
    this.#state = state;
    this.doc = doc;
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
    const phone = new Phone(storage, state, AccountDoc.empty(), null, opts);
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
    return new Phone(storage, state, doc, await storage.get("sync"), opts);
  }

  async #save() {
    if (this.#state.pending?.length) {
      const blobs = new Set([...this.doc.messages()].map(([, m]) => m.blob));
      this.#state.pending = this.#state.pending.filter((p) => !blobs.has(p.blob));
    }
    await this.#storage.set("device", enc(this.#state));
    await this.#storage.set("doc", this.doc.save());
    await this.#storage.set("sync", this.#peer.state());
  }

  async #request(
    method: string,
    path: string,
    body: Uint8Array | null,
    signed = true,
  ): Promise<Response> {
    this.requests++;
    const headers: Record<string, string> = signed
      ? await signRequest(this.#state.signing, this.#state.device, method, path, body)
      : {};
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
    );
    if (res.status === 401 && !this.#state.welcome) {
      await res.body?.cancel();
      return null;
    }
    if (!res.ok) throw new Error(`the edge answered ${res.status}: ${await errorOf(res)}`);
    return await this.#readRelay(await res.text());
  }

  /** Opens a relay answer: envelopes for this phone, and mail waiting at the edge. */
  async #readRelay(
    text: string,
  ): Promise<{ ids: string[]; messages: SyncMessage[]; bytes: number }> {
    const body = JSON.parse(text) as {
      items: { id: string; envelope: string }[];
      mail?: { id: string; size: number; arrived: number; sealed?: string }[];
    };
    for (const m of body.mail ?? []) {
      const sealed = m.sealed ? fromBase64(m.sealed) : null;
      (this.#state.pending ??= []).push({
        item: m.id,
        blob: sealed ? await blobIdOf(sealed) : `edge-${m.id}`,
        size: m.size,
        arrived: m.arrived,
        sealed: sealed ? toBase64Url(sealed) : undefined,
      });
      if (!this.#state.lastItem || m.id > this.#state.lastItem) this.#state.lastItem = m.id;
    }
    const messages: SyncMessage[] = [];
    const me = { id: this.#state.device, identity: this.#state.age.identity };
    const keyOf = (id: string) =>
      Promise.resolve(id === this.#state.homeId ? this.#state.homeKey : null);
    for (const item of body.items) {
      try {
        const { payload } = await openEnvelope(fromBase64(item.envelope), me, keyOf);
        const whole = this.#parts.add(payload);
        if (whole) messages.push(decodeMessage(whole));
      } catch (e) {
        // A damaged or foreign envelope is dropped (and acked): it can never be opened.
        console.warn(`hearth phone: dropped an envelope: ${(e as Error).message}`);
      }
    }
    return { ids: body.items.map((i) => i.id), messages, bytes: text.length };
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

  /** Applies received messages; what to answer goes to `out`. */
  async #handle(messages: SyncMessage[], out: SyncMessage[]) {
    for (const m of messages) {
      if (m.kind === "welcome") {
        this.#state.welcome = m.welcome;
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
      }
    }
    await Promise.resolve();
  }

  /**
   * One exchange, one request (`POST /v1/relay/DEVICE/exchange`): it carries this phone's
   * changes, the replies to what the previous exchange brought and its acknowledgement, and
   * brings what waits (envelopes, and mail still at the edge). Replies to what it brings go
   * with the next exchange — the home keeps sending changes meanwhile — unless `flush` is set
   * (a user waiting on the screen) or the home asked for something only a reply gives (an
   * unlock), when they are posted at once.
   */
  async sync(opts: { flush?: boolean } = {}): Promise<SyncReport> {
    const w = this.#state.welcome;
    if (!w) throw new Error("this phone has not joined an account yet");
    const before = this.requests;
    const local = this.#peer.start().map((frame) => ({ kind: "sync" as const, frame }));
    const send = [
      ...(this.#state.outbox ?? []),
      ...(await this.#seal(local)).map((e) => ({ to: w.homeId, envelope: toBase64(e) })),
    ];
    const body = enc({ ack: this.#state.acks ?? [], send });
    const res = await this.#request(
      "POST",
      `/v1/relay/${this.#state.device}/exchange?wait=0&mail=${this.#state.lastItem ?? ""}`,
      body,
    );
    if (!res.ok) throw new Error(`the edge answered ${res.status}: ${await errorOf(res)}`);
    const got = await this.#readRelay(await res.text());
    this.#state.outbox = [];
    this.#state.acks = got.ids;
    const out: SyncMessage[] = [];
    await this.#handle(got.messages, out);
    let bytesOut = body.length;
    if (opts.flush || out.some((m) => m.kind !== "sync")) {
      bytesOut += await this.#send(out, this.#state.acks);
      if (!out.length && this.#state.acks.length) await this.#ack(this.#state.acks);
      this.#state.acks = [];
    } else {
      this.#state.outbox = (await this.#seal(out)).map((e) => ({
        to: w.homeId,
        envelope: toBase64(e),
      }));
    }
    await this.#save();
    return {
      requests: this.requests - before,
      received: got.messages.length,
      sent: local.length + out.length,
      bytesIn: got.bytes,
      bytesOut,
    };
  }

  /**
   * Sends a chat message: a mail with `Chat-Version: 1.0` (the Delta Chat convention, so any
   * mail client shows it), posted to the edge signed by this device. Recipients on the same
   * edge get it at once with an `Urgency: high` push; others by SMTP.
   */
  async chat(to: string, text: string): Promise<void> {
    const from = this.#state.welcome?.address;
    if (!from) throw new Error("this phone has not joined an account yet");
    const domain = from.slice(from.lastIndexOf("@") + 1);
    const preview = text.replace(/\s+/g, " ").slice(0, 40);
    // RFC 2047 §4.1: non-ASCII header text as a base64 encoded-word.
    const subject = /^[\x20-\x7e]*$/.test(preview)
      ? preview
      : `=?utf-8?b?${btoa(String.fromCharCode(...new TextEncoder().encode(preview)))}?=`;
    const body = text.replace(/\r?\n/g, "\r\n");
    const raw = new TextEncoder().encode(
      [
        `From: <${from}>`,
        `To: <${to}>`,
        `Subject: ${subject}`,
        `Date: ${new Date().toUTCString().replace(/GMT$/, "+0000")}`,
        `Message-ID: <${crypto.randomUUID()}@${domain}>`,
        "Chat-Version: 1.0",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "",
        body,
        "",
      ].join("\r\n"),
    );
    const query = new URLSearchParams({ from, to });
    const res = await this.#request(
      "POST",
      `/v1/devices/${this.#state.device}/chat?${query}`,
      raw,
    );
    if (!res.ok) throw new Error(`the edge refused the chat message: ${await errorOf(res)}`);
    await res.body?.cancel();
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
   * waiting at the edge is listed in INBOX as pending until the home box has it: the same
   * sealed bytes become the same blob, so it never shows twice.
   */
  list(mailbox?: string): PhoneMessage[] {
    const boxes = this.doc.mailboxes();
    const out: PhoneMessage[] = [];
    const blobs = new Set<string>();
    for (const [id, m] of this.doc.messages()) {
      blobs.add(m.blob);
      const name = boxes.get(m.mailbox)?.name ?? "?";
      if (mailbox !== undefined && name !== mailbox) continue;
      out.push({ ...m, id, mailboxName: name, pending: false });
    }
    if (mailbox === undefined || mailbox === "INBOX") {
      for (const p of this.#state.pending ?? []) {
        if (blobs.has(p.blob)) continue;
        out.push({
          id: p.blob,
          mailbox: "",
          mailboxName: "INBOX",
          flags: [],
          date: p.arrived,
          size: p.size,
          blob: p.blob,
          pending: true,
        });
      }
    }
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

/** The id the home box's blob store gives these sealed bytes (home/store/blobs.ts). */
async function blobIdOf(sealed: Uint8Array): Promise<string> {
  return toHex((await sha256(sealed)).subarray(0, 16));
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
