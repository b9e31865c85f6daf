/**
 * Friend's-box backup end to end (docs/backup.md): home box A replicates to
 * box B over B's home HTTP port; B's files hold no plaintext; a restore into
 * an empty directory gives the same IMAP view (UIDVALIDITY, UIDs, flags,
 * bodies); a compromised home cannot delete, overwrite or rush a prune; a
 * rolled-back or damaged backup is refused; another peer cannot read A's.
 */
import { deepStrictEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import { type HomeBox, initDataDir, openStore, startHome } from "../../home/box.ts";
import { createAccount } from "../../home/store/accounts.ts";
import { deliverLocally } from "../../home/store/deliver.ts";
import { loadConfig } from "../../src/config.ts";
import { fileExists as exists } from "../../src/tls.ts";
import { log } from "../../src/log.ts";
import { generateSigningKey } from "../../src/crypto/device.ts";
import { addBackupPeer, backupPeers, replicateToPeer } from "../../home/backup.ts";
import { restoreFromBackup } from "../../home/backup_restore.ts";
import { drillPeer, lastDrill } from "../../home/backup_drill.ts";
import { homeSigningKey } from "../../home/edge_link.ts";
import { BackupClient, BackupHostError } from "../../sync/backup/client.ts";
import {
  decodeBlobList,
  decodeCatalog,
  formatGrant,
  type Manifest,
  objectIdOf,
} from "../../sync/backup/format.ts";
import { BackupHostStore } from "../../sync/backup/host_store.ts";
import { ObjectFiles } from "../../sync/backup/object_files.ts";
import { FriendTamper } from "./backup_tamper.ts";
import { fixtureMessages } from "./messages.ts";
import { imapView } from "./imap_view.ts";
import { RawImap } from "./raw_imap.ts";
import { scanForPlaintext } from "./plaintext_scan.ts";

const logN = 10;
const password = "correct horse battery staple";
const other = "other@hearth.localhost";
const secretSubject = "Zebra-crossing plans for Quokka";
const secretBody = "the vault code is xylophone-4471";
const secretFolder = "Quarantined Marmalade";

function secretMessage(n: number): string {
  return [
    "From: Dora Secret <dora.secret@example.org>",
    "To: me@hearth.localhost",
    `Subject: ${secretSubject} ${n}`,
    `Message-ID: <secret-${n}@example.org>`,
    "",
    `${secretBody} (${n})`,
    "",
  ].join("\r\n");
}

async function config(dataDir: string) {
  return await loadConfig(dataDir, {
    imapPort: 0,
    imapsPort: 0,
    mxPort: null,
    submissionPort: null,
    submissionsPort: null,
    homeHttpPort: 0,
    scryptLogN: logN,
  });
}

async function makeBox(accounts: string[]) {
  const dataDir = await Deno.makeTempDir({ prefix: "hearth-backup-" });
  const cfg = await config(dataDir);
  await initDataDir(cfg);
  const { kv, blobs } = await openStore(cfg);
  const keys: string[] = [];
  try {
    for (const a of accounts) {
      keys.push((await createAccount(kv, blobs, a, password, logN)).recoveryKey);
    }
  } finally {
    kv.close();
  }
  return { dataDir, cfg, keys };
}

async function start(dataDir: string, http = false): Promise<HomeBox> {
  return await startHome(await config(dataDir), {
    allowPlaintextAuth: true,
    queue: null,
    http,
    backup: { firstDelayMs: 3_600_000 },
  });
}

/** The messages an account's catalog names, across its blob list buckets. */
async function blobEntries(client: BackupClient, catalogId: string) {
  const out = [];
  for (const b of decodeCatalog(await client.getObject(catalogId)).buckets) {
    out.push(...decodeBlobList(await client.getObject(b.id)));
  }
  return out;
}

Deno.test("friend's box backup: replicate, scan, restore, and refuse a compromised home", async () => {
  if (!Deno.env.get("HEARTH_LOG")) log.setLevel("warn");
  const a = await makeBox(["me@hearth.localhost", other]);
  const b = await makeBox([]);
  const dirs = [a.dataDir, b.dataDir];
  let boxA: HomeBox | null = await start(a.dataDir);
  const boxB = await start(b.dataDir, true);
  try {
    // Mail, a folder, flags, an expunge (a UID gap) on A.
    for (const m of fixtureMessages) {
      await deliverLocally(boxA.kv, boxA.blobs, "me@hearth.localhost", new TextEncoder().encode(m));
    }
    for (let i = 0; i < 4; i++) {
      await deliverLocally(
        boxA.kv,
        boxA.blobs,
        "me@hearth.localhost",
        new TextEncoder().encode(secretMessage(i)),
      );
    }
    await deliverLocally(boxA.kv, boxA.blobs, other, new TextEncoder().encode(secretMessage(99)));
    const c = await RawImap.connect(boxA.imap.port!);
    await c.ok(`LOGIN me@hearth.localhost "${password}"`);
    await c.ok(`CREATE "${secretFolder}"`);
    await c.ok("SELECT INBOX");
    await c.ok(`UID COPY 4:6 "${secretFolder}"`);
    await c.ok("UID STORE 1 +FLAGS (\\Flagged $Label1)");
    await c.ok("UID STORE 2 +FLAGS (\\Seen \\Answered)");
    await c.ok("UID STORE 3 +FLAGS (\\Deleted)");
    await c.ok("EXPUNGE");
    await c.ok("LOGOUT").catch(() => {});
    c.close();
    const before = await imapView(boxA.imap.port!, "me@hearth.localhost", password);
    assert(before[secretFolder]?.messages.length === 3, JSON.stringify(before));

    // B grants A a quota; A pins its key with the grant and replicates.
    const host = boxB.http!.backupHost;
    const { peer, token } = await host.allow("alice", 50_000_000);
    const url = `http://127.0.0.1:${boxB.http!.port}`;
    const grant = formatGrant({ url, peer, token });
    await addBackupPeer(a.dataDir, boxA.kv, grant);
    const deps = { dataDir: a.dataDir, kv: boxA.kv, blobs: boxA.blobs };
    const progress: number[] = [];
    const first = await replicateToPeer(deps, peer, (p) => progress.push(p.objects));
    assertEquals([first.seq, first.accounts, first.newManifest], [1, 2, true]);
    // The blobs of both accounts, and per account a snapshot, a wrapped identity and a blob list.
    assert(first.objects >= 7 + 6, `objects sent: ${first.objects}`);
    assertEquals(progress.at(-1), first.objects);
    // Incremental: nothing changed, nothing moves; one new message moves one blob and a snapshot.
    const again = await replicateToPeer(deps, peer);
    assertEquals([again.objects, again.newManifest, again.seq], [0, false, 1]);
    await deliverLocally(
      boxA.kv,
      boxA.blobs,
      "me@hearth.localhost",
      new TextEncoder().encode(secretMessage(7)),
    );
    const third = await replicateToPeer(deps, peer);
    // The blob, its index object (an arrival record: the account is locked), the one blob list
    // bucket it falls in, and the catalog; the state units and the root are unchanged.
    assertEquals([third.seq, third.newManifest, third.objects], [2, true, 4]);
    // The running box's loop replicates on its own (kicked here instead of waiting 5 minutes).
    await deliverLocally(
      boxA.kv,
      boxA.blobs,
      "me@hearth.localhost",
      new TextEncoder().encode(secretMessage(8)),
    );
    boxA.backup.kick();
    for (let i = 0; i < 100 && (await backupPeers(boxA.kv))[0].seq < 3; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    await boxA.backup.idle();
    const seen = (await backupPeers(boxA.kv))[0].seq;
    assertEquals(seen, 3);
    const after = await imapView(boxA.imap.port!, "me@hearth.localhost", password);

    // The friend's box holds no plaintext: no subject, body, address or folder name.
    const scan = await scanForPlaintext(b.dataDir, [
      secretSubject,
      secretBody,
      secretFolder,
      "me@hearth.localhost",
      other,
      "dora.secret@example.org",
      "Lunch on Friday",
      "quayside bistro",
    ]);
    assert(scan.files.some((f) => f.includes("/backup/")), "objects are files under DATA/backup");
    assertEquals(scan.found, []);

    // A compromised home (it has A's key) cannot delete, overwrite or rush a prune.
    const key = await homeSigningKey(a.dataDir);
    const evil = new BackupClient(url, peer, key);
    const man = JSON.parse((await evil.manifest(seen)).body) as Manifest;
    const victim = man.accounts[0].snapshot.id;
    const original = await evil.getObject(victim);
    await rejects(evil.deleteObject(victim), (e: BackupHostError) => e.status === 405);
    await rejects(
      evil.putObject(victim, new TextEncoder().encode("garbage")),
      (e: BackupHostError) => e.status === 400,
    );
    assertEquals(await evil.putObject(victim, original), false); // same bytes: already stored, untouched
    const usedBefore = (await host.peer(peer))!.usedBytes;
    const prune = await evil.prune(3);
    assert(prune.effectiveAt > Date.now() + 29 * 86_400_000, "prune waits for the grace period");
    assertEquals(await host.applyDuePrunes(), { manifests: 0, objects: 0, bytes: 0 });
    assertEquals((await host.manifests(peer)).map((m) => m.seq), [1, 2, 3]);
    assertEquals((await host.peer(peer))!.usedBytes, usedBefore);
    // An old manifest number is refused; so is a manifest naming objects the host lacks.
    await rejects(
      evil.putManifest({
        body: (await evil.manifest(1)).body,
        signature: (await evil.manifest(1)).signature,
      }),
      (e: BackupHostError) => e.status === 409,
    );

    // Another peer, or a stranger's key, cannot read A's objects.
    const grant2 = await host.allow("mallory", 1_000_000);
    const malloryKey = await generateSigningKey();
    await new BackupClient(url, grant2.peer, malloryKey).hello(grant2.token);
    await rejects(
      new BackupClient(url, peer, malloryKey).getObject(victim),
      (e: BackupHostError) => e.status === 401,
    );
    await rejects(
      new BackupClient(url, peer, malloryKey, { keyId: grant2.peer }).getObject(victim),
      (e: BackupHostError) => e.status === 401,
    );
    await rejects(
      new BackupClient(url, grant2.peer, malloryKey).getObject(victim),
      (e: BackupHostError) => e.status === 404,
    );
    // A prune not signed by the owner's key is refused; the quota holds.
    await rejects(
      new BackupClient(url, peer, malloryKey).prune(1),
      (e: BackupHostError) => e.status === 401,
    );
    const big = crypto.getRandomValues(new Uint8Array(60_000));
    const bigger = new Uint8Array(1_100_000);
    for (let i = 0; i < bigger.length; i += big.length) {
      bigger.set(big.subarray(0, Math.min(big.length, bigger.length - i)), i);
    }
    await rejects(
      new BackupClient(url, grant2.peer, malloryKey).putObject(objectIdOf(bigger), bigger),
      (e: BackupHostError) => e.status === 507,
    );
    // The grant's token is pinned: a second key cannot take it over.
    await rejects(
      new BackupClient(url, peer, malloryKey).hello(token),
      (e: BackupHostError) => e.status === 403,
    );

    // A restore drill verifies a sample; a damaged object fails it, named, and every account
    // finds a message about it in its INBOX (an arrival: the accounts are locked).
    const drillDeps = { ...deps, random: () => 0.5 };
    const drill = await drillPeer(drillDeps, peer, { sample: 1000 });
    assert(drill.ok && drill.checked >= 10, JSON.stringify(drill));
    const someBlob = (await blobEntries(evil, man.accounts[0].blobs.id))[0].id;
    const friend = new FriendTamper(boxB.kv, `${b.dataDir}/backup`, peer);
    await friend.truncate(someBlob);
    const arrivalsBefore = (await Array.fromAsync(boxA.kv.list({ prefix: ["arrival"] }))).length;
    const failedDrill = await drillPeer(drillDeps, peer, { all: true });
    assert(!failedDrill.ok && failedDrill.error!.includes(someBlob), JSON.stringify(failedDrill));
    assertEquals((await lastDrill(boxA.kv, peer))?.ok, false);
    const arrivalsAfter = (await Array.fromAsync(boxA.kv.list({ prefix: ["arrival"] }))).length;
    assertEquals(arrivalsAfter - arrivalsBefore, 2);
    await friend.undo();

    // The home box is lost. Restore into an empty directory with the recovery key.
    await boxA.close();
    boxA = null;
    const restoredDir = await Deno.makeTempDir({ prefix: "hearth-restored-" });
    dirs.push(restoredDir);
    await Deno.remove(restoredDir);
    const report = await restoreFromBackup({
      dataDir: restoredDir,
      grant,
      recoveryKeys: [a.keys[0]],
      minSeq: seen,
      overrides: {
        imapPort: 0,
        imapsPort: 0,
        mxPort: null,
        submissionPort: null,
        submissionsPort: null,
        homeHttpPort: 0,
      },
    });
    assertEquals(report.seq, 3);
    assertEquals(report.manifestsVerified, 3);
    assertEquals(report.accounts.length, 1);
    assertEquals(report.skipped.length, 1);
    const boxC = await start(restoredDir);
    try {
      assertEquals(await imapView(boxC.imap.port!, "me@hearth.localhost", password), after);
    } finally {
      await boxC.close();
    }
    assert(
      after.INBOX.messages.length === 8 && before.INBOX.uidValidity === after.INBOX.uidValidity,
    );

    // The password alone restores both accounts (through the wrapped identities).
    const byPassword = `${restoredDir}-pw`;
    dirs.push(byPassword);
    const r2 = await restoreFromBackup({ dataDir: byPassword, grant, password, minSeq: seen });
    assertEquals([r2.accounts.length, r2.skipped.length], [2, 0]);
    await rejects(
      restoreFromBackup({ dataDir: `${restoredDir}-x`, grant, password: "wrong password!!" }),
      /none of the given recovery keys or the password/,
    );

    // The URL alone, with the recovery key: the key's recipient finds the backup. The target
    // directory already holds the key file; the box is moved in beside it.
    const byUrl = `${restoredDir}-url`;
    dirs.push(byUrl);
    await Deno.mkdir(byUrl);
    await Deno.writeTextFile(`${byUrl}/recovery.txt`, a.keys[0]);
    const r4 = await restoreFromBackup({
      dataDir: byUrl,
      grant: url,
      recoveryKeys: [a.keys[0]],
      minSeq: seen,
      overrides: { imapPort: 0, imapsPort: 0, mxPort: null, submissionPort: null, homeHttpPort: 0 },
    });
    assertEquals([r4.seq, r4.accounts.length, r4.accounts[0].messages], [3, 1, 8]);
    assert(await exists(`${byUrl}/recovery.txt`) && await exists(`${byUrl}/config.json`));
    const boxU = await start(byUrl);
    try {
      assertEquals(await imapView(boxU.imap.port!, "me@hearth.localhost", password), after);
    } finally {
      await boxU.close();
    }
    // The URL and a peer id work too; a key no backup here belongs to is told so; the URL with
    // only a password is refused (it needs the grant: no one may guess passwords without it).
    const r5 = await restoreFromBackup({
      dataDir: `${restoredDir}-url2`,
      grant: `${url}#${peer}`,
      recoveryKeys: [a.keys[1]],
    });
    dirs.push(`${restoredDir}-url2`);
    assertEquals([r5.accounts.length, r5.skipped.length], [1, 1]);
    const stranger = await makeBox(["x@hearth.localhost"]);
    dirs.push(stranger.dataDir);
    await rejects(
      restoreFromBackup({ dataDir: `${restoredDir}-y`, grant: url, recoveryKeys: stranger.keys }),
      /keeps no backup of an account with that recovery key/,
    );
    await rejects(
      restoreFromBackup({ dataDir: `${restoredDir}-y`, grant: url, password }),
      /needs the grant/,
    );
    assertEquals(await exists(`${restoredDir}-y`), false);

    // Tampering on the friend's side is detected and named, by a restore and by a drill that
    // checks everything: a flipped byte, a truncation, two objects swapped, an object dropped,
    // an old manifest served (as the newest, or as the newest's number).
    const listed = await blobEntries(
      evil,
      man.accounts.find((x) => x.messages > 1)!.blobs.id,
    );
    // Two messages of one pack file (the swap exchanges their places in it). Messages from
    // later runs sit in packs of their own: look for a pack that holds two.
    const byPack = new Map<string, string[]>();
    for (const x of listed) {
      const pack = (await friend.locate(x.id)).pack;
      byPack.set(pack, [...(byPack.get(pack) ?? []), x.id]);
    }
    const [o1, o2] = [...byPack.values()].find((ids) => ids.length > 1)!;
    const homeA = await openStore(a.cfg);
    const drillA = { dataDir: a.dataDir, kv: homeA.kv, blobs: homeA.blobs };
    const peerEntry = await boxB.kv.get<{ latestSeq: number }>(["bk-host", "peer", peer]);
    const man3 = await boxB.kv.get<{ body: string }>(["bk-host", "man", peer, 3]);
    const man2 = await boxB.kv.get(["bk-host", "man", peer, 2]);
    const oldManifest = /rolled-back|a rollback|an old manifest|says it is number 2/;
    const tampers: [string, () => Promise<void>, RegExp, string][] = [
      ["flip", () => friend.flip(o1), /is damaged on the backup host/, o1],
      ["truncate", () => friend.truncate(o1), /is damaged on the backup host/, o1],
      ["swap", () => friend.swap(o1, o2), /is damaged on the backup host/, o1],
      ["drop", () => friend.drop(o1), /could not be fetched: .*is not held here/, o1],
      [
        "old manifest",
        async () => {
          // The host forgets version 3 and shows version 2 as its newest.
          await boxB.kv.atomic().delete(man3.key)
            .set(peerEntry.key, { ...peerEntry.value!, latestSeq: 2 }).commit();
        },
        oldManifest,
        "manifest",
      ],
      [
        "old manifest as the newest",
        async () => {
          // The host serves version 2's signed body under version 3's number.
          await boxB.kv.set(man3.key, { ...man3.value!, ...(man2.value as object), seq: 3 });
        },
        oldManifest,
        "manifest",
      ],
    ];
    try {
      for (const [name, tamper, expected, named] of tampers) {
        await tamper();
        const dir = `${restoredDir}-${name.replaceAll(" ", "-")}`;
        dirs.push(dir);
        await rejects(
          restoreFromBackup({ dataDir: dir, grant, recoveryKeys: [a.keys[0]], minSeq: seen }),
          (e: Error) => expected.test(e.message) && e.message.includes(named),
          `restore: ${name}`,
        );
        // A failed restore leaves nothing behind: no data directory, no temporary one.
        assertEquals(await exists(dir), false, `restore: ${name} left ${dir}`);
        const parent = dir.slice(0, dir.lastIndexOf("/"));
        const base = dir.slice(dir.lastIndexOf("/") + 1);
        for await (const e of Deno.readDir(parent)) {
          assert(!e.name.startsWith(`.${base}.`), `restore: ${name} left ${e.name}`);
        }
        const r = await drillPeer(drillA, peer, { all: true });
        assert(
          !r.ok && expected.test(r.error!) && r.error!.includes(named),
          `drill: ${name}: ${JSON.stringify(r)}`,
        );
        await friend.undo();
        await boxB.kv.atomic().set(man3.key, man3.value).set(peerEntry.key, peerEntry.value)
          .commit();
      }
      // Put back as it was, a full drill passes again.
      const clean = await drillPeer(drillA, peer, { all: true });
      assert(clean.ok, JSON.stringify(clean));
    } finally {
      homeA.kv.close();
    }

    // After the grace period the prune takes effect: old versions and what only they named go,
    // and the newest version still restores.
    const files = new ObjectFiles(`${b.dataDir}/backup`);
    const later = new BackupHostStore(boxB.kv, files, { now: () => Date.now() + 31 * 86_400_000 });
    const pruned = await later.applyDuePrunes();
    assertEquals(pruned.manifests, 2);
    assert(pruned.objects >= 2, `pruned ${pruned.objects} objects`); // the old snapshot and list
    assertEquals((await host.manifests(peer)).map((m) => m.seq), [3]);
    dirs.push(`${restoredDir}-p`);
    const r3 = await restoreFromBackup({
      dataDir: `${restoredDir}-p`,
      grant,
      recoveryKeys: [a.keys[0]],
    });
    assertEquals([r3.seq, r3.accounts[0].messages], [3, 8]);
  } finally {
    await boxA?.close();
    await boxB.close();
    for (const d of dirs) await Deno.remove(d, { recursive: true }).catch(() => {});
  }
});
