/**
 * `hearth friend …`, `hearth backup …` and `hearth restore` (docs/backup.md):
 * what the commands print; the work is in backup.ts, backup_restore.ts and
 * sync/backup/.
 *
 * @example
 * ```ts
 * await runFriendCommand(config, { action: "allow", name: "alice", quota: "20GB" });
 * ```
 */
import type { HearthConfig } from "../src/config.ts";
import { UsageError } from "../src/errors.ts";
import { formatGrant } from "../sync/backup/format.ts";
import { parseQuota } from "../sync/backup/host_store.ts";
import { backupClientFor } from "../sync/backup/relay.ts";
import { openStore } from "./box.ts";
import { backupHostStore } from "./http.ts";
import { addBackupPeer, backupPeers, formatProgress, replicateAll } from "./backup.ts";
import { restoreFromBackup } from "./backup_restore.ts";
import { drillPeer, lastDrill } from "./backup_drill.ts";
import { allowRelayPeer } from "./backup_relay.ts";
import { homeSigningKey } from "./edge_link.ts";

const mb = (n: number) =>
  n < 1e6
    ? `${(n / 1e3).toFixed(1)} kB`
    : n < 1e9
    ? `${(n / 1e6).toFixed(1)} MB`
    : `${(n / 1e9).toFixed(2)} GB`;
const when = (t: number | null) => (t ? new Date(t).toISOString() : "never");

export interface FriendCommand {
  action?: string;
  name?: string;
  quota?: string;
  /** The URL the friend's home box reaches this one at; default http://HOSTNAME:HOME_HTTP_PORT. */
  url?: string;
  /** Through this box's edge (`hearth home link` first): neither box needs to reach the other. */
  relay?: boolean;
}

/** `hearth friend allow --name N --quota 20GB` and `hearth friend list`. */
export async function runFriendCommand(config: HearthConfig, cmd: FriendCommand): Promise<void> {
  const { kv } = await openStore(config);
  try {
    const host = backupHostStore(config.dataDir, kv);
    if (cmd.action === "allow") {
      if (!cmd.name) throw new UsageError("usage: hearth friend allow --name NAME [--quota 20GB]");
      let quota: number;
      try {
        quota = parseQuota(cmd.quota ?? "20GB");
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      if (cmd.relay) {
        const { grant } = await allowRelayPeer(config.dataDir, kv, host, cmd.name, quota);
        console.log(
          `Backup space for ${cmd.name}: ${
            mb(quota)
          }, through this box's edge. Give your friend this grant:

  ${grant}

On their home box: hearth backup add-peer '<grant>'. This box must be running ("hearth home")
and linked to its edge; neither box needs to reach the other. Keep the grant with the recovery
key: a restore needs it.`,
        );
        return;
      }
      const { peer, token } = await host.allow(cmd.name, quota);
      const url = cmd.url ?? `http://${config.hostname}:${config.homeHttpPort}`;
      console.log(`Backup space for ${cmd.name}: ${mb(quota)}. Give your friend this grant:

  ${formatGrant({ url, peer, token })}

On their home box: hearth backup add-peer '<grant>'. The box must be running ("hearth home")
and its HTTP port ${config.homeHttpPort} reachable from theirs. Keep the grant with the recovery
key: a restore needs it.`);
      return;
    }
    if (cmd.action === "list" || cmd.action === undefined) {
      const peers = await host.peers();
      if (!peers.length) {
        console.log(
          'No backup peers. Add one with "hearth friend allow --name NAME --quota 20GB".',
        );
        return;
      }
      for (const p of peers) {
        const prune = p.prune
          ? `, prune of versions < ${p.prune.keepFrom} due ${when(p.prune.effectiveAt)}`
          : "";
        console.log(
          `${p.name} (${p.id}): ${mb(p.usedBytes)} of ${mb(p.quotaBytes)}, ${p.objects} objects, ` +
            `version ${p.latestSeq}, last contact ${when(p.lastContact)}` +
            `${p.publicKey ? "" : ", grant not used yet"}${prune}`,
        );
      }
      return;
    }
    throw new UsageError(
      "usage: hearth friend allow --name NAME [--quota 20GB] | hearth friend list",
    );
  } finally {
    kv.close();
  }
}

export interface BackupCommand {
  action?: string;
  arg?: string;
  peer?: string;
  keepFrom?: string;
  /** `hearth backup drill --all`: every object, not a sample. */
  all?: boolean;
}

/** `hearth backup add-peer GRANT | status | run | prune --peer P --keep-from N`. */
export async function runBackupCommand(config: HearthConfig, cmd: BackupCommand): Promise<void> {
  const { kv, blobs } = await openStore(config);
  try {
    switch (cmd.action) {
      case "add-peer": {
        if (!cmd.arg) throw new UsageError("usage: hearth backup add-peer GRANT");
        const { peer, quotaBytes } = await addBackupPeer(config.dataDir, kv, cmd.arg);
        console.log(
          `Backing up to ${peer.url} (${peer.peer}, ${mb(quotaBytes)}). The running home box ` +
            'replicates every few minutes; "hearth backup run" does it now.',
        );
        return;
      }
      case "run": {
        let last = 0;
        const results = await replicateAll({ dataDir: config.dataDir, kv, blobs }, (peer, p) => {
          if (Date.now() - last < 1000 && p.objects < p.totalObjects) return;
          last = Date.now();
          console.log(`${peer}: ${formatProgress(p)}`);
        });
        if (!results.length) {
          console.log('No backup peers; add one with "hearth backup add-peer GRANT".');
        }
        let failed = false;
        for (const r of results) {
          if ("error" in r) {
            failed = true;
            console.log(`${r.peer}: failed: ${r.error}`);
          } else {
            console.log(
              `${r.peer}: version ${r.seq}${
                r.newManifest ? "" : " (unchanged)"
              }, ${r.accounts} accounts, ` +
                `${r.objects} objects sent (${mb(r.bytes)})` +
                (r.skipped.length
                  ? `; ${r.skipped.length} accounts changing, retried next run`
                  : ""),
            );
          }
        }
        if (failed) throw new Error("a backup peer failed; see above");
        return;
      }
      case "prune": {
        const peer = (await backupPeers(kv)).find((p) => p.peer === cmd.peer);
        const keepFrom = Number(cmd.keepFrom);
        if (!peer || !Number.isSafeInteger(keepFrom)) {
          throw new UsageError("usage: hearth backup prune --peer PEER --keep-from VERSION");
        }
        const client = backupClientFor(
          peer.url,
          peer.peer,
          peer.token,
          await homeSigningKey(config.dataDir),
        );
        const res = await client.prune(keepFrom);
        console.log(
          `Versions before ${res.keepFrom} and what only they name will be deleted on ${
            when(res.effectiveAt)
          }.`,
        );
        return;
      }
      case "drill": {
        const peers = await backupPeers(kv);
        if (!peers.length) throw new UsageError('no backup peers; see "hearth backup add-peer"');
        let failed = false;
        for (const p of peers) {
          const r = await drillPeer({ dataDir: config.dataDir, kv, blobs }, p.peer, {
            all: cmd.all,
          });
          failed ||= !r.ok;
          console.log(
            r.ok
              ? `${p.peer}: version ${r.seq} verified: ${r.checked} objects (${mb(r.bytes)}) match`
              : `${p.peer}: FAILED: ${r.error}`,
          );
        }
        if (failed) throw new Error("a restore drill failed; see above");
        return;
      }
      case "status":
      case undefined: {
        const peers = await backupPeers(kv);
        if (!peers.length) {
          console.log('No backup peers; add one with "hearth backup add-peer GRANT".');
        }
        const homeKey = (await homeSigningKey(config.dataDir)).publicKey;
        for (const p of peers) {
          const drill = await lastDrill(kv, p.peer);
          const drillText = !drill
            ? "no drill yet"
            : drill.ok
            ? `last drill ${when(drill.at)} ok (${drill.checked} objects)`
            : `last drill ${when(drill.at)} FAILED: ${drill.error}`;
          console.log(
            `${p.url} (${p.peer}): version ${p.seq}, last success ${
              when(p.lastSuccess)
            }, ${drillText}` +
              (p.lastError ? `, last error: ${p.lastError}` : "") +
              `\n  restore with: hearth restore --from '${formatGrant(p)}' --min-seq ${p.seq} ` +
              `--home-key ${homeKey}`,
          );
        }
        return;
      }
      default:
        throw new UsageError(
          "usage: hearth backup add-peer GRANT | status | run | drill [--all] | prune --peer P --keep-from N",
        );
    }
  } finally {
    kv.close();
  }
}

export interface RestoreCommand {
  from?: string;
  recoveryKey?: string;
  password?: string;
  minSeq?: string;
  homeKey?: string;
}

/** `hearth restore --from GRANT_OR_URL [--recovery-key-file F | --password-stdin] [--min-seq N]`. */
export async function runRestoreCommand(config: HearthConfig, cmd: RestoreCommand): Promise<void> {
  if (!cmd.from) {
    throw new UsageError(
      "usage: hearth restore --from GRANT_OR_URL --data EMPTY_DIR [--recovery-key-file F | --password-stdin]",
    );
  }
  if (!cmd.recoveryKey && !cmd.password) {
    throw new UsageError(
      "pass --recovery-key-file FILE (the AGE-SECRET-KEY-1… key) or --password-stdin",
    );
  }
  const keys = cmd.recoveryKey
    ? cmd.recoveryKey.split(/\s+/).filter((l) => l.startsWith("AGE-SECRET-KEY-1"))
    : [];
  let last = 0;
  const report = await restoreFromBackup({
    dataDir: config.dataDir,
    grant: cmd.from,
    recoveryKeys: keys,
    password: cmd.password,
    minSeq: cmd.minSeq ? Number(cmd.minSeq) : undefined,
    homeKey: cmd.homeKey,
    onProgress: (done, total, bytes) => {
      if (Date.now() - last < 1000 && done < total) return;
      last = Date.now();
      console.log(`${done}/${total} messages, ${mb(bytes)}`);
    },
  });
  console.log(
    `Restored version ${report.seq} (${report.manifestsVerified} manifest versions verified, home key ${report.home}):`,
  );
  for (const a of report.accounts) {
    console.log(`  account ${a.id}: ${a.messages} messages, ${mb(a.bytes)}`);
  }
  if (report.skipped.length) {
    console.log(`Not restored (no key given for them): ${report.skipped.join(", ")}`);
  }
  console.log(`Start the box with: hearth home --data ${config.dataDir}`);
}
