/**
 * Runs the edge in this process: Deno KV, the HTTP API on `Deno.serve` and
 * the SMTP front, plus the upkeep that deletes expired items and collects
 * orphaned chunks. `hearth edge` and `hearth up` call {@linkcode startEdge}.
 *
 * @example
 * ```ts
 * const edge = await startEdge({ dataDir: "edge-data", hostname: "mx.example.org",
 *   listen: "127.0.0.1", httpPort: 8080, smtpPort: 2525 });
 * await edge.close();
 * ```
 */
import { type Resolver, SystemResolver } from "../src/dns.ts";
import { loadQueueKey, OutboundQueue } from "../src/queue/queue.ts";
import { startQueueRunner } from "../src/queue/runner.ts";
import { DirectTransport } from "../src/queue/transport.ts";
import { MailauthMtaSts } from "../src/queue/mta_sts.ts";
import { edgeDelivery } from "./outbound.ts";
import { RelayStore } from "./relay.ts";
import { CachingResolver } from "../src/dns_cache.ts";
import {
  generateVapidKeys,
  PushNotifier,
  PushRegistry,
  type PushSender,
  type VapidKeys,
  WebPushSender,
} from "./push.ts";
import { UsageError } from "../src/errors.ts";
import { limits } from "../src/limits.ts";
import { log } from "../src/log.ts";
import { ensureLocalCertificate } from "../src/tls.ts";
import type { CertificatePem } from "../src/smtp/server.ts";
import { AcmeCertificates } from "./acme.ts";
import { KvAcmeChallenges } from "./acme_challenge.ts";
import { createApp, type EdgeDeps, pushAccountId } from "./app.ts";
import { EdgeStore } from "./store.ts";
import { type SmtpFront, startSmtpFront } from "./smtp_front.ts";

export interface EdgeOptions {
  /** Holds `edge.kv` (unless `kv` is given) and `tls/`. */
  dataDir: string;
  /** A KV file path or a KV Connect URL; default `DATA/edge.kv`. */
  kv?: string;
  hostname: string;
  listen: string;
  /** HTTP API port; 0 picks a free one. */
  httpPort: number;
  /**
   * HTTPS port serving the same app (autoconfig, MTA-STS policy) with the edge's certificate
   * (`DATA/tls/`, a private CA until ACME replaces it); null or absent for none.
   */
  httpsPort?: number | null;
  /** What mail clients are told and the MTA-STS mode (edge/wellknown.ts). */
  mailClients?: EdgeDeps["mailClients"];
  mtaSts?: EdgeDeps["mtaSts"];
  /** SMTP front port, or null for none (an edge fed only by HTTP fronts). */
  smtpPort: number | null;
  /**
   * ACME (RFC 8555, edge/acme.ts): a certificate for `names` (default: `hostname`) from this
   * directory replaces the private one on HTTPS and STARTTLS, renewed before it expires.
   * HTTP-01 is answered on the HTTP listener, which must be the names' port 80.
   */
  acme?: {
    directoryUrl: string;
    email?: string;
    names?: string[];
    /** Roots for the directory's own HTTPS (a private or test CA). */
    directoryCaPem?: string;
    now?: () => number;
    checkMs?: number;
  };
  /** DNS for SPF/DKIM/DMARC; without one no verdict is recorded. */
  resolver?: Resolver;
  /** How long unacknowledged items are kept. */
  retentionMs?: number;
  /** How often expired items and orphans are collected. */
  upkeepMs?: number;
  /**
   * Outbound relay delivery. The resolver finds recipients' MX hosts (default: `resolver`);
   * the rest are test hooks (see DirectTransportOptions).
   */
  /** Web Push: a sender other than the real one (tests), and plain-http endpoints (loopback). */
  push?: { sender?: PushSender; allowInsecureEndpoints?: boolean; mailDebounceMs?: number };
  outbound?: {
    resolver?: Resolver;
    portFor?: (host: string) => number;
    tlsCa?: string[];
    pollMs?: number;
  };
}

export interface Edge {
  store: EdgeStore;
  httpPort: number;
  /** The HTTPS listener's port, when there is one. */
  httpsPort: number | null;
  smtpPort: number | null;
  /** The ACME certificate source, when `acme` was given. */
  acme: AcmeCertificates | null;
  /** The URL a home box links to. */
  url: string;
  close(): Promise<void>;
}

/** Opens the edge's KV (file or KV Connect URL) and store. */
export async function openEdgeStore(dataDir: string, kvPath?: string): Promise<EdgeStore> {
  const path = kvPath ?? `${dataDir}/edge.kv`;
  if (!/^https?:\/\//.test(path)) await Deno.mkdir(dataDir, { recursive: true, mode: 0o700 });
  return new EdgeStore(await Deno.openKv(path));
}

/** The edge's VAPID key pair (RFC 8292), made on first start: subscriptions are bound to it. */
async function loadVapidKeys(path: string, hostname: string): Promise<VapidKeys> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const keys = generateVapidKeys(`mailto:postmaster@${hostname}`);
  await Deno.writeTextFile(path, JSON.stringify(keys) + "\n", { mode: 0o600 });
  return keys;
}

export async function startEdge(opts: EdgeOptions): Promise<Edge> {
  const store = await openEdgeStore(opts.dataDir, opts.kv);
  const cert = await ensureLocalCertificate(
    opts.dataDir,
    `Hearth edge local CA for ${opts.hostname}`,
    [opts.hostname, "localhost", "127.0.0.1", "::1"],
  );
  // The relay queue is encrypted under the edge's own key, so a remote KV holds no readable
  // outbound mail; every edge process on one KV needs the same key file (docs/edge.md).
  const queueKey = await loadQueueKey(`${opts.dataDir}/edge-queue.key`);
  const queue = new OutboundQueue(store.kv, queueKey);
  // ACME: a certificate already in KV is served from the start; later ones are swapped in.
  let serving: CertificatePem = cert;
  let swapCertificate = (_cert: CertificatePem): Promise<void> => Promise.resolve();
  const acmeCerts = opts.acme
    ? new AcmeCertificates({
      ...opts.acme,
      kv: store.kv,
      sealKey: queueKey,
      challenges: new KvAcmeChallenges(store.kv),
      names: opts.acme.names ?? [opts.hostname],
      onCertificate: (issued) => {
        serving = issued;
        return swapCertificate(issued);
      },
    })
    : null;
  try {
    await acmeCerts?.load();
  } catch (e) {
    store.kv.close();
    throw new UsageError((e as Error).message);
  }
  await queue.collectOrphans();
  // Web Push (RFC 8030/8291/8292): every committed item wakes the account's devices.
  const vapid = await loadVapidKeys(`${opts.dataDir}/edge-vapid.json`, opts.hostname);
  const registry = new PushRegistry(store.kv);
  const notifier = new PushNotifier({
    sender: opts.push?.sender ?? new WebPushSender({ vapid }),
    mailDebounceMs: opts.push?.mailDebounceMs,
    onGone: async (deviceId) => {
      const device = await store.device(deviceId);
      if (device) await registry.remove(pushAccountId(device.home, device.account), deviceId);
    },
    onFailure: (deviceId, result) => log.warn("edge.push-failed", { deviceId, result }),
  });
  const onArrival = (home: string, account: string, kind: "mail" | "chat" = "mail") => {
    registry.list(pushAccountId(home, account)).then(
      (regs) => regs.forEach((r) => notifier.notify(r.deviceId, r.subscription, kind)),
      (e) => log.warn("edge.push-lookup-failed", { error: e }),
    );
  };
  // Every message asks the system resolver for its sender's SPF and DMARC records, and
  // Deno.resolveDns caches nothing: keep answers a minute (injected test resolvers stay live).
  const resolver = opts.resolver instanceof SystemResolver
    ? new CachingResolver(opts.resolver)
    : opts.resolver;
  const inbound = { store, hostname: opts.hostname, resolver, onArrival };
  const onRelay = (deviceId: string) => {
    store.device(deviceId).then(async (device) => {
      if (!device) return;
      const regs = await registry.list(pushAccountId(device.home, device.account));
      for (const r of regs) {
        if (r.deviceId === deviceId) notifier.notify(r.deviceId, r.subscription, "mail");
      }
    }).catch((e) => log.warn("edge.push-lookup-failed", { error: e }));
  };
  const mxResolver = opts.outbound?.resolver ?? opts.resolver ?? new SystemResolver();
  const runner = startQueueRunner({
    queue,
    local: edgeDelivery(inbound),
    transport: new DirectTransport({
      resolver: mxResolver,
      hostname: opts.hostname,
      mtaSts: new MailauthMtaSts(mxResolver),
      portFor: opts.outbound?.portFor,
      tlsCa: opts.outbound?.tlsCa,
    }),
    domain: opts.hostname,
    hostname: opts.hostname,
    pollMs: opts.outbound?.pollMs,
  });
  const app = createApp({
    ...inbound,
    queue,
    relay: new RelayStore(store.kv),
    onRelay,
    push: {
      registry,
      vapidPublicKey: vapid.publicKey,
      allowInsecureEndpoints: opts.push?.allowInsecureEndpoints,
    },
    mailClients: opts.mailClients,
    mtaSts: opts.mtaSts,
  });
  let http: Deno.HttpServer<Deno.NetAddr>;
  try {
    http = Deno.serve({
      hostname: opts.listen,
      port: opts.httpPort,
      onListen: () => {},
    }, app.fetch);
  } catch (e) {
    await runner.stop();
    store.kv.close();
    throw new UsageError(
      `the edge cannot listen on ${opts.listen}:${opts.httpPort} (${
        (e as Error).message
      }); pass --http-port or stop the other server`,
    );
  }
  const serveHttps = (port: number) =>
    Deno.serve({
      hostname: opts.listen,
      port,
      cert: serving.certPem,
      key: serving.keyPem,
      onListen: () => {},
    }, app.fetch);
  let https: Deno.HttpServer<Deno.NetAddr> | null = null;
  if (opts.httpsPort !== undefined && opts.httpsPort !== null) {
    try {
      https = serveHttps(opts.httpsPort);
    } catch (e) {
      await http.shutdown();
      await runner.stop();
      store.kv.close();
      throw new UsageError(
        `the edge cannot listen on ${opts.listen}:${opts.httpsPort} for HTTPS (${
          (e as Error).message
        }); pass --https-port or stop the other server`,
      );
    }
  }
  let front: SmtpFront | null = null;
  if (opts.smtpPort !== null) {
    try {
      front = await startSmtpFront({
        store,
        hostname: opts.hostname,
        resolver,
        cert: serving,
        listen: opts.listen,
        port: opts.smtpPort,
      });
    } catch (e) {
      await http.shutdown();
      await https?.shutdown();
      await runner.stop();
      store.kv.close();
      throw new UsageError(`${(e as Error).message}; pass --smtp-port or stop the other server`);
    }
  }
  const retention = opts.retentionMs ?? limits.edgeRetentionMs;
  const upkeep = async () => {
    try {
      const expired = await store.expire(retention);
      const orphans = await store.collectOrphans();
      if (expired || orphans) log.info("edge.upkeep", { expired, orphans });
    } catch (e) {
      log.warn("edge.upkeep-failed", { error: e });
    }
  };
  const first = upkeep();
  // Deno.serve cannot change its certificate: stop accepting on the old listener and bind the
  // port anew (within milliseconds); requests in flight finish on the old one.
  const draining = new Set<Promise<void>>();
  swapCertificate = async (issued) => {
    front?.setCertificate(issued);
    if (!https) return;
    const old = https;
    const done = old.shutdown();
    draining.add(done);
    done.finally(() => draining.delete(done));
    for (let attempt = 0;; attempt++) {
      try {
        https = serveHttps(old.addr.port);
        return;
      } catch (e) {
        if (!(e instanceof Deno.errors.AddrInUse) || attempt >= 200) {
          https = null;
          log.error("edge.https-restart-failed", { port: old.addr.port, error: e });
          return;
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  };
  acmeCerts?.start();
  const timer = setInterval(upkeep, opts.upkeepMs ?? 10 * 60_000);
  const httpPort = http.addr.port;
  const host = opts.listen.includes(":") ? `[${opts.listen}]` : opts.listen;
  return {
    store,
    httpPort,
    httpsPort: https?.addr.port ?? null,
    smtpPort: front?.port ?? null,
    acme: acmeCerts,
    url: `http://${host}:${httpPort}`,
    async close() {
      clearInterval(timer);
      await acmeCerts?.close();
      await first;
      await front?.close();
      notifier.close();
      store.shutdown();
      await http.shutdown();
      await https?.shutdown();
      await Promise.all(draining);
      await runner.stop();
      store.kv.close();
    },
  };
}
