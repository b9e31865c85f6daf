// The home side of the account document: store changes are recorded (a MOVE as a move of the same
// id), a phone's merged edits come back as IMAP changes with new MODSEQs and no echo, and the
// saved document survives a restart and catches up with changes made while it was closed.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { AccountStore, type ChangeEvent, type Tx } from "../../home/store/account_store.ts";
import { DocHost } from "../../home/sync_host.ts";
import { AccountDoc } from "../../sync/doc.ts";
import { SyncPeer } from "../../sync/peer.ts";
import { withFixture } from "./store/fixture.ts";

const fake = (i: number) => ({ blob: i.toString(16).padStart(64, "0"), size: 100 + i });

function addTo(name: string, prepared: { blob: string; size: number }, flags: string[] = []) {
  return (tx: Tx) => {
    const mb = tx.state.byName(name)!;
    const uid = mb.rec.uidNext;
    tx.push({
      op: "add",
      mb: mb.id,
      msg: AccountStore.newRecord(uid, prepared, flags, 1_700_000_000_000, tx.nextModSeq()),
    });
    return uid;
  };
}

/** MOVE as copy.ts does it: add in the target and expunge in the source, one mutation. */
function move(uid: number, from: string, to: string) {
  return (tx: Tx) => {
    const src = tx.state.byName(from)!;
    const dst = tx.state.byName(to)!;
    const rec = src.byUid.get(uid)!;
    tx.push({
      op: "add",
      mb: dst.id,
      msg: { ...rec, uid: dst.rec.uidNext, modseq: tx.nextModSeq() },
    });
    tx.push({ op: "expunge", mb: src.id, uids: [uid], modseq: tx.nextModSeq() });
  };
}

/** Flags of one INBOX message, as an IMAP STORE sets them. */
function setFlags(uid: number, flags: string[]) {
  return (tx: Tx) => {
    const mb = tx.state.byName("INBOX")!;
    tx.push({ op: "flags", mb: mb.id, changes: [[uid, tx.nextModSeq(), flags]] });
  };
}

/** A phone replica synced with the host's document, and both sides' peers. */
function pairedPhone(host: DocHost) {
  const phone = AccountDoc.empty("bb");
  const h = new SyncPeer(host.doc), p = new SyncPeer(phone);
  exchange(h, p);
  return { phone, h, p };
}

/** Syncs two peers until quiet. */
function exchange(a: SyncPeer, b: SyncPeer) {
  let toB = a.start();
  for (let round = 0; toB.length && round < 20; round++) {
    const toA = toB.flatMap((f) => b.receive(f));
    toB = toA.flatMap((f) => a.receive(f));
  }
}

Deno.test("store changes are recorded; an IMAP MOVE is a move of the same document id", () =>
  withFixture(async (f) => {
    const store = await f.open();
    await store.mutate(addTo("INBOX", fake(1)));
    const host = await DocHost.open(f.kv, store);
    const inbox = store.state.byName("INBOX")!.id;
    const archive = store.state.byName("Archive")!.id;
    assertEquals(host.doc.messageCount, 1);
    const [id] = [...host.doc.messages()].map(([id]) => id);
    assertEquals(id, fake(1).blob, "the first instance of a blob is named by it");

    const uid2 = await store.mutate(addTo("INBOX", fake(2)));
    await store.mutate(setFlags(uid2, ["\\Flagged"]));
    await store.mutate(move(uid2, "INBOX", "Archive"));
    const moved = host.doc.message(fake(2).blob)!;
    assertEquals(moved.mailbox, archive);
    assertEquals(moved.flags, ["\\Flagged"]);
    assertEquals(host.doc.message(fake(1).blob)!.mailbox, inbox);
    await host.close();
    await store.close();
  }));

Deno.test("a phone's flag and move come back as IMAP changes, once, without echo", () =>
  withFixture(async (f) => {
    const store = await f.open();
    for (let i = 1; i <= 3; i++) await store.mutate(addTo("INBOX", fake(i)));
    const host = await DocHost.open(f.kv, store);
    const { phone, h, p } = pairedPhone(host);
    assertEquals(phone.messageCount, 3);

    const archive = store.state.byName("Archive")!.id;
    phone.edit([
      { kind: "flags", id: fake(1).blob, flags: ["\\Seen"] },
      { kind: "move", id: fake(2).blob, mailbox: archive },
    ]);
    const before = host.doc.heads();
    const events: ChangeEvent[][] = [];
    store.subscribe((e) => events.push(e));
    const modseq = store.state.modseq;
    exchange(p, h);
    const changeCountBefore = host.doc.heads();
    await host.applyRemote(host.doc.editsSince(before));

    const inbox = store.state.byName("INBOX")!;
    const seen = [...inbox.byUid.values()].find((r) => r.blob === fake(1).blob)!;
    assertEquals(seen.flags, ["\\Seen"]);
    assert(seen.modseq > modseq, "a new MODSEQ for IMAP clients");
    assert(![...inbox.byUid.values()].some((r) => r.blob === fake(2).blob), "moved out");
    assert(
      [...store.state.mailboxes.get(archive)!.byUid.values()].some((r) => r.blob === fake(2).blob),
    );
    assert(events.flat().some((e) => e.kind === "flags"), "IDLE sessions are told");
    // Recording the resulting events changed nothing in the document: no echo back to the phone.
    assertEquals(host.doc.heads(), changeCountBefore);
    await host.close();
    await store.close();
  }));

Deno.test("the document is saved encrypted and catches up with changes made while closed", () =>
  withFixture(async (f) => {
    const store = await f.open();
    await store.mutate(addTo("INBOX", fake(1)));
    const host = await DocHost.open(f.kv, store);
    const heads = host.doc.heads();
    await host.close();
    // Changes while no host was running.
    await store.mutate(addTo("INBOX", fake(2)));
    const again = await DocHost.open(f.kv, store);
    assert(again.doc.editsSince(heads).some((e) => e.kind === "add" && e.id === fake(2).blob));
    assertEquals(again.doc.messageCount, 2);
    // Nothing readable in KV: the saved document is encrypted.
    for await (const e of f.kv.list<Uint8Array>({ prefix: ["doc", store.id] })) {
      if (e.value instanceof Uint8Array) {
        assert(!new TextDecoder("latin1").decode(e.value).includes("INBOX"));
      }
    }
    await again.close();
    await store.close();
  }));

Deno.test("a move whose record a crash took stays a move of the same message, keeping a phone's change", () =>
  withFixture(async (f) => {
    const store = await f.open();
    const uid = await store.mutate(addTo("INBOX", fake(1)));
    const host = await DocHost.open(f.kv, store);
    const { phone, p } = pairedPhone(host);
    // The box moves the message and dies before saving the document.
    host.discard();
    await store.mutate(move(uid, "INBOX", "Archive"));
    // Meanwhile the phone flags it, under the id it knows.
    phone.edit([{ kind: "flags", id: fake(1).blob, flags: ["$Phone"] }]);

    const again = await DocHost.open(f.kv, store);
    const archive = store.state.byName("Archive")!.id;
    assertEquals(again.doc.message(fake(1).blob)?.mailbox, archive, "the same id, moved");
    const before = again.doc.heads();
    exchange(new SyncPeer(again.doc), p);
    await again.applyRemote(again.doc.editsSince(before));
    const rec = [...store.state.mailboxes.get(archive)!.byUid.values()][0];
    assertEquals(rec.flags, ["$Phone"]);
    assertEquals(phone.message(fake(1).blob)?.flags, ["$Phone"]);
    await again.close();
    await store.close();
  }));

Deno.test("a phone's flag change applied after an IMAP STORE on the same message keeps both", () =>
  withFixture(async (f) => {
    const store = await f.open();
    const uid = await store.mutate(addTo("INBOX", fake(1)));
    const host = await DocHost.open(f.kv, store);
    const { phone, h, p } = pairedPhone(host);
    phone.edit([{ kind: "flags", id: fake(1).blob, flags: ["$Phone"] }]);
    const before = host.doc.heads();
    exchange(p, h);
    const edits = host.doc.editsSince(before);
    // An IMAP client's STORE +FLAGS (\Flagged) commits between the merge and its application.
    await store.mutate(setFlags(uid, ["\\Flagged"]));
    await host.applyRemote(edits);
    const rec = store.state.byName("INBOX")!.byUid.get(uid)!;
    assertEquals(rec.flags, ["$Phone", "\\Flagged"]);
    assertEquals(host.doc.message(fake(1).blob)!.flags, ["$Phone", "\\Flagged"]);
    await host.close();
    await store.close();
  }));

Deno.test("no save sees a phone's merged change before the store has it", () =>
  withFixture(async (f) => {
    const store = await f.open();
    await store.mutate(addTo("INBOX", fake(1)));
    const host = await DocHost.open(f.kv, store);
    const { phone, h, p } = pairedPhone(host);
    phone.edit([{ kind: "flags", id: fake(1).blob, flags: ["$Phone"] }]);
    let release!: () => void;
    const merging = host.merge(async () => {
      exchange(p, h);
      await new Promise<void>((r) => release = r);
    });
    // A save asked for meanwhile waits for the merge; the box "crashes" before it ends.
    const saved = host.save();
    await new Promise((r) => setTimeout(r, 50));
    host.discard();
    release();
    await merging;
    await saved;
    // The next open starts from the last save: it never held the change the store lacks, so
    // reconciling does not undo it, and the phone sends it again.
    const again = await DocHost.open(f.kv, store);
    assertEquals(again.doc.message(fake(1).blob)!.flags, []);
    const before = again.doc.heads();
    exchange(new SyncPeer(again.doc), p);
    await again.applyRemote(again.doc.editsSince(before));
    assertEquals(store.state.byName("INBOX")!.byUid.values().next().value!.flags, ["$Phone"]);
    await again.close();
    await store.close();
  }));

Deno.test("an arrival committing while the document opens is recorded once", () =>
  withFixture(async (f) => {
    const store = await f.open();
    await store.mutate(addTo("INBOX", fake(1)));
    // The arrival is in the store's state while its commit is under way; its event comes after.
    const arriving = store.mutate(addTo("INBOX", fake(2)));
    const host = await DocHost.open(f.kv, store);
    await arriving;
    assertEquals(
      [...host.doc.messages()].map(([, m]) => m.blob).sort(),
      [fake(1).blob, fake(2).blob],
    );
    await host.close();
    await store.close();
  }));
