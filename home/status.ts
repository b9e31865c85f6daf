/**
 * `hearth status`: one screen on what the box is doing — whether it runs,
 * accounts, storage, the outbound queue, the edge link and what waits there,
 * backups and disk space. Reads only, takes no lock: it runs next to a
 * running box.
 *
 * Accounts are counted, not listed: their addresses are stored encrypted
 * (DESIGN.md, trust model). There is no "last errors" list: the box logs to
 * standard error only, and its error lines carry error messages that can
 * quote addresses (a remote server's reply), which must not be kept on disk.
 * The queue's last delivery errors are shown instead, with addresses
 * reduced to their domains.
 *
 * @example
 * ```ts
 * console.log(formatStatus(await boxStatus(config)));
 * ```
 */
import { backupPeers } from "./backup.ts";
import type { HearthConfig } from "../src/config.ts";
import { openStore } from "./box.ts";
import { homeSigningKey, readEdgeLink } from "./edge_link.ts";
import {
  type EdgeProbe,
  type FreeSpace,
  freeSpace,
  type ListenerProbe,
  probeEdge,
  probeListeners,
  type QueueSummary,
  queueSummary,
  type StorageUsage,
  storageUsage,
} from "./probes.ts";
import { formatDuration } from "./queue/cli.ts";

export interface BoxStatus {
  dataDir: string;
  domain: string;
  running: boolean;
  listeners: ListenerProbe[];
  accounts: number;
  storage: StorageUsage;
  queue: QueueSummary;
  /** Null when the box is not linked to an edge. */
  edge: EdgeProbe | null;
  backups: { peers: number; note: string };
  disk: FreeSpace | null;
}

export interface StatusOptions {
  now?: () => number;
  fetch?: typeof fetch;
  timeoutMs?: number;
}

/** Gathers the status of the box of `config`. */
export async function boxStatus(
  config: HearthConfig,
  opts: StatusOptions = {},
): Promise<BoxStatus> {
  const { kv } = await openStore(config);
  let accounts = 0, packed = 0, queue: QueueSummary, peers: number;
  try {
    for await (const _ of kv.list({ prefix: ["account"] })) accounts++;
    for await (const _ of kv.list({ prefix: ["blob-pack"] })) packed++;
    queue = await queueSummary(kv, config.dataDir);
    peers = (await backupPeers(kv)).length;
  } finally {
    kv.close();
  }
  const link = await readEdgeLink(config.dataDir);
  const [listeners, storage, edge, disk] = await Promise.all([
    probeListeners(config, 1_000),
    storageUsage(config.dataDir, packed),
    link
      ? homeSigningKey(config.dataDir).then((key) =>
        probeEdge(link, key, {
          fetch: opts.fetch,
          now: opts.now,
          timeoutMs: opts.timeoutMs ?? 3_000,
        })
      )
      : null,
    freeSpace(config.dataDir),
  ]);
  return {
    dataDir: config.dataDir,
    domain: config.domain,
    running: listeners.some((l) => l.state === "answers"),
    listeners,
    accounts,
    storage,
    queue,
    edge,
    backups: {
      peers,
      note: peers ? '"hearth backup status" shows each peer' : "no peer (hearth backup add-peer)",
    },
    disk,
  };
}

function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) [n, i] = [n / 1024, i + 1];
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

/** The one screen `hearth status` prints. */
export function formatStatus(s: BoxStatus, now = Date.now()): string {
  const row = (label: string, text: string) => `  ${label.padEnd(12)}${text}`;
  const answering = s.listeners.filter((l) => l.state === "answers");
  const q = s.queue;
  const e = s.edge;
  const lines = [
    `Hearth for ${s.domain} (${s.dataDir})`,
    "",
    row(
      "box",
      s.running
        ? `running: ${answering.map((l) => `${l.name} ${l.port}`).join(", ")}`
        : "not running (start it with hearth home)",
    ),
    row("accounts", `${s.accounts} (addresses are stored encrypted; not listed)`),
    row(
      "storage",
      `${s.storage.blobs} messages in ${bytes(s.storage.blobBytes)} of sealed blobs; index ${
        bytes(s.storage.kvBytes)
      }`,
    ),
    row(
      "queue",
      q.items === 0
        ? "empty"
        : `${q.items} messages for ${q.recipients} recipients, oldest ${
          formatDuration(now - q.oldestCreated!)
        } old; ${q.failing.length} failing`,
    ),
    row(
      "edge",
      !e
        ? "not linked (hearth up, or hearth home link URL TOKEN)"
        : e.unreachable
        ? `${e.url}: unreachable (${e.unreachable})`
        : e.refused
        ? `${e.url}: reachable, refuses this box (${e.refused})`
        : `${e.url}: reachable; ${e.waiting}${e.more ? "+" : ""} messages waiting${
          e.oldest === null ? "" : `, oldest ${formatDuration(now - e.oldest)}`
        }`,
    ),
    row("backups", `${s.backups.peers || "none"}: ${s.backups.note}`),
    row(
      "disk",
      s.disk
        ? `${bytes(s.disk.availableBytes)} free of ${bytes(s.disk.totalBytes)}`
        : "free space unknown (no df)",
    ),
    row(
      "last errors",
      q.failing.length
        ? "delivery, from the queue:"
        : "none in the queue (the box's log is on its standard error)",
    ),
  ];
  for (const f of q.failing.slice(-5)) lines.push(`    ${f.domain}: ${f.reason || f.state}`);
  return lines.join("\n");
}
