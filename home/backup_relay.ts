/**
 * The friend's-box side of backup through the edge (docs/backup.md, "Through
 * the edge"): `hearth friend allow --relay` opens a slot on this box's edge and
 * prints a grant whose URL is the edge route (sync/backup/relay.ts); the
 * running box then pulls its backup relay mailbox and answers each request
 * with the backup host's app, as if it had come to the home HTTP port.
 *
 * @example
 * ```ts
 * const grant = await allowRelayPeer(dataDir, kv, host, "alice", 20e9);
 * const relay = startBackupRelayHost({ dataDir, kv, link, store: host });
 * await relay.stop();
 * ```
 */
import { UsageError } from "../src/errors.ts";
import { log } from "../src/log.ts";
import { formatGrant } from "../sync/backup/format.ts";
import { createBackupHostApp } from "../sync/backup/host.ts";
import type { BackupHostStore } from "../sync/backup/host_store.ts";
import {
  EdgeCaller,
  formatRelayUrl,
  relayTokenHash,
  serveBackupRelay,
} from "../sync/backup/relay.ts";
import { type EdgeLinkConfig, homeSigningKey, readEdgeLink } from "./edge_link.ts";
import { homeEnvelopeKey } from "./phones.ts";

/** Host KV: `["bk-host", "relay", peer]` marks a peer served through the edge. */
const relayKey = (peer: string) => ["bk-host", "relay", peer];

/**
 * `hearth friend allow --relay`: a peer slot here, its slot on this box's
 * edge, and the grant naming the route. The box must be linked to an edge.
 */
export async function allowRelayPeer(
  dataDir: string,
  kv: Deno.Kv,
  host: BackupHostStore,
  name: string,
  quotaBytes: number,
): Promise<{ peer: string; grant: string }> {
  const link = await readEdgeLink(dataDir);
  if (!link) {
    throw new UsageError(
      'backup through the edge needs this box linked to an edge ("hearth home link EDGE_URL TOKEN")',
    );
  }
  const key = await homeSigningKey(dataDir);
  const envelope = await homeEnvelopeKey(dataDir);
  const { peer, token } = await host.allow(name, quotaBytes);
  const edge = new EdgeCaller(link.url.replace(/\/+$/, ""), key, link.homeId);
  const body = new TextEncoder().encode(
    JSON.stringify({ peer, tokenHash: await relayTokenHash(token) }),
  );
  await edge.ok("POST", "/v1/backup-relay/slots", body).then((r) => r.body?.cancel());
  await kv.set(relayKey(peer), { edge: link.url, created: Date.now() });
  const url = formatRelayUrl({
    edge: link.url,
    host: link.homeId,
    recipient: envelope.recipient,
    hostKey: key.publicKey,
  });
  return { peer, grant: formatGrant({ url, peer, token }) };
}

/** Whether this box serves any backup peer through its edge. */
export async function servesRelayPeers(kv: Deno.Kv): Promise<boolean> {
  for await (const _ of kv.list({ prefix: ["bk-host", "relay"] }, { limit: 1 })) return true;
  return false;
}

export interface BackupRelayHostOptions {
  dataDir: string;
  kv: Deno.Kv;
  link: EdgeLinkConfig;
  store: BackupHostStore;
  now?: () => number;
  /** How often a box with no relay peer looks for one (a grant made by the CLI meanwhile). */
  checkMs?: number;
}

export interface RunningBackupRelayHost {
  stop(): Promise<void>;
}

/** Serves relay peers while the box runs; idle (a KV look every minute) while there are none. */
export function startBackupRelayHost(opts: BackupRelayHostOptions): RunningBackupRelayHost {
  const stop = new AbortController();
  const app = createBackupHostApp({ store: opts.store, now: opts.now });
  const done = (async () => {
    while (!stop.signal.aborted && !(await servesRelayPeers(opts.kv))) {
      await new Promise((r) => {
        const t = setTimeout(r, opts.checkMs ?? 60_000);
        stop.signal.addEventListener("abort", () => (clearTimeout(t), r(null)), { once: true });
      });
    }
    if (stop.signal.aborted) return;
    const [key, envelope] = await Promise.all([
      homeSigningKey(opts.dataDir),
      homeEnvelopeKey(opts.dataDir),
    ]);
    log.info("backup-relay.serving", { edge: opts.link.url });
    await serveBackupRelay({
      edge: opts.link.url.replace(/\/+$/, ""),
      homeId: opts.link.homeId,
      key,
      identity: envelope.identity,
      handle: (req) => Promise.resolve(app.fetch(req)),
      signal: stop.signal,
      onError: (e) => log.warn("backup-relay.failed", { error: e.message }),
    });
  })().catch((e) => log.error("backup-relay.stopped", { error: e }));
  return {
    async stop() {
      stop.abort();
      await done;
    },
  };
}
