/**
 * The friend's-backup benchmark (docs/backup.md): initial replication of the
 * bench mailbox from one home box to another over loopback HTTP (time, MB/s,
 * memory), an incremental run after 50 new messages (bytes moved against the
 * bytes of those 50 sealed messages), and a restore into an empty directory;
 * in the same run, the same blobs copied with rsync (if installed) between two
 * local directories, as the reference.
 *
 *   deno run -A bench/backup_bench.ts [--messages N] [--keep]
 *
 * Messages are delivered while the account is locked (arrivals, as mail that
 * comes in while nobody is logged in): their index objects do not exist yet,
 * so the figures are for blobs, snapshot and lists.
 */
import { initDataDir, openStore, startHome } from "../home/box.ts";
import { createAccount } from "../home/store/accounts.ts";
import { deliverLocally } from "../home/store/deliver.ts";
import { addBackupPeer, replicateToPeer } from "../home/backup.ts";
import { restoreFromBackup } from "../home/backup_restore.ts";
import { loadConfig } from "../src/config.ts";
import { log as setLog } from "../src/log.ts";
import { formatGrant } from "../sync/backup/format.ts";
import { generateCorpus } from "./corpus.ts";
import { log } from "./report.ts";

const ports = {
  imapPort: 0,
  imapsPort: 0,
  mxPort: null,
  submissionPort: null,
  submissionsPort: null,
  homeHttpPort: 0,
  scryptLogN: 10,
};
const address = "me@hearth.localhost";
const mb = (n: number) => (n / 1e6).toFixed(1);

async function duBytes(dir: string): Promise<number> {
  let n = 0;
  for await (const e of Deno.readDir(dir)) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) n += await duBytes(path);
    else if (e.isFile) n += (await Deno.stat(path)).size;
  }
  return n;
}

async function rsyncSeconds(from: string, to: string): Promise<number | null> {
  const t = performance.now();
  try {
    const out = await new Deno.Command("rsync", { args: ["-a", `${from}/`, `${to}/`] }).output();
    if (!out.success) return null;
  } catch {
    return null;
  }
  // rsync does not fsync by default; a sync makes the comparison fair to Hearth's fsyncs.
  await new Deno.Command("sync").output().catch(() => null);
  return (performance.now() - t) / 1000;
}

/** Runs the benchmark; `args` as on the command line (`deno task bench` passes --backup-*). */
export async function runBackupBench(args: string[]): Promise<void> {
  const flag = (name: string) => {
    const i = args.findIndex((a) => a === name || a === name.replace("--", "--backup-"));
    return i >= 0 ? args[i + 1] : undefined;
  };
  const count = Number(flag("--messages") || 10_000) || 10_000;
  const keep = args.includes("--keep");
  setLog.setLevel("warn");
  const root = await Deno.makeTempDir({ prefix: "hearth-backup-bench-" });
  const [dirA, dirB, dirR] = [`${root}/a`, `${root}/b`, `${root}/restored`];
  try {
    for (const dir of [dirA, dirB]) await initDataDir(await loadConfig(dir, ports));
    const corpus = generateCorpus({ count: count + 50 });
    let recoveryKey = "";
    {
      const { kv, blobs } = await openStore(await loadConfig(dirA, ports));
      recoveryKey = (await createAccount(kv, blobs, address, "bench password 1", 10)).recoveryKey;
      for (const m of corpus.messages.slice(0, count)) await deliverLocally(kv, blobs, address, m);
      kv.close();
    }
    log(`backup bench: ${count} messages delivered to ${dirA}`);
    const boxA = await startHome(await loadConfig(dirA, ports), {
      queue: null,
      backup: { firstDelayMs: 3_600_000 },
    });
    const boxB = await startHome(await loadConfig(dirB, ports), {
      queue: null,
      http: true,
      backup: { firstDelayMs: 3_600_000 },
    });
    try {
      const host = boxB.http!.backupHost;
      const { peer, token } = await host.allow("bench", 1e12);
      const grant = formatGrant({ url: `http://127.0.0.1:${boxB.http!.port}`, peer, token });
      await addBackupPeer(dirA, boxA.kv, grant);
      const deps = { dataDir: dirA, kv: boxA.kv, blobs: boxA.blobs };
      const before = Deno.memoryUsage();
      let rssPeak = before.rss;
      let externalPeak = before.external;
      let heapPeak = before.heapUsed;
      const sample = () => {
        const m = Deno.memoryUsage();
        rssPeak = Math.max(rssPeak, m.rss);
        externalPeak = Math.max(externalPeak, m.external);
        heapPeak = Math.max(heapPeak, m.heapUsed);
      };
      const sampler = setInterval(sample, 20);
      const t0 = performance.now();
      const first = await replicateToPeer(deps, peer, sample).finally(() => clearInterval(sampler));
      const initialS = (performance.now() - t0) / 1000;
      // With --v8-flags=--expose-gc: what is still held once garbage is collected.
      const gc = (globalThis as { gc?: () => void }).gc;
      if (gc) {
        gc();
        await new Promise((r) => setTimeout(r, 300));
        gc();
        log(`after gc: array buffers +${mb(Deno.memoryUsage().external - before.external)} MB`);
      }
      log(
        `initial replication: ${first.objects} objects, ${mb(first.bytes)} MB in ${
          initialS.toFixed(2)
        } s (${mb(first.bytes / initialS)} MB/s), rss +${mb(rssPeak - before.rss)} MB ` +
          `(peaks: array buffers +${mb(externalPeak - before.external)} MB, JS heap +${
            mb(heapPeak - before.heapUsed)
          } MB)`,
      );

      const blobsBefore = await duBytes(`${dirA}/blobs`);
      const usedBefore = (await host.peer(peer))!.usedBytes;
      for (const m of corpus.messages.slice(count)) {
        await deliverLocally(boxA.kv, boxA.blobs, address, m);
      }
      await boxA.registry.close(); // spills staged blobs, so the file sizes count them
      const newSealed = (await duBytes(`${dirA}/blobs`)) - blobsBefore;
      const inc = await replicateToPeer(deps, peer);
      const moved = (await host.peer(peer))!.usedBytes - usedBefore;
      log(
        `incremental after 50 messages: ${inc.objects} objects, ${moved} bytes moved for ${newSealed} ` +
          `bytes of new sealed messages (${(moved / newSealed).toFixed(2)}x; target 1.1x)`,
      );

      const ref = await rsyncSeconds(`${dirA}/blobs`, `${root}/rsync-copy`);
      log(
        ref === null
          ? "rsync: not installed (apt-get install rsync) — no reference time"
          : `rsync -a of the same blobs: ${ref.toFixed(2)} s; Hearth initial replication ${
            (initialS / ref).toFixed(2)
          }x (target 1.5x)`,
      );

      const t1 = performance.now();
      const report = await restoreFromBackup({
        dataDir: dirR,
        grant,
        recoveryKeys: [recoveryKey],
        overrides: ports,
      });
      log(
        `restore: ${report.accounts[0].messages} messages, ${mb(report.accounts[0].bytes)} MB in ${
          ((performance.now() - t1) / 1000).toFixed(2)
        } s`,
      );
    } finally {
      await boxA.close();
      await boxB.close();
    }
  } finally {
    if (keep) log(`kept ${root}`);
    else await Deno.remove(root, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) await runBackupBench(Deno.args);
