import {
  deepStrictEqual as assertEquals,
  ok as assert,
  rejects as assertRejects,
} from "node:assert/strict";
import { AccountStore, type ChangeEvent, type Tx } from "../../../home/store/account_store.ts";
import { newMailboxRecord } from "../../../home/store/accounts.ts";
import { deliverLocally } from "../../../home/store/deliver.ts";
import { ProtocolError } from "../../../src/errors.ts";
import { faultyKv, type Fixture, logEntries, message, summary, withFixture } from "./fixture.ts";

/** Appends prepared messages to a mailbox the way APPEND does. */
function addTo(name: string, prepared: { blob: string; size: number }, flags: string[] = []) {
  return (tx: Tx) => {
    const mb = tx.state.byName(name)!;
    const uid = mb.rec.uidNext;
    tx.push({
      op: "add",
      mb: mb.id,
      msg: AccountStore.newRecord(uid, prepared, flags, Date.now(), tx.nextModSeq()),
    });
    return uid;
  };
}

function setFlags(name: string, uid: number, flags: string[]) {
  return (tx: Tx) => {
    const mb = tx.state.byName(name)!;
    tx.push({ op: "flags", mb: mb.id, changes: [[uid, tx.nextModSeq(), flags]] });
  };
}

Deno.test("a new account has the default mailboxes with SPECIAL-USE", () =>
  withFixture(async (f) => {
    const store = await f.open();
    const names = [...store.state.mailboxes.values()].map((m) => [m.name, m.rec.specialUse]);
    assertEquals(names.sort(), [
      ["Archive", "\\Archive"],
      ["Drafts", "\\Drafts"],
      ["INBOX", null],
      ["Junk", "\\Junk"],
      ["Sent", "\\Sent"],
      ["Trash", "\\Trash"],
    ]);
    const validities = [...store.state.mailboxes.values()].map((m) => m.rec.uidValidity);
    assertEquals(new Set(validities).size, validities.length);
    await store.close();
  }));

Deno.test("concurrent mutations are group-committed into few log entries", () =>
  withFixture(async (f) => {
    const store = await f.open();
    const before = (await logEntries(f.kv, f.id)).length;
    const fake = (i: number) => ({ blob: i.toString(16).padStart(32, "0"), size: 100 + i });
    const events: ChangeEvent[][] = [];
    store.subscribe((e) => events.push(e));
    const uids = await Promise.all(
      Array.from({ length: 50 }, (_, i) => store.mutate(addTo("INBOX", fake(i)))),
    );
    assertEquals(uids, Array.from({ length: 50 }, (_, i) => i + 1));
    const added = (await logEntries(f.kv, f.id)).length - before;
    // The first mutation commits alone; the 49 that queued behind it share one commit.
    assert(added <= 2, `${added} log entries for 50 concurrent mutations`);
    assertEquals(events.length, added);
    assertEquals(events.flat().length, 50);
    await store.close();
    const again = await f.open();
    assertEquals(summary(again.state), summary(store.state));
    await again.close();
  }));

Deno.test("state survives a reopen: messages, flags, expunges, new and renamed mailboxes", () =>
  withFixture(async (f) => {
    const store = await f.open();
    const a = await store.prepareMessage(message("first"));
    const b = await store.prepareMessage(message("second"));
    const uidA = await store.mutate(addTo("INBOX", a, ["\\Seen"]));
    const uidB = await store.mutate(addTo("INBOX", b));
    await store.mutate(setFlags("INBOX", uidA, ["$Important", "\\Deleted", "\\Seen"]));
    await store.mutate((tx) => {
      const mb = tx.state.byName("INBOX")!;
      tx.push({ op: "expunge", mb: mb.id, uids: [uidA], modseq: tx.nextModSeq() });
    });
    const rec = await newMailboxRecord(store, "Projects/Falcon", null, 12345);
    await store.mutate((tx) =>
      tx.push({ op: "mbox", rec: { ...rec, highestModSeq: tx.nextModSeq() } })
    );
    const renamed = { ...rec, nameEnc: await store.encryptName("Projects/Osprey") };
    store.nameRecord(rec.id, "Projects/Osprey");
    await store.mutate((tx) =>
      tx.push({ op: "mbox", rec: { ...renamed, highestModSeq: tx.nextModSeq() } })
    );
    await store.mutate(addTo("Projects/Osprey", b));
    const expected = summary(store.state);
    await store.close();
    await assertRejects(() => store.mutate(() => {}), /closed/);

    await f.restart();
    const again = await f.open();
    assertEquals(summary(again.state), expected);
    assertEquals(again.state.byName("Projects/Falcon"), undefined);
    const inbox = again.state.byName("INBOX")!;
    assertEquals(inbox.uids, [uidB]);
    assertEquals(inbox.expunged.map(([uid]) => uid), [uidA]);
    assertEquals(again.state.blobRefs.get(b.blob), 2);
    assertEquals(new TextDecoder().decode(await again.message(b.blob)).includes("second"), true);
    assertEquals((await again.info(b.blob)).envelope !== undefined, true);
    await again.close();
  }));

Deno.test("compaction after many log entries yields the same state on reopen", () =>
  withFixture(async (f) => {
    const store = await f.open({ compactAfterEntries: 5 });
    const fake = (i: number) => ({ blob: i.toString(16).padStart(32, "0"), size: i });
    for (let i = 0; i < 40; i++) {
      const uid = await store.mutate(addTo(i % 2 ? "INBOX" : "Archive", fake(i)));
      if (i % 3 === 0) await store.mutate(setFlags(i % 2 ? "INBOX" : "Archive", uid, ["\\Seen"]));
      if (i % 7 === 0) {
        await store.mutate((tx) => {
          const mb = tx.state.byName(i % 2 ? "INBOX" : "Archive")!;
          tx.push({ op: "expunge", mb: mb.id, uids: [uid], modseq: tx.nextModSeq() });
        });
      }
    }
    const head = (await f.kv.get<{ gen: number; logFrom: number }>(["st", f.id, "head"])).value;
    assert(head && head.gen >= 5, `compacted ${head?.gen} times`);
    const entries = await logEntries(f.kv, f.id);
    assert(entries.length <= 6, `${entries.length} log entries left after compaction`);
    assert(entries.every((n) => n >= head.logFrom));
    // Exactly one snapshot generation is kept.
    const gens = new Set<number>();
    for await (const e of f.kv.list({ prefix: ["st", f.id, "snap"] })) gens.add(e.key[3] as number);
    assertEquals([...gens], [head.gen]);
    const expected = summary(store.state);
    await store.close();
    await f.restart();
    const again = await f.open({ compactAfterEntries: 5 });
    assertEquals(summary(again.state), expected);
    // Modseqs keep increasing after a reopen (RFC 7162 §3.1.1).
    const before = again.state.modseq;
    await again.mutate(addTo("INBOX", fake(99)));
    assert(again.state.modseq > before);
    await again.close();
  }));

Deno.test("compaction ignores snapshot chunks left by a compaction that crashed", () =>
  withFixture(async (f) => {
    const store = await f.open({ compactAfterEntries: 3 });
    const head0 = (await f.kv.get<{ gen: number }>(["st", f.id, "head"])).value;
    const nextGen = (head0?.gen ?? 0) + 1;
    // A crash after writing chunks of the next snapshot but before its head commit.
    for (let i = 0; i < 5; i++) {
      await f.kv.set(["st", f.id, "snap", nextGen, i], new TextEncoder().encode("garbage"));
    }
    const fake = (i: number) => ({ blob: i.toString(16).padStart(32, "0"), size: i });
    for (let i = 0; i < 5; i++) await store.mutate(addTo("INBOX", fake(i)));
    const expected = summary(store.state);
    await store.close();
    const again = await f.open();
    assertEquals(summary(again.state), expected);
    await again.close();
  }));

Deno.test("a failed KV commit rejects the batch and reloads memory from disk", () =>
  withFixture(async (f) => {
    const { kv, faults } = faultyKv(f.kv);
    const store = await f.open({}, kv);
    const inboxObject = store.state.byName("INBOX")!;
    const fake = (i: number) => ({ blob: i.toString(16).padStart(32, "0"), size: i });
    await store.mutate(addTo("INBOX", fake(1)));
    const durable = summary(store.state);
    faults.commit = true;
    const results = await Promise.allSettled([
      store.mutate(addTo("INBOX", fake(2))),
      store.mutate(addTo("INBOX", fake(3))),
    ]);
    for (const r of results) {
      assertEquals(r.status, "rejected");
      const reason = (r as PromiseRejectedResult).reason;
      assert(reason instanceof ProtocolError);
      assertEquals(reason.imapCode, "UNAVAILABLE");
    }
    // Memory is what is durable, and sessions' mailbox objects stay the ones they hold.
    assertEquals(summary(store.state), durable);
    assert(store.state.byName("INBOX") === inboxObject);
    faults.commit = false;
    const uid = await store.mutate(addTo("INBOX", fake(4)));
    assertEquals(uid, 2);
    const expected = summary(store.state);
    await store.close();
    const again = await f.open();
    assertEquals(summary(again.state), expected);
    await again.close();
  }));

async function arrivalBlobs(f: Fixture) {
  const blobs: string[] = [];
  for await (const e of f.kv.list<{ blob: string }>({ prefix: ["arrival", f.id] })) {
    blobs.push(e.value.blob);
  }
  return blobs;
}

async function arrivalKeys(f: Fixture) {
  const keys = [];
  for await (const e of f.kv.list({ prefix: ["arrival", f.id] })) keys.push(e.key);
  return keys;
}

Deno.test("ingestArrivals() indexes mail delivered while locked, once", () =>
  withFixture(async (f) => {
    const raws = [message("one"), message("two"), message("three")];
    for (const raw of raws) await deliverLocally(f.kv, f.blobs, "OWNER@store.test", raw);
    assertEquals((await arrivalKeys(f)).length, 3);
    const store = await f.open();
    assertEquals(await store.ingestArrivals(), 3);
    assertEquals(await store.ingestArrivals(), 0);
    assertEquals((await arrivalKeys(f)).length, 0);
    const inbox = store.state.byName("INBOX")!;
    assertEquals(inbox.uids, [1, 2, 3]);
    const got = await Promise.all(inbox.uids.map((u) => store.message(inbox.byUid.get(u)!.blob)));
    assertEquals(got, raws);
    await store.close();
  }));

Deno.test("ingestArrivals() after a crash between its steps adds each message exactly once", () =>
  withFixture(async (f) => {
    await deliverLocally(f.kv, f.blobs, "owner@store.test", message("crash one"));
    await deliverLocally(f.kv, f.blobs, "owner@store.test", message("crash two"));
    // Crash 1: metadata written, then the index commit fails (the process dies).
    const { kv, faults } = faultyKv(f.kv);
    const dying = await f.open({}, kv);
    faults.commit = true;
    faults.only = "st";
    await assertRejects(() => dying.ingestArrivals());
    // The first arrival's metadata was written before the failed index commit.
    const metaKeys = [];
    const firstBlob = (await arrivalBlobs(f))[0];
    for await (const e of f.kv.list({ prefix: ["meta", f.id, firstBlob] })) metaKeys.push(e.key);
    assert(metaKeys.length > 0);
    faults.commit = false;
    await dying.close();
    assertEquals((await arrivalKeys(f)).length, 2);

    const store = await f.open();
    assertEquals(await store.ingestArrivals(), 2);
    const inbox = store.state.byName("INBOX")!;
    assertEquals(inbox.uids.length, 2);
    // Crash 2: an arrival record that outlived its indexing (e.g. written back by a replay).
    const first = inbox.byUid.get(inbox.uids[0])!;
    await f.kv.set(["arrival", f.id, Date.now(), 0, "replayed"], {
      blob: first.blob,
      size: first.size,
      date: first.date,
    });
    await store.ingestArrivals();
    assertEquals(inbox.uids.length, 2);
    assertEquals((await arrivalKeys(f)).length, 0, "the stale arrival record is removed");
    await store.close();
    const again = await f.open();
    assertEquals(again.state.byName("INBOX")!.uids.length, 2);
    await again.close();
  }));

Deno.test("crash leftovers are collected: orphaned metadata at unlock, unrecorded blobs at start", () =>
  withFixture(async (f) => {
    const store = await f.open();
    const keptRaw = message("kept");
    const kept = await store.prepareMessage(keptRaw);
    await store.mutate(addTo("INBOX", kept));
    // A crash after the blob and metadata were written, before the index commit.
    const orphan = await store.prepareMessage(message("orphan"));
    // A crash after a delivery's blob was written, before its arrival record.
    const { sealToRecipient } = await import("../../../src/crypto/age.ts");
    const stray = await f.blobs.put(await sealToRecipient(message("stray"), f.keys.recipient));
    // Mail waiting as an arrival must survive both collections.
    await deliverLocally(f.kv, f.blobs, "owner@store.test", message("arriving"));
    await store.close();

    const reopened = await f.open();
    assertEquals(await reopened.collectOrphanedMetadata(), 1);
    assertEquals((await f.kv.get(["meta", f.id, orphan.blob, 0])).value, null);
    assert((await f.kv.get(["meta", f.id, kept.blob, 0])).value !== null);

    // Fresh files are left alone (a write may be in flight); old ones go.
    assertEquals(await f.blobs.collectUnreferenced(f.kv), 0);
    assertEquals(await f.blobs.collectUnreferenced(f.kv, 0), 2); // orphan and stray
    await assertRejects(() => f.blobs.get(stray));
    await assertRejects(() => f.blobs.get(orphan.blob));
    assertEquals(await reopened.message(kept.blob), keptRaw);
    assertEquals(await reopened.ingestArrivals(), 1);
    await reopened.close();
  }));

Deno.test("reading a message another session expunged answers NO [EXPUNGEISSUED]", () =>
  withFixture(async (f) => {
    const store = await f.open();
    const p = await store.prepareMessage(message("soon gone"));
    const uid = await store.mutate(addTo("INBOX", p));
    await store.mutate((tx) => {
      const mb = tx.state.byName("INBOX")!;
      tx.push({ op: "expunge", mb: mb.id, uids: [uid], modseq: tx.nextModSeq() });
    });
    await store.collectUnreferenced([p.blob]);
    await assertRejects(
      () => store.message(p.blob),
      (e: unknown) => (e as { imapCode?: string }).imapCode === "EXPUNGEISSUED",
    );
    await store.close();
  }));
