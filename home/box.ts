/**
 * The home box: its data directory, store and listeners, composed.
 *
 * @example
 * ```ts
 * const box = await startHome(await loadConfig("hearth-data"));
 * // … later
 * await box.close();
 * ```
 */
import type { HearthConfig } from "../src/config.ts";
import { saveConfig } from "../src/config.ts";
import { UsageError } from "../src/errors.ts";
import { ensureLocalCertificate, fileExists } from "../src/tls.ts";
import { type BlobFileSystem, BlobStore } from "./store/blobs.ts";
import { AccountRegistry } from "./store/accounts.ts";
import { DeliveryJournal, recoverJournal } from "./store/journal.ts";
import { compactPacks } from "./store/packs.ts";
import { indexRecovered } from "./store/deliver.ts";
import { type ImapServer, startImapServer } from "./imap/server.ts";
import { log } from "../src/log.ts";
import { type Resolver, SystemResolver } from "../src/dns.ts";
import { startMx } from "./smtp/receive.ts";
import { startSubmission, type SubmissionListener } from "./smtp/submission.ts";
import type { OutboundQueue, SmtpDeps, SmtpListener } from "./smtp/types.ts";
import { OutboundQueue as PersistentQueue } from "../src/queue/queue.ts";
import { type QueueRunner, startQueueRunner } from "../src/queue/runner.ts";
import { DirectTransport } from "../src/queue/transport.ts";
import { ensureDkimKey, signingPreparer } from "./queue/dkim.ts";
import { MailauthMtaSts } from "../src/queue/mta_sts.ts";
import { homeDelivery } from "./queue/local.ts";
import { EdgeTransport } from "./queue/edge_transport.ts";
import { startPhoneService } from "./phones.ts";
import { lockDataDir } from "./lock.ts";
import {
  type EdgeLinkConfig,
  homeSigningKey,
  readEdgeLink,
  type RunningEdgeLink,
  startEdgeLink,
} from "./edge_link.ts";
import { backupHostStore, type HomeHttp, hostsBackupPeers, startHomeHttp } from "./http.ts";
import { startBackupRelayHost } from "./backup_relay.ts";
import { type RunningBackup, startBackupLoop } from "./backup.ts";

export interface HomeBox {
  config: HearthConfig;
  kv: Deno.Kv;
  blobs: BlobStore;
  registry: AccountRegistry;
  imap: ImapServer;
  /** The MX listener, when config.mxPort is not null. */
  mx: SmtpListener | null;
  /** The submission listeners, when a submission port is not null. */
  submission: SubmissionListener | null;
  /** The pull loop from the edge, when this box is linked to one. */
  edge: RunningEdgeLink | null;
  /** The home HTTP listener (backup host role), when HomeOptions.http asked for it. */
  http: HomeHttp | null;
  /** Replication to friends' boxes (docs/backup.md); idle while no peer is added. */
  backup: RunningBackup;
  close(): Promise<void>;
}

/**
 * Prepares a data directory: configuration, private CA and server
 * certificate. Safe to run again: nothing that exists is overwritten.
 */
export async function initDataDir(config: HearthConfig): Promise<{ created: boolean }> {
  const dir = config.dataDir;
  await Deno.mkdir(`${dir}/blobs`, { recursive: true, mode: 0o700 });
  let created = false;
  if (!(await fileExists(`${dir}/config.json`))) {
    await saveConfig(config);
    created = true;
  }
  await ensureLocalCertificate(
    dir,
    `Hearth local CA for ${config.domain}`,
    [config.hostname, "localhost", config.domain, "127.0.0.1", "::1"],
  );
  // The DKIM key that signs outgoing mail (published by `hearth dns`).
  await ensureDkimKey(dir);
  return { created };
}

/** Test hooks into the store's durable writes (fault injection: home/store/fsync_faults.ts). */
export interface StorageHooks {
  /** The blob store's file system. */
  fileSystem?: BlobFileSystem;
  /** Wraps the KV handle every part of the box uses. */
  kv?: (kv: Deno.Kv) => Deno.Kv;
}

/** Opens the home box's index and blob store. */
export async function openStore(config: HearthConfig, hooks: StorageHooks = {}) {
  if (!(await fileExists(`${config.dataDir}/config.json`))) {
    throw new UsageError(
      `${config.dataDir} is not a Hearth data directory; run "hearth init" first (or pass --data)`,
    );
  }
  const opened = await Deno.openKv(`${config.dataDir}/home.kv`);
  const kv = hooks.kv ? hooks.kv(opened) : opened;
  const blobs = new BlobStore(`${config.dataDir}/blobs`, hooks.fileSystem);
  return { kv, blobs };
}

export interface HomeOptions {
  /** Allow LOGIN (IMAP) and AUTH (submission) without TLS on loopback (tests, benchmarks). */
  allowPlaintextAuth?: boolean;
  /**
   * The outbound queue. Absent: the box's own persistent queue (DKIM-signed, delivered
   * directly to the recipients' MX hosts). `null`: none, and submission refuses remote
   * recipients with 451 4.3.2 (tests).
   */
  queue?: OutboundQueue | null;
  /** Test hooks for direct delivery: the SMTP port of a host (default 25) and extra CAs. */
  outbound?: { portFor?: (host: string) => number; tlsCa?: string[]; pollMs?: number };
  /** DNS for inbound SPF/DKIM/DMARC on the MX; default the system resolver. */
  resolver?: Resolver;
  /** The edge to pull from. Absent: `DATA/edge-link.json` if `hearth home link` made one. */
  edgeLink?: EdgeLinkConfig | null;
  /** Serve the home HTTP port (config.homeHttpPort: backup host); off unless asked (tests share 8081). */
  http?: boolean;
  /** Backup loop timing (tests): first run delay and interval. */
  backup?: { firstDelayMs?: number; intervalMs?: number };
  /** Test hooks into the store's durable writes (fault injection). */
  storage?: StorageHooks;
}

/**
 * Starts the home box's listeners, holding the data directory's lock
 * (home/lock.ts) until close: a second box on the same data directory fails
 * with DataDirLockedError instead of sharing its KV and queue.
 */
export async function startHome(config: HearthConfig, opts: HomeOptions = {}): Promise<HomeBox> {
  const lock = await lockDataDir(config.dataDir);
  let box: HomeBox;
  try {
    box = await startLockedHome(config, opts);
  } catch (e) {
    lock.release();
    throw e;
  }
  const close = box.close;
  box.close = async () => {
    try {
      await close.call(box);
    } finally {
      lock.release();
    }
  };
  return box;
}

async function startLockedHome(config: HearthConfig, opts: HomeOptions): Promise<HomeBox> {
  const { kv, blobs } = await openStore(config, opts.storage);
  const removed = await blobs.collectTemporaries();
  if (removed) log.info("blobs.temporaries-removed", { count: removed });
  const registry = new AccountRegistry(kv, blobs);
  // Mail that had its 250 before a stop or a crash and was not indexed yet (journal.ts), also
  // in the journal directory of earlier versions.
  const fileSystem = opts.storage?.fileSystem;
  try {
    await recoverJournal(
      [blobs.journalDir, `${config.dataDir}/journal`],
      kv,
      blobs,
      (e) => indexRecovered(kv, blobs, e),
      fileSystem,
    );
    await Deno.remove(`${config.dataDir}/journal`).catch(() => {});
    registry.journal = await DeliveryJournal.open(kv, blobs, { fileSystem });
  } catch (e) {
    await registry.close();
    kv.close();
    throw e;
  }
  // Blobs a crash left unrecorded: in the background, so start-up is not held up.
  let maintenance: Promise<unknown> = blobs.collectUnreferenced(kv).then(
    (n) => n && log.info("blobs.unreferenced-removed", { count: n }),
    (e) => log.warn("blobs.collection-failed", { error: e }),
  );
  // Packs that no record names any more, or mostly empty ones, go (packs.ts): after the
  // collection above, and every hour.
  const compact = () => {
    maintenance = maintenance.then(() => compactPacks(kv, blobs, { fileSystem })).catch((e) =>
      log.warn("blobs.compaction-failed", { error: e })
    );
  };
  compact();
  const compactTimer = setInterval(compact, 3_600_000);
  Deno.unrefTimer(compactTimer);
  const cert = {
    certPem: await Deno.readTextFile(`${config.dataDir}/tls/cert.pem`),
    keyPem: await Deno.readTextFile(`${config.dataDir}/tls/key.pem`),
  };
  let imap: ImapServer;
  try {
    imap = await startImapServer({
      registry,
      hostname: config.hostname,
      listen: config.listen,
      port: config.imapPort,
      tlsPort: config.imapsPort,
      cert,
      tlsAvailable: true,
      allowPlaintextAuth: opts.allowPlaintextAuth ?? false,
    });
  } catch (e) {
    kv.close();
    throw new UsageError((e as Error).message);
  }
  const link = opts.edgeLink === undefined ? await readEdgeLink(config.dataDir) : opts.edgeLink;
  // The outbound queue and its runner (issue 3): DKIM-signed at enqueue, delivered to MX hosts.
  let queue: OutboundQueue | null = opts.queue ?? null;
  let runner: QueueRunner | null = null;
  if (opts.queue === undefined) {
    const dkim = await ensureDkimKey(config.dataDir);
    const outbound = await PersistentQueue.open(kv, config.dataDir, {
      prepare: signingPreparer(config.domain, dkim),
    });
    await outbound.collectOrphans();
    const resolver = opts.resolver ?? new SystemResolver();
    // Linked to an edge: it sends for us (no port 25 or IP reputation needed at home).
    const transport = link
      ? new EdgeTransport(link, await homeSigningKey(config.dataDir))
      : new DirectTransport({
        resolver,
        hostname: config.hostname,
        mtaSts: new MailauthMtaSts(resolver),
        portFor: opts.outbound?.portFor,
        tlsCa: opts.outbound?.tlsCa,
      });
    runner = startQueueRunner({
      queue: outbound,
      local: homeDelivery(kv, blobs, registry),
      transport,
      domain: config.domain,
      hostname: config.hostname,
      pollMs: opts.outbound?.pollMs,
    });
    queue = outbound;
    // `hearth queue retry` in another process wakes the runner within a second (docs/queue.md).
    const stopRetryPoll = outbound.pollRetries(() => runner?.kick());
    const stopRunner = runner.stop;
    runner.stop = async () => {
      await stopRetryPoll();
      await stopRunner();
    };
  }
  const smtpDeps: SmtpDeps = {
    kv,
    blobs,
    registry,
    domain: config.domain,
    hostname: config.hostname,
    listen: config.listen,
    cert,
  };
  let mx: SmtpListener | null = null;
  let submission: SubmissionListener | null = null;
  try {
    if (config.mxPort !== null) {
      const resolver = opts.resolver ?? new SystemResolver();
      mx = await startMx({ ...smtpDeps, port: config.mxPort, resolver });
    }
    if (config.submissionPort !== null || config.submissionsPort !== null) {
      submission = await startSubmission({
        ...smtpDeps,
        port: config.submissionPort,
        tlsPort: config.submissionsPort,
        queue: queue ?? undefined,
        allowPlaintextAuth: opts.allowPlaintextAuth,
      });
    }
  } catch (e) {
    await mx?.close();
    await imap.close();
    await runner?.stop();
    kv.close();
    throw new UsageError(
      `${
        (e as Error).message
      }; pass --mx-port, --submission-port or --submissions-port, or stop the other server`,
    );
  }
  // Mail waiting at the edge comes home once the listeners are up (DESIGN.md, Edge).
  const edge = link ? startEdgeLink({ dataDir: config.dataDir, kv, blobs, registry, link }) : null;
  // Paired phones sync through the edge's relay, and on the LAN at the HTTP port (docs/sync.md).
  const phones = link ? startPhoneService({ dataDir: config.dataDir, kv, registry, link }) : null;
  let http: HomeHttp | null = null;
  try {
    if (opts.http) {
      http = startHomeHttp({
        dataDir: config.dataDir,
        kv,
        listen: config.listen,
        port: config.homeHttpPort,
        phones,
      });
    }
  } catch (e) {
    // A box that keeps no friend's backup does not need the port (several boxes on one machine).
    if (!(await hostsBackupPeers(kv))) {
      log.warn("home-http.unavailable", { port: config.homeHttpPort, error: e });
    } else {
      await phones?.stop();
      await edge?.stop();
      await mx?.close();
      await submission?.close();
      await runner?.stop();
      await imap.close();
      kv.close();
      throw new UsageError(
        `${(e as Error).message}; pass --home-http-port or stop the other server`,
      );
    }
  }
  const backup = startBackupLoop({ dataDir: config.dataDir, kv, blobs, registry }, opts.backup);
  // Friends' backups kept here through the edge (docs/backup.md, "Through the edge").
  const backupStore = http?.backupHost ?? backupHostStore(config.dataDir, kv);
  const backupRelay = link
    ? startBackupRelayHost({ dataDir: config.dataDir, kv, link, store: backupStore })
    : null;
  return {
    config,
    kv,
    blobs,
    registry,
    imap,
    mx,
    submission,
    edge,
    http,
    backup,
    async close() {
      await backup.stop();
      await backupRelay?.stop();
      await http?.close();
      await phones?.stop();
      await edge?.stop();
      clearInterval(compactTimer);
      await maintenance;
      await mx?.close();
      await submission?.close();
      await runner?.stop();
      await imap.close();
      // After every listener: deliveries acknowledged are indexed before the stores close.
      await registry.journal?.close();
      await registry.close();
      kv.close();
    },
  };
}
