/**
 * The home box's link to its edge: registration (`hearth home link`), then a
 * loop that holds a signed long-poll for sealed mail, stores each item
 * durably and only then acknowledges it. At-least-once from the edge,
 * exactly-once in the mailbox: `deliverSealed` stores an item id once.
 * Outbound connections only; reconnects with exponential backoff.
 *
 * @example
 * ```ts
 * const link = await linkToEdge(dataDir, kv, "http://127.0.0.1:8080", token);
 * const running = startEdgeLink({ dataDir, kv, blobs, registry, link });
 * await running.stop();
 * ```
 */
import { generateSigningKey, type SigningKey } from "../src/crypto/device.ts";
import { UsageError } from "../src/errors.ts";
import { log } from "../src/log.ts";
import { signRequest } from "../src/wire/signed_request.ts";
import type {
  EdgeAccount,
  PullResponse,
  RegisterHomeRequest,
  RegisterHomeResponse,
  SealedItem,
} from "../src/wire/edge_api.ts";
import type { AccountRecord, AccountRegistry } from "./store/accounts.ts";
import type { BlobStore } from "./store/blobs.ts";
import { deliverSealed } from "./store/deliver.ts";

/** What `hearth home link` saved in `DATA/edge-link.json`. */
export interface EdgeLinkConfig {
  url: string;
  homeId: string;
  domain: string;
}

const linkPath = (dataDir: string) => `${dataDir}/edge-link.json`;
const keyPath = (dataDir: string) => `${dataDir}/home-signing.key`;

export async function readEdgeLink(dataDir: string): Promise<EdgeLinkConfig | null> {
  try {
    return JSON.parse(await Deno.readTextFile(linkPath(dataDir)));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new UsageError(`${linkPath(dataDir)} is not valid JSON: ${(e as Error).message}`);
  }
}

/** The home box's Ed25519 key, made (0600) on first use; the edge pins its public half. */
export async function homeSigningKey(dataDir: string): Promise<SigningKey> {
  try {
    return JSON.parse(await Deno.readTextFile(keyPath(dataDir)));
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const key = await generateSigningKey();
  try {
    await Deno.writeTextFile(keyPath(dataDir), JSON.stringify(key) + "\n", {
      mode: 0o600,
      createNew: true,
    });
    return key;
  } catch (e) {
    if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    return JSON.parse(await Deno.readTextFile(keyPath(dataDir)));
  }
}

/** Every account with its age recipient and address keys (logins are indexed by address key). */
export async function edgeAccounts(kv: Deno.Kv): Promise<EdgeAccount[]> {
  const byId = new Map<string, string[]>();
  for await (const e of kv.list<string>({ prefix: ["login"] })) {
    const keys = byId.get(e.value) ?? [];
    keys.push(e.key[1] as string);
    byId.set(e.value, keys);
  }
  const out: EdgeAccount[] = [];
  for (const [id, addressKeys] of byId) {
    const rec = (await kv.get<AccountRecord>(["account", id])).value;
    if (rec) out.push({ id, recipient: rec.recipient, addressKeys });
  }
  return out;
}

async function signedFetch(
  url: string,
  keyId: string,
  key: SigningKey,
  method: string,
  path: string,
  body: unknown,
  signal?: AbortSignal,
): Promise<Response> {
  const bytes = body === undefined ? null : new TextEncoder().encode(JSON.stringify(body));
  const headers = await signRequest(key, keyId, method, path, bytes);
  if (bytes) headers["content-type"] = "application/json";
  return await fetch(new URL(path, url), {
    method,
    headers,
    body: bytes as Uint8Array<ArrayBuffer> | null,
    signal,
  });
}

async function expectOk(res: Response, what: string): Promise<Response> {
  if (res.ok) return res;
  let reason = `${res.status}`;
  try {
    reason = (await res.json()).error ?? reason;
  } catch { /* not JSON */ }
  throw new Error(`${what}: the edge answered ${res.status} (${reason})`);
}

/** Sends the edge this box's accounts (recipients and address keys). */
export async function publishAccounts(
  kv: Deno.Kv,
  link: EdgeLinkConfig,
  key: SigningKey,
  signal?: AbortSignal,
): Promise<number> {
  const accounts = await edgeAccounts(kv);
  await expectOk(
    await signedFetch(link.url, link.homeId, key, "PUT", "/v1/home/accounts", { accounts }, signal),
    "publishing the accounts",
  ).then((r) => r.body?.cancel());
  return accounts.length;
}

/**
 * Registers this box with an edge using a pairing token from
 * `hearth edge add-home`, saves the link, and publishes the accounts.
 */
export async function linkToEdge(
  dataDir: string,
  kv: Deno.Kv,
  url: string,
  token: string,
): Promise<EdgeLinkConfig> {
  const key = await homeSigningKey(dataDir);
  const body: RegisterHomeRequest = { token, publicKey: key.publicKey };
  let res: Response;
  try {
    res = await signedFetch(url, "new", key, "POST", "/v1/homes", body);
  } catch (e) {
    throw new UsageError(`cannot reach the edge at ${url}: ${(e as Error).message}`);
  }
  if (!res.ok) {
    const reason = await res.json().then((j) => j.error, () => `HTTP ${res.status}`);
    throw new UsageError(`the edge refused the link: ${reason}`);
  }
  const reg = await res.json() as RegisterHomeResponse;
  const link: EdgeLinkConfig = { url, homeId: reg.homeId, domain: reg.domain };
  await Deno.writeTextFile(linkPath(dataDir), JSON.stringify(link, null, 2) + "\n", {
    mode: 0o600,
  });
  await publishAccounts(kv, link, key);
  return link;
}

export interface EdgeLinkOptions {
  dataDir: string;
  kv: Deno.Kv;
  blobs: BlobStore;
  registry?: AccountRegistry;
  link: EdgeLinkConfig;
  /** Long-poll wait in seconds (the edge caps it). */
  waitSeconds?: number;
  /** How often the account list is sent again (new accounts, new keys). */
  republishMs?: number;
  /** Backoff after a failure: first delay and cap. */
  backoffMs?: [number, number];
  /**
   * How long the edge may take to answer, beyond the long-poll wait, before the link drops
   * the connection and reconnects (default 30 s). A connection cut without a FIN or RST
   * (a NAT or a route gone) would otherwise hold the link for ever.
   */
  replyTimeoutMs?: number;
}

export interface RunningEdgeLink {
  /** Items stored since the start. */
  readonly stored: number;
  stop(): Promise<void>;
}

function fromBase64(text: string): Uint8Array {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Starts pulling sealed mail from the edge until stopped. */
export function startEdgeLink(opts: EdgeLinkOptions): RunningEdgeLink {
  const { link } = opts;
  const stopping = new AbortController();
  const [firstBackoff, maxBackoff] = opts.backoffMs ?? [1_000, 60_000];
  const replyTimeout = opts.replyTimeoutMs ?? 30_000;
  let stored = 0;
  /** Ends a request when the link stops or the edge has not answered `ms` (plus the reply time). */
  const bounded = (ms = 0) =>
    AbortSignal.any([stopping.signal, AbortSignal.timeout(ms + replyTimeout)]);

  async function storeItem(key: SigningKey, item: SealedItem): Promise<boolean> {
    let sealed: Uint8Array;
    if (item.sealed !== undefined) sealed = fromBase64(item.sealed);
    else {
      const path = `/v1/home/mail/${encodeURIComponent(item.id)}`;
      const res = await signedFetch(
        link.url,
        link.homeId,
        key,
        "GET",
        path,
        undefined,
        stopping.signal,
      );
      // Gone: acknowledged by an earlier pull (another process, or before a crash).
      if (res.status === 404) {
        await res.body?.cancel();
        return true;
      }
      sealed = new Uint8Array(await (await expectOk(res, "fetching an item")).arrayBuffer());
    }
    if (sealed.length !== item.sealedSize) throw new Error(`item ${item.id} arrived truncated`);
    try {
      await deliverSealed(opts.kv, opts.blobs, {
        account: item.account,
        sealed,
        size: item.size,
        date: item.arrived,
        itemId: item.id,
      }, opts.registry);
      return true;
    } catch (e) {
      // Not acknowledged: the edge keeps it (and shows it in `hearth edge status`).
      log.error("edge-link.store-failed", { item: item.id, error: e });
      return false;
    }
  }

  const loop = (async () => {
    const key = await homeSigningKey(opts.dataDir);
    let backoff = firstBackoff;
    let published = 0;
    let more = false;
    while (!stopping.signal.aborted) {
      try {
        if (Date.now() - published > (opts.republishMs ?? 10 * 60_000)) {
          const n = await publishAccounts(opts.kv, link, key, bounded());
          published = Date.now();
          log.info("edge-link.published", { accounts: n });
        }
        const wait = more ? 0 : opts.waitSeconds ?? 25;
        const res = await expectOk(
          await signedFetch(
            link.url,
            link.homeId,
            key,
            "GET",
            `/v1/home/mail?wait=${wait}`,
            undefined,
            bounded(wait * 1000),
          ),
          "pulling mail",
        );
        const pull = await res.json() as PullResponse;
        // Stored together, so their blob and index writes share fsyncs.
        const results = await Promise.all(pull.items.map((i) => storeItem(key, i)));
        const done = pull.items.filter((_, n) => results[n]).map((i) => i.id);
        if (done.length) {
          // Acked only now that every one of them is durable here.
          await expectOk(
            await signedFetch(
              link.url,
              link.homeId,
              key,
              "POST",
              "/v1/home/ack",
              { ids: done },
              bounded(),
            ),
            "acknowledging mail",
          ).then((r) => r.body?.cancel());
          stored += done.length;
          log.info("edge-link.stored", { items: done.length });
        }
        const failed = pull.items.length - done.length;
        // A local store failure (I/O error, full disk) fails again at once: back off, not spin.
        if (failed) throw new Error(`${failed} of ${pull.items.length} items could not be stored`);
        more = pull.more && done.length > 0;
        backoff = firstBackoff;
      } catch (e) {
        if (stopping.signal.aborted) break;
        log.warn("edge-link.failed", { error: (e as Error).message, retryInMs: backoff });
        published = 0;
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, backoff * (0.75 + Math.random() / 2));
          stopping.signal.addEventListener("abort", () => {
            clearTimeout(t);
            resolve();
          });
        });
        backoff = Math.min(backoff * 2, maxBackoff);
      }
    }
  })();

  return {
    get stored() {
      return stored;
    },
    async stop() {
      stopping.abort();
      await loop.catch(() => {});
    },
  };
}
