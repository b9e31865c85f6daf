/**
 * The friend's box of the backup benchmark, in a process of its own as it is
 * on another machine in use: a home box serving the backup host on a loopback
 * port, with one peer slot. Prints the grant as one JSON line on stdout and
 * runs until its stdin closes.
 *
 *   deno run -A bench/backup_friend.ts DATA_DIR
 */
import { initDataDir, startHome } from "../home/box.ts";
import { loadConfig } from "../src/config.ts";
import { log as setLog } from "../src/log.ts";
import { formatGrant } from "../sync/backup/format.ts";
import { benchPorts } from "./backup_bench.ts";

setLog.setLevel("warn");
const dir = Deno.args[0];
if (!dir) {
  console.error("usage: deno run -A bench/backup_friend.ts DATA_DIR");
  Deno.exit(2);
}
await initDataDir(await loadConfig(dir, benchPorts));
const box = await startHome(await loadConfig(dir, benchPorts), {
  queue: null,
  http: true,
  backup: { firstDelayMs: 3_600_000 },
});
const { peer, token } = await box.http!.backupHost.allow("bench", 1e12);
const url = `http://127.0.0.1:${box.http!.port}`;
console.log(JSON.stringify({ grant: formatGrant({ url, peer, token }), peer }));
// Until the benchmark closes our stdin (or goes away).
for await (const _ of Deno.stdin.readable) { /* nothing is sent */ }
await box.close();
