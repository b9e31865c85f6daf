/**
 * Looks at a home box from the outside, for `hearth doctor` and `hearth status`:
 * which of its listeners answer, what waits at its edge, free disk space,
 * storage use and the outbound queue. Every probe is bounded in time and
 * reads only; none needs the data directory's lock, so they run next to a
 * running box.
 *
 * @example
 * ```ts
 * const listeners = await probeListeners(config);
 * const edge = await probeEdge(link, await homeSigningKey(dataDir));
 * ```
 */
import type { HearthConfig } from "../src/config.ts";
import type { SigningKey } from "../src/crypto/device.ts";
import { OutboundQueue } from "../src/queue/queue.ts";
import { signRequest } from "../src/wire/signed_request.ts";
import type { PullResponse } from "../src/wire/edge_api.ts";
import type { EdgeLinkConfig } from "./edge_link.ts";

/** One configured listener and whether something answered on it. */
export interface ListenerProbe {
  name: string;
  port: number;
  /** `answers`: our greeting (or a TLS port accepting); `foreign`: another greeting; `closed`. */
  state: "answers" | "foreign" | "closed";
}

/** The address to connect to for a listen address (a wildcard listens on loopback too). */
function connectHost(listen: string): string {
  if (listen === "0.0.0.0" || listen === "") return "127.0.0.1";
  if (listen === "::" || listen === "[::]") return "::1";
  return listen;
}

async function readGreeting(conn: Deno.Conn, ms: number): Promise<string> {
  const buf = new Uint8Array(512);
  const timer = setTimeout(() => {
    try {
      conn.close();
    } catch { /* closed already */ }
  }, ms);
  try {
    const n = await conn.read(buf);
    return n ? new TextDecoder().decode(buf.subarray(0, n)) : "";
  } catch {
    return "";
  } finally {
    clearTimeout(timer);
  }
}

/** A TCP connection, or null when refused or not made within `ms` (a filtered port). */
async function connectWithin(
  hostname: string,
  port: number,
  ms: number,
): Promise<Deno.Conn | null> {
  const connecting = Deno.connect({ hostname, port });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), ms));
  try {
    const conn = await Promise.race([connecting, late]);
    // Too late: close it when it does come.
    if (!conn) connecting.then((c) => c.close(), () => {});
    return conn;
  } catch {
    return null;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Connects to every configured listener of the box. Plain-text ports must greet as IMAP
 * (`* OK`, RFC 9051 §7.1) or SMTP (`220`, RFC 5321 §4.2) do; a TLS port only has to accept.
 */
export async function probeListeners(
  config: HearthConfig,
  timeoutMs = 2_000,
): Promise<ListenerProbe[]> {
  const wanted: [string, number | null, RegExp | null][] = [
    ["IMAP", config.imapPort, /^\* OK/],
    ["IMAP over TLS", config.imapsPort, null],
    ["submission", config.submissionPort, /^220[ -]/],
    ["submission over TLS", config.submissionsPort, null],
    ["MX", config.mxPort, /^220[ -]/],
  ];
  const host = connectHost(config.listen);
  return await Promise.all(
    wanted.filter(([, port]) => port !== null && port > 0).map(async ([name, port, greeting]) => {
      const conn = await connectWithin(host, port!, timeoutMs);
      if (!conn) return { name, port: port!, state: "closed" as const };
      let state: ListenerProbe["state"] = "answers";
      if (greeting) {
        const text = await readGreeting(conn, timeoutMs);
        if (!greeting.test(text)) state = "foreign";
      }
      try {
        conn.close();
      } catch { /* closed by the timer */ }
      return { name, port: port!, state };
    }),
  );
}

/** What the edge said about itself and about the mail waiting for this box. */
export interface EdgeProbe {
  url: string;
  /** Null when the edge answered its health check. */
  unreachable: string | null;
  /** The edge's `Date` header minus this box's clock, in ms; null when unknown. */
  skewMs: number | null;
  /** Half the round trip of the health check: the uncertainty of `skewMs`. */
  uncertaintyMs: number;
  /** Set when the signed request for waiting mail was refused or failed. */
  refused: string | null;
  /** Items waiting at the edge (up to one pull's worth; `more` when there are more). */
  waiting: number;
  more: boolean;
  waitingBytes: number;
  /** Arrival time of the oldest waiting item (ms). */
  oldest: number | null;
}

/**
 * Asks the edge `GET /v1/health` (and reads its clock from the `Date` header), then counts the
 * mail waiting for this box with a signed `GET /v1/home/mail?wait=0`. That request does not
 * acknowledge anything: the items stay at the edge until the box stores and acks them.
 */
export async function probeEdge(
  link: EdgeLinkConfig,
  key: SigningKey,
  opts: { fetch?: typeof fetch; now?: () => number; timeoutMs?: number } = {},
): Promise<EdgeProbe> {
  const fetch_ = opts.fetch ?? fetch;
  const now = opts.now ?? Date.now;
  const timeoutMs = opts.timeoutMs ?? 5_000;
  const out: EdgeProbe = {
    url: link.url,
    unreachable: null,
    skewMs: null,
    uncertaintyMs: 0,
    refused: null,
    waiting: 0,
    more: false,
    waitingBytes: 0,
    oldest: null,
  };
  try {
    const sent = now();
    const res = await fetch_(new URL("/v1/health", link.url), {
      signal: AbortSignal.timeout(timeoutMs),
    });
    await res.body?.cancel();
    const received = now();
    if (!res.ok) {
      out.unreachable = `its health check answered HTTP ${res.status}`;
      return out;
    }
    const date = Date.parse(res.headers.get("date") ?? "");
    if (!Number.isNaN(date)) {
      // The Date header has one-second resolution (RFC 9110 §5.6.7): allow for it.
      out.skewMs = date - (sent + received) / 2;
      out.uncertaintyMs = (received - sent) / 2 + 1_000;
    }
  } catch (e) {
    out.unreachable = (e as Error).name === "TimeoutError"
      ? `no answer within ${timeoutMs / 1000} s`
      : [(e as Error).message, ((e as Error).cause as Error | undefined)?.message]
        .filter(Boolean).join(": ");
    return out;
  }
  try {
    const path = "/v1/home/mail?wait=0";
    const headers = await signRequest(key, link.homeId, "GET", path, null, now());
    const res = await fetch_(new URL(path, link.url), {
      headers,
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!res.ok) {
      const reason = await res.json().then((j) => j.error as string, () => "");
      out.refused = `HTTP ${res.status}${reason ? ` (${reason})` : ""}`;
      return out;
    }
    const pull = await res.json() as PullResponse;
    out.waiting = pull.items.length;
    out.more = pull.more;
    for (const i of pull.items) {
      out.waitingBytes += i.sealedSize;
      out.oldest = Math.min(out.oldest ?? i.arrived, i.arrived);
    }
  } catch (e) {
    out.refused = (e as Error).message;
  }
  return out;
}

/** Free and total bytes of the file system holding `dir`, or null when it cannot be told. */
export interface FreeSpace {
  availableBytes: number;
  totalBytes: number;
}

/**
 * Asks POSIX `df -Pk` (Deno has no statfs): the `-P` format is fixed, one line per file
 * system, sizes in KiB. Null when `df` is missing or says something else (Windows).
 */
export async function freeSpace(dir: string): Promise<FreeSpace | null> {
  try {
    const out = await new Deno.Command("df", {
      args: ["-Pk", dir],
      stdout: "piped",
      stderr: "null",
      env: { LC_ALL: "C" },
    }).output();
    if (!out.success) return null;
    const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
    // Filesystem 1024-blocks Used Available Capacity Mounted-on; the name may hold spaces.
    const fields = lines[lines.length - 1].trim().split(/\s+/);
    const n = fields.length;
    const total = Number(fields[n - 5]), available = Number(fields[n - 3]);
    if (!Number.isFinite(total) || !Number.isFinite(available)) return null;
    return { availableBytes: available * 1024, totalBytes: total * 1024 };
  } catch {
    return null;
  }
}

/** Sizes of what the box stores. */
export interface StorageUsage {
  blobs: number;
  blobBytes: number;
  /** `home.kv` with its SQLite WAL and shared-memory files. */
  kvBytes: number;
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await Deno.stat(path)).size;
  } catch {
    return 0;
  }
}

/**
 * Counts the sealed blobs (`DATA/blobs/xx/ID.age`, and the `packed` ones counted in KV) and
 * sizes them with the packs and the delivery journal (`DATA/blobs/packs`, `DATA/blobs/journal`),
 * and the index.
 */
export async function storageUsage(dataDir: string, packed = 0): Promise<StorageUsage> {
  let blobs = packed, blobBytes = 0;
  try {
    for await (const dir of Deno.readDir(`${dataDir}/blobs`)) {
      if (dir.isDirectory && (dir.name === "packs" || dir.name === "journal")) {
        for await (const f of Deno.readDir(`${dataDir}/blobs/${dir.name}`)) {
          blobBytes += await sizeOf(`${dataDir}/blobs/${dir.name}/${f.name}`);
        }
        continue;
      }
      if (!dir.isDirectory || !/^[0-9a-f]{2}$/.test(dir.name)) continue;
      for await (const f of Deno.readDir(`${dataDir}/blobs/${dir.name}`)) {
        if (!f.name.endsWith(".age")) continue;
        blobs++;
        blobBytes += await sizeOf(`${dataDir}/blobs/${dir.name}/${f.name}`);
      }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const kv = `${dataDir}/home.kv`;
  const kvBytes = (await sizeOf(kv)) + (await sizeOf(`${kv}-wal`)) + (await sizeOf(`${kv}-shm`));
  return { blobs, blobBytes, kvBytes };
}

/** The outbound queue in numbers; reasons name recipient domains, never addresses. */
export interface QueueSummary {
  items: number;
  recipients: number;
  oldestCreated: number | null;
  /** Recipients still pending after at least one failed attempt, or failed for good. */
  failing: { domain: string; state: string; reason: string }[];
}

/** Remote replies often quote the recipient: keep only its domain, for output that gets pasted. */
export function withoutAddresses(text: string): string {
  return text.replace(/[^\s<>"'(),;:@]+@([a-z0-9.-]+)/gi, "…@$1");
}

/**
 * Reads the queue (decrypting envelopes with `DATA/queue.key`). Without a queue key nothing was
 * ever queued: the key is not made here, so a look changes nothing.
 */
export async function queueSummary(kv: Deno.Kv, dataDir: string): Promise<QueueSummary> {
  const summary: QueueSummary = { items: 0, recipients: 0, oldestCreated: null, failing: [] };
  try {
    await Deno.stat(`${dataDir}/queue.key`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return summary;
    throw e;
  }
  const queue = await OutboundQueue.open(kv, dataDir);
  for (const item of await queue.list()) {
    summary.items++;
    summary.oldestCreated = Math.min(summary.oldestCreated ?? item.created, item.created);
    for (const r of item.envelope.recipients) {
      if (r.state === "delivered") continue;
      summary.recipients++;
      if (r.state === "failed" || (item.attempts > 0 && r.reason)) {
        const domain = r.address.slice(r.address.lastIndexOf("@") + 1);
        summary.failing.push({ domain, state: r.state, reason: withoutAddresses(r.reason ?? "") });
      }
    }
  }
  return summary;
}
