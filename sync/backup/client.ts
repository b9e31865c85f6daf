/**
 * The home side of the backup protocol: signed requests to a friend's box
 * (sync/backup/host.ts). Direct HTTP(S) for now; the edge relay transport is a
 * gap (docs/backup.md).
 *
 * @example
 * ```ts
 * const client = new BackupClient(grant.url, grant.peer, homeKey);
 * await client.hello(grant.token);
 * const missing = await client.missing(ids);
 * ```
 */
import type { SigningKey } from "../../src/crypto/device.ts";
import { signRequest } from "../../src/wire/signed_request.ts";
import type { ObjectBatch } from "./batch.ts";
import {
  batchSummary,
  decodeObjectBatch,
  encodeObjectBatch,
  type SignedManifest,
} from "./format.ts";

/** A refusal or failure from the backup host, with its HTTP status and message. */
export class BackupHostError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = "BackupHostError";
    this.status = status;
  }
}

export interface HostStatus {
  quotaBytes: number;
  usedBytes: number;
  objects: number;
  latestSeq: number;
  home: string | null;
  prune: { keepFrom: number; requested: number; effectiveAt: number } | null;
}

export interface RestoreStart {
  session: string;
  home: string;
  accounts: { id: string; recipient: string; challenge: string; wrapped: string | null }[];
}

export class BackupClient {
  readonly url: string;
  readonly peer: string;
  #key: SigningKey;
  #keyId: string;
  readonly #fetch: typeof fetch;

  constructor(
    url: string,
    peer: string,
    key: SigningKey,
    opts: { keyId?: string; fetch?: typeof fetch } = {},
  ) {
    this.url = url.replace(/\/+$/, "");
    this.peer = peer;
    this.#key = key;
    this.#keyId = opts.keyId ?? peer;
    this.#fetch = opts.fetch ?? fetch;
  }

  async #request(
    method: string,
    rel: string,
    body: Uint8Array | null,
    keyId = this.#keyId,
    signed = body,
  ) {
    return await this.#send(method, `/v1/backup/peers/${this.peer}${rel}`, body, keyId, signed);
  }

  async #send(
    method: string,
    path: string,
    body: Uint8Array | null,
    keyId: string,
    signed: Uint8Array | null,
  ) {
    const headers = await signRequest(this.#key, keyId, method, path, signed);
    let res: Response;
    try {
      res = await this.#fetch(this.url + path, {
        method,
        headers,
        body: body as Uint8Array<ArrayBuffer> | null,
      });
    } catch (e) {
      throw new BackupHostError(
        0,
        `the backup host ${this.url} is unreachable: ${(e as Error).message}`,
      );
    }
    if (!res.ok) {
      const text = await res.text();
      let msg = text;
      try {
        msg = JSON.parse(text).error ?? text;
      } catch { /* not JSON */ }
      throw new BackupHostError(res.status, `${this.url}: ${msg}`);
    }
    return res;
  }

  async #json<T>(method: string, rel: string, value?: unknown, keyId?: string): Promise<T> {
    const body = value === undefined ? null : new TextEncoder().encode(JSON.stringify(value));
    return await (await this.#request(method, rel, body, keyId)).json() as T;
  }

  /** First contact: pins this key with the grant's token. Repeating it is harmless. */
  hello(token: string): Promise<{ quotaBytes: number; usedBytes: number; latestSeq: number }> {
    return this.#json("POST", "/hello", { token, publicKey: this.#key.publicKey });
  }

  status(): Promise<HostStatus> {
    return this.#json("GET", "/status");
  }

  async missing(ids: string[]): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < ids.length; i += 5000) {
      out.push(
        ...(await this.#json<{ missing: string[] }>("POST", "/missing", {
          ids: ids.slice(i, i + 5000),
        })).missing,
      );
    }
    return out;
  }

  async putObject(id: string, bytes: Uint8Array): Promise<boolean> {
    const res = await this.#request("PUT", `/objects/${id}`, bytes);
    return ((await res.json()) as { stored: boolean }).stored;
  }

  /** Uploads several objects in one request (see format.ts batch limits). */
  async putObjects(
    items: { id: string; bytes: Uint8Array }[],
    scratch?: Uint8Array,
  ): Promise<{ stored: number; already: number }> {
    // `scratch` is reused once this resolves: the host has read the whole body by then.
    const res = await this.#request(
      "POST",
      "/objects",
      encodeObjectBatch(items, scratch),
      this.#keyId,
      batchSummary(items),
    );
    return (await res.json()) as { stored: number; already: number };
  }

  /** Uploads a batch built in place (batch.ts); its buffer may be reused once this resolves. */
  async putBatch(batch: ObjectBatch): Promise<{ stored: number; already: number }> {
    const res = await this.#request(
      "POST",
      "/objects",
      batch.body(),
      this.#keyId,
      batch.summary(),
    );
    return (await res.json()) as { stored: number; already: number };
  }

  /**
   * Fetches several objects; the map holds those the host returned (it
   * leaves out what it does not hold, and what did not fit one answer).
   */
  async getObjects(ids: string[]): Promise<Map<string, Uint8Array>> {
    const body = new TextEncoder().encode(JSON.stringify({ ids }));
    const res = await this.#request("POST", "/objects/read", body);
    const items = decodeObjectBatch(new Uint8Array(await res.arrayBuffer()));
    return new Map(items.map((i) => [i.id, i.bytes]));
  }

  async getObject(id: string): Promise<Uint8Array> {
    return new Uint8Array(await (await this.#request("GET", `/objects/${id}`, null)).arrayBuffer());
  }

  async deleteObject(id: string): Promise<void> {
    await this.#request("DELETE", `/objects/${id}`, null);
  }

  putManifest(m: SignedManifest): Promise<{ seq: number }> {
    return this.#json("POST", "/manifests", m);
  }

  manifests(): Promise<
    { home: string; manifests: { seq: number; created: number; received: number }[] }
  > {
    return this.#json("GET", "/manifests");
  }

  manifest(seq: number): Promise<SignedManifest> {
    return this.#json("GET", `/manifests/${seq}`);
  }

  prune(keepFrom: number): Promise<{ keepFrom: number; effectiveAt: number }> {
    return this.#json("POST", "/prune", { keepFrom });
  }

  /** Starts a restore with the grant's token (this client's key is the session's new key). */
  startRestore(token: string): Promise<RestoreStart> {
    return this.#json("POST", "/restore", { token, publicKey: this.#key.publicKey }, "new");
  }

  /**
   * Starts a restore with only the host's URL: the recipients of the recovery
   * keys find the peer (`peer` narrows it). Returns a client for that peer.
   */
  static async startRestoreByKey(
    url: string,
    key: SigningKey,
    recipients: string[],
    opts: { peer?: string; fetch?: typeof fetch } = {},
  ): Promise<{ client: BackupClient; start: RestoreStart & { peer: string } }> {
    const probe = new BackupClient(url, "", key, { keyId: "new", fetch: opts.fetch });
    const start = await probe.#jsonAt<RestoreStart & { peer: string }>(
      "/v1/backup/restore",
      { recipients, publicKey: key.publicKey, peer: opts.peer },
    );
    const client = new BackupClient(url, start.peer, key, { keyId: "new", fetch: opts.fetch });
    return { client, start };
  }

  async #jsonAt<T>(path: string, value: unknown): Promise<T> {
    const body = new TextEncoder().encode(JSON.stringify(value));
    return await (await this.#send("POST", path, body, this.#keyId, body)).json() as T;
  }

  /** Answers a challenge; afterwards this client reads as the session's key. */
  async finishRestore(session: string, answer: string): Promise<void> {
    const { keyId } = await this.#json<{ keyId: string }>(
      "POST",
      `/restore/${session}`,
      { answer },
      `r-${session}`,
    );
    this.#keyId = keyId;
  }
}
