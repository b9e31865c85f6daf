/**
 * The home box's HTTP listener (DESIGN.md: home HTTP 8081, loopback by
 * default): the backup host role (sync/backup/host.ts), so any Hearth box
 * can keep a friend's backup (due prunes are carried out hourly), and phone
 * sync on the LAN (home/phone_lan.ts) when the box runs its phone service.
 *
 * @example
 * ```ts
 * const http = startHomeHttp({ dataDir, kv, listen: "127.0.0.1", port: 8081 });
 * console.log(http.port);
 * await http.close();
 * ```
 */
import { Hono } from "hono";
import { log } from "../src/log.ts";
import { createPhoneLanApp } from "./phone_lan.ts";
import type { PhoneService } from "./phones.ts";
import { createBackupHostApp } from "../sync/backup/host.ts";
import { BackupHostStore } from "../sync/backup/host_store.ts";
import { ObjectFiles } from "../sync/backup/object_files.ts";

export interface HomeHttpOptions {
  dataDir: string;
  kv: Deno.Kv;
  listen: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** Clock and grace period of the backup host (tests). */
  now?: () => number;
  graceMs?: number;
  /** The phone service: paired phones on the LAN sync here (`POST /v1/lan/exchange`). */
  phones?: PhoneService | null;
}

export interface HomeHttp {
  port: number;
  backupHost: BackupHostStore;
  close(): Promise<void>;
}

/** The backup host's store over a data directory (also used by `hearth friend`). */
export function backupHostStore(
  dataDir: string,
  kv: Deno.Kv,
  opts: { now?: () => number; graceMs?: number } = {},
): BackupHostStore {
  return new BackupHostStore(kv, new ObjectFiles(`${dataDir}/backup`), opts);
}

/** Whether this box keeps a backup for anyone (then its HTTP port is needed). */
export async function hostsBackupPeers(kv: Deno.Kv): Promise<boolean> {
  for await (const _ of kv.list({ prefix: ["bk-host", "peer"] }, { limit: 1 })) return true;
  return false;
}

export function startHomeHttp(opts: HomeHttpOptions): HomeHttp {
  const store = backupHostStore(opts.dataDir, opts.kv, opts);
  const app = new Hono();
  if (opts.phones) app.route("/", createPhoneLanApp({ phones: opts.phones }));
  app.route("/", createBackupHostApp({ store, now: opts.now }));
  const server = Deno.serve(
    { hostname: opts.listen, port: opts.port, onListen: () => {} },
    app.fetch,
  );
  const prune = () =>
    store.applyDuePrunes().then(
      (done) => done.objects + done.manifests && log.info("backup-host.pruned", done),
      (e) => log.warn("backup-host.prune-failed", { error: e }),
    );
  const timer = setInterval(prune, 60 * 60_000);
  return {
    port: server.addr.port,
    backupHost: store,
    async close() {
      clearInterval(timer);
      await server.shutdown();
    },
  };
}
