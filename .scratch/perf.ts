import { loadConfig } from "../src/config.ts";
import { initDataDir, startHome } from "../home/box.ts";
import { createAccount } from "../home/store/accounts.ts";
import { generateCorpus } from "../bench/corpus.ts";
const dir = await Deno.makeTempDir();
const config = await loadConfig(dir, { imapPort: 0, imapsPort: 0, scryptLogN: 10 });
await initDataDir(config);
const box = await startHome(config, { allowPlaintextAuth: true });
await createAccount(box.kv, box.blobs, "me@x.localhost", "password123", 10);
const r = await box.registry.login("me@x.localhost", "password123", "1");
if (!("store" in r)) throw 1;
const store = r.store;
const N = Number(Deno.args[0] ?? 2000);
const msgs = generateCorpus({ count: N, seed: 1 }).messages;
const inbox = store.state.byName("INBOX")!;
let t = performance.now();
const { AccountStore } = await import("../home/store/account_store.ts");
await Promise.all(msgs.map(async (m: Uint8Array) => {
  const p = await store.prepareMessage(m);
  await store.mutate((tx) => tx.push({ op: "add", mb: inbox.id, msg: AccountStore.newRecord(inbox.rec.uidNext, p, [], Date.now(), tx.nextModSeq()) }));
}));
console.log("load", performance.now() - t);
// time message() for 200
const blobs = inbox.uids.slice(0, 200).map((u) => inbox.byUid.get(u)!.blob);
for (let k = 0; k < 3; k++) {
  t = performance.now();
  for (const b of blobs) await store.message(b);
  console.log("message x200", performance.now() - t);
}
const { fetchSection } = await import("../src/mime/mod.ts");
const raws = await Promise.all(blobs.map((b) => store.message(b)));
t = performance.now();
for (const raw of raws) fetchSection(raw, { part: [] });
console.log("fetchSection x200", performance.now() - t);
t = performance.now();
for (const u of inbox.uids) await store.info(inbox.byUid.get(u)!.blob);
console.log("info all", performance.now() - t);
const { ImapClient } = await import("../bench/imap_client.ts");
const c = await ImapClient.connect({ host: "127.0.0.1", port: box.imap.port! });
await c.login("me@x.localhost", "password123");
await c.command("SELECT INBOX");
const set = inbox.uids.slice(0, 200).join(",");
for (let k = 0; k < 4; k++) {
  t = performance.now();
  await c.command(`UID FETCH ${set} (BODY.PEEK[])`);
  console.log("imap fetch 200", performance.now() - t);
}
for (let k = 0; k < 3; k++) {
  t = performance.now();
  await c.command(`FETCH 1:* (UID FLAGS)`);
  console.log("imap uid flags all", performance.now() - t);
}
for (let k = 0; k < 3; k++) {
  t = performance.now();
  await c.command(`FETCH 1:* (ENVELOPE)`);
  console.log("imap envelope all", performance.now() - t);
}
for (let k = 0; k < 3; k++) {
  t = performance.now();
  await c.command(`FETCH 1:* (BODYSTRUCTURE)`);
  console.log("imap bodystructure all", performance.now() - t);
}
await box.close();
