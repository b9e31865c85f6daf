/**
 * Friend's-box backup through the edge (docs/backup.md, "Through the edge"):
 * the friend's box B is linked to an edge and serves no HTTP port at all; the
 * home box A is linked to nothing and only reaches that edge. A replicates to B
 * (first run, then one new message), drills every object, and a restore on an
 * empty directory gives the same IMAP view; everything went through the edge's
 * backup relay, whose files hold no plaintext, nor do B's.
 */
import { deepStrictEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import { startEdge } from "../../edge/main.ts";
import { type HomeBox, initDataDir, openStore, startHome } from "../../home/box.ts";
import { createAccount } from "../../home/store/accounts.ts";
import { deliverLocally } from "../../home/store/deliver.ts";
import { linkToEdge } from "../../home/edge_link.ts";
import { addBackupPeer, replicateToPeer } from "../../home/backup.ts";
import { allowRelayPeer } from "../../home/backup_relay.ts";
import { drillPeer } from "../../home/backup_drill.ts";
import { restoreFromBackup } from "../../home/backup_restore.ts";
import { backupHostStore } from "../../home/http.ts";
import { loadConfig } from "../../src/config.ts";
import { log } from "../../src/log.ts";
import { parseGrant } from "../../sync/backup/format.ts";
import { imapView } from "./imap_view.ts";
import { RawImap } from "./raw_imap.ts";
import { scanForPlaintext } from "./plaintext_scan.ts";

const logN = 10;
const password = "correct horse battery staple";
const me = "me@hearth.localhost";
const secretSubject = "Pelican ledger for Wombat";
const secretBody = "the relay passphrase is marzipan-9021";
const secretFolder = "Clandestine Rhubarb";

function secretMessage(n: number): string {
  return [
    "From: Ezra Hidden <ezra.hidden@example.org>",
    `To: ${me}`,
    `Subject: ${secretSubject} ${n}`,
    `Message-ID: <relay-${n}@example.org>`,
    "",
    `${secretBody} (${n})`,
    "",
  ].join("\r\n");
}

const ports = {
  imapPort: 0,
  imapsPort: 0,
  mxPort: null,
  submissionPort: null,
  submissionsPort: null,
  homeHttpPort: 0,
};

async function start(dataDir: string): Promise<HomeBox> {
  return await startHome(await loadConfig(dataDir, { ...ports, scryptLogN: logN }), {
    allowPlaintextAuth: true,
    queue: null,
    // No home HTTP listener on either box: the edge is the only way between them.
    http: false,
    backup: { firstDelayMs: 3_600_000 },
  });
}

Deno.test("friend's box backup through the edge relay: replicate, drill, restore, no plaintext", async () => {
  if (!Deno.env.get("HEARTH_LOG")) log.setLevel("warn");
  const edgeDir = await Deno.makeTempDir({ prefix: "hearth-edge-" });
  const edge = await startEdge({
    dataDir: edgeDir,
    hostname: "edge.localhost",
    listen: "127.0.0.1",
    httpPort: 0,
    smtpPort: null,
  });
  const aDir = await Deno.makeTempDir({ prefix: "hearth-relay-a-" });
  const bDir = await Deno.makeTempDir({ prefix: "hearth-relay-b-" });
  const restoredDir = `${aDir}-restored`;
  const dirs = [edgeDir, aDir, bDir, restoredDir];
  let boxA: HomeBox | null = null;
  let boxB: HomeBox | null = null;
  try {
    // A: one account, not linked to any edge.
    const cfgA = await loadConfig(aDir, { ...ports, scryptLogN: logN });
    await initDataDir(cfgA);
    let store = await openStore(cfgA);
    const { recoveryKey } = await createAccount(store.kv, store.blobs, me, password, logN);
    store.kv.close();
    // B: the friend's box, linked to the edge; it grants A a quota through it.
    const cfgB = await loadConfig(bDir, { ...ports, domain: "friend.localhost", scryptLogN: logN });
    await initDataDir(cfgB);
    store = await openStore(cfgB);
    await linkToEdge(bDir, store.kv, edge.url, await edge.store.createPairing("friend.localhost"));
    const { peer, grant } = await allowRelayPeer(
      bDir,
      store.kv,
      backupHostStore(bDir, store.kv),
      "alice",
      50_000_000,
    );
    store.kv.close();
    assert(parseGrant(grant).url.startsWith("relay+http://127.0.0.1:"), grant);

    boxB = await start(bDir);
    boxA = await start(aDir);
    for (let i = 0; i < 6; i++) {
      await deliverLocally(boxA.kv, boxA.blobs, me, new TextEncoder().encode(secretMessage(i)));
    }
    const c = await RawImap.connect(boxA.imap.port!);
    await c.ok(`LOGIN ${me} "${password}"`);
    await c.ok(`CREATE "${secretFolder}"`);
    await c.ok("SELECT INBOX");
    await c.ok(`UID COPY 2:3 "${secretFolder}"`);
    await c.ok("UID STORE 1 +FLAGS (\\Flagged $Relay)");
    await c.ok("UID STORE 4 +FLAGS (\\Deleted)");
    await c.ok("EXPUNGE");
    await c.ok("LOGOUT").catch(() => {});
    c.close();

    // Replication: first contact, a full run, then one new message moves four objects.
    await addBackupPeer(aDir, boxA.kv, grant);
    const deps = { dataDir: aDir, kv: boxA.kv, blobs: boxA.blobs };
    const first = await replicateToPeer(deps, peer);
    assertEquals([first.seq, first.accounts, first.newManifest], [1, 1, true]);
    await deliverLocally(boxA.kv, boxA.blobs, me, new TextEncoder().encode(secretMessage(9)));
    const second = await replicateToPeer(deps, peer);
    assertEquals([second.seq, second.newManifest], [2, true]);
    assert(second.objects <= 5, `incremental objects: ${second.objects}`);
    const hostPeer = (await backupHostStore(bDir, boxB.kv).peers()).find((p) => p.id === peer)!;
    assertEquals(hostPeer.latestSeq, 2);

    // A drill of every object, through the relay.
    const drill = await drillPeer({ ...deps, random: () => 0.5 }, peer, { all: true });
    assert(drill.ok && drill.checked >= 10, JSON.stringify(drill));
    const view = await imapView(boxA.imap.port!, me, password);
    assertEquals(view[secretFolder]?.messages.length, 2);

    // The home box is lost: a restore from the grant, through the relay, on an empty directory.
    await boxA.close();
    boxA = null;
    const report = await restoreFromBackup({
      dataDir: restoredDir,
      grant,
      recoveryKeys: [recoveryKey],
      minSeq: 2,
      overrides: ports,
    });
    assertEquals([report.seq, report.accounts.length, report.accounts[0].messages], [2, 1, 6]);
    const boxC = await start(restoredDir);
    try {
      assertEquals(await imapView(boxC.imap.port!, me, password), view);
    } finally {
      await boxC.close();
    }
    // The URL alone cannot claim the relay slot: a restore through it needs the grant.
    await rejects(
      restoreFromBackup({
        dataDir: `${restoredDir}-url`,
        grant: parseGrant(grant).url,
        recoveryKeys: [recoveryKey],
      }),
      /needs the grant|restored with the grant/,
    );

    // Neither the edge nor the friend's box holds anything readable.
    await boxB.close();
    boxB = null;
    await edge.close();
    const needles = [
      secretSubject,
      secretBody,
      secretFolder,
      me,
      "ezra.hidden@example.org",
      "Ezra Hidden",
    ];
    for (const dir of [edgeDir, bDir]) {
      const scan = await scanForPlaintext(dir, needles);
      assert(scan.files.length > 0, `no files scanned in ${dir}`);
      assertEquals(scan.found, [], `plaintext in ${dir}`);
    }
  } finally {
    await boxA?.close();
    await boxB?.close();
    await edge.close().catch(() => {});
    for (const d of dirs) await Deno.remove(d, { recursive: true }).catch(() => {});
  }
});
