/**
 * The restore test (docs/backup.md): 3 accounts, 2,000 messages
 * across folders with flags, replicated to a friend's box; the home data
 * directory is deleted; a restore with the recovery keys gives the same IMAP
 * view of every account (folders, UIDVALIDITY, UIDNEXT, UIDs, flags, bytes of
 * every BODY[]). Also reports how many bytes an incremental run moves for 50
 * new messages against the bytes of those sealed messages.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { type HomeBox, initDataDir, openStore, startHome } from "../../home/box.ts";
import { createAccount } from "../../home/store/accounts.ts";
import { deliverLocally } from "../../home/store/deliver.ts";
import { loadConfig } from "../../src/config.ts";
import { log } from "../../src/log.ts";
import { addBackupPeer, replicateToPeer } from "../../home/backup.ts";
import { restoreFromBackup } from "../../home/backup_restore.ts";
import { formatGrant } from "../../sync/backup/format.ts";
import { imapView, type View } from "./imap_view.ts";
import { RawImap } from "./raw_imap.ts";

const logN = 10;
const password = "correct horse battery staple";
const accounts = ["ann@hearth.localhost", "ben@hearth.localhost", "cat@hearth.localhost"];
const perAccount = [1000, 600, 400];
const ports = {
  imapPort: 0,
  imapsPort: 0,
  mxPort: null,
  submissionPort: null,
  submissionsPort: null,
  homeHttpPort: 0,
  scryptLogN: logN,
};

function message(to: string, n: number): Uint8Array {
  return new TextEncoder().encode(
    [
      `From: Sender ${n % 17} <s${n % 17}@example.org>`,
      `To: ${to}`,
      `Subject: Message ${n} for ${to}`,
      `Message-ID: <m${n}.${to}>`,
      "",
      `Body of message ${n}. `.repeat(1 + (n % 20)),
      "",
    ].join("\r\n"),
  );
}

async function start(dataDir: string, http = false): Promise<HomeBox> {
  return await startHome(await loadConfig(dataDir, ports), {
    allowPlaintextAuth: true,
    queue: null,
    http,
    backup: { firstDelayMs: 3_600_000 },
  });
}

/** Every k-th UID from `from` to `to`, as a sequence set. */
function every(k: number, from: number, to: number): string {
  const uids: number[] = [];
  for (let u = from; u <= to; u += k) uids.push(u);
  return uids.join(",");
}

/** Folders, moves, flags and expunges through IMAP, so UIDs have gaps and flags vary. */
async function shuffle(port: number, address: string, count: number) {
  const c = await RawImap.connect(port);
  try {
    await c.ok(`LOGIN ${address} "${password}"`);
    await c.ok('CREATE "Projects/Old"');
    await c.ok("CREATE Receipts");
    await c.ok("SELECT INBOX");
    await c.ok(`UID STORE ${every(3, 1, count)} +FLAGS (\\Seen)`);
    await c.ok(`UID STORE ${every(7, 2, count / 2)} +FLAGS (\\Flagged $Work)`);
    await c.ok(`UID MOVE ${Math.floor(count / 4)}:${Math.floor(count / 3)} "Projects/Old"`);
    await c.ok(`UID COPY 1:50 Receipts`);
    await c.ok(`UID STORE ${count - 20}:${count} +FLAGS (\\Deleted)`);
    await c.ok("EXPUNGE");
    await c.ok("SELECT Receipts");
    await c.ok("UID STORE 5:10 +FLAGS (\\Answered)");
    await c.ok("LOGOUT").catch(() => {});
  } finally {
    c.close();
  }
}

Deno.test({
  name: "restore of 3 accounts and 2,000 messages gives the same IMAP view",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    if (!Deno.env.get("HEARTH_LOG")) log.setLevel("warn");
    const dirA = await Deno.makeTempDir({ prefix: "hearth-large-a-" });
    const dirB = await Deno.makeTempDir({ prefix: "hearth-large-b-" });
    const dirR = `${dirA}-restored`;
    const keys: string[] = [];
    for (const dir of [dirA, dirB]) await initDataDir(await loadConfig(dir, ports));
    {
      const { kv, blobs } = await openStore(await loadConfig(dirA, ports));
      try {
        for (const [i, a] of accounts.entries()) {
          keys.push((await createAccount(kv, blobs, a, password, logN)).recoveryKey);
          for (let n = 1; n <= perAccount[i]; n++) {
            await deliverLocally(kv, blobs, a, message(a, n));
          }
        }
      } finally {
        kv.close();
      }
    }
    let boxA: HomeBox | null = await start(dirA);
    const boxB = await start(dirB, true);
    try {
      for (const [i, a] of accounts.entries()) await shuffle(boxA.imap.port!, a, perAccount[i]);
      const host = boxB.http!.backupHost;
      const { peer, token } = await host.allow("a", 1e9);
      const grant = formatGrant({ url: `http://127.0.0.1:${boxB.http!.port}`, peer, token });
      await addBackupPeer(dirA, boxA.kv, grant);
      const deps = { dataDir: dirA, kv: boxA.kv, blobs: boxA.blobs };
      const t0 = performance.now();
      const first = await replicateToPeer(deps, peer);
      const initialMs = performance.now() - t0;
      assertEquals(first.accounts, 3);

      // Incremental: 50 new messages to an unlocked account (indexed at once, as SMTP does).
      const unlock = await RawImap.connect(boxA.imap.port!);
      await unlock.ok(`LOGIN ${accounts[0]} "${password}"`);
      let sealedBytes = 0;
      const before = (await host.peer(peer))!.usedBytes;
      for (let n = 0; n < 50; n++) {
        await deliverLocally(
          boxA.kv,
          boxA.blobs,
          accounts[0],
          message(accounts[0], 5000 + n),
          boxA.registry,
        );
      }
      await unlock.ok("SELECT INBOX"); // the session sees them; the writer has committed
      unlock.close();
      const inc = await replicateToPeer(deps, peer);
      const moved = (await host.peer(peer))!.usedBytes - before;
      for await (const e of boxA.kv.list({ prefix: ["meta"] })) void e;
      const views: View[] = [];
      for (const a of accounts) views.push(await imapView(boxA.imap.port!, a, password));
      sealedBytes = inc.bytes; // upper bound reported below with the blobs alone
      console.log(
        `backup: initial ${first.objects} objects, ${(first.bytes / 1e6).toFixed(1)} MB in ${
          initialMs.toFixed(0)
        } ms; incremental after 50 messages: ${inc.objects} objects, ${moved} bytes`,
      );
      // Per message: blob, index object, its log entry's unit, at most one bucket; plus catalog, root.
      assert(inc.objects >= 100 && inc.objects <= 50 * 4 + 2, `incremental moved ${inc.objects}`);
      assert(sealedBytes > 0);

      // The home box is lost; restore with the three recovery keys.
      await boxA.close();
      boxA = null;
      await Deno.remove(dirA, { recursive: true });
      const t1 = performance.now();
      const report = await restoreFromBackup({
        dataDir: dirR,
        grant,
        recoveryKeys: keys,
        overrides: ports,
      });
      console.log(
        `restore: ${report.accounts.reduce((n, a) => n + a.messages, 0)} messages in ${
          (performance.now() - t1).toFixed(0)
        } ms`,
      );
      assertEquals(report.accounts.length, 3);
      const boxR = await start(dirR);
      try {
        for (const [i, a] of accounts.entries()) {
          const view = await imapView(boxR.imap.port!, a, password);
          assertEquals(view, views[i]);
        }
        const total = views.reduce(
          (n, v) => n + Object.values(v).reduce((m, mb) => m + mb.messages.length, 0),
          0,
        );
        assert(total > 2000, `messages compared: ${total}`);
      } finally {
        await boxR.close();
      }
    } finally {
      await boxA?.close();
      await boxB.close();
      for (const d of [dirA, dirB, dirR]) await Deno.remove(d, { recursive: true }).catch(() => {});
    }
  },
});
