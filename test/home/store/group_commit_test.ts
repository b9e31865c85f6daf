import {
  deepStrictEqual as assertEquals,
  ok as assert,
  rejects as assertRejects,
} from "node:assert/strict";
import { type GroupWrite, KvGroupCommit } from "../../../home/store/group_commit.ts";
import { deliverLocally } from "../../../home/store/deliver.ts";
import type { AccountRegistry } from "../../../home/store/accounts.ts";
import { sealToRecipient } from "../../../src/crypto/age.ts";
import { faultyKv, type Fixture, logEntries, message, withFixture } from "./fixture.ts";

function setKey(key: Deno.KvKey, value: unknown): GroupWrite {
  return { apply: (op) => op.set(key, value), mutations: 1, bytes: 100 };
}

Deno.test("KvGroupCommit.commit() shares one commit between concurrent writers", () =>
  withFixture(async (f) => {
    const group = new KvGroupCommit(f.kv);
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => group.commit(setKey(["g", i], i))),
    );
    assertEquals(results, Array(20).fill(true));
    // The first write goes alone; the other 19 queue behind it and share the next commit.
    assertEquals(group.commits, 2);
    for (let i = 0; i < 20; i++) assertEquals((await f.kv.get(["g", i])).value, i);
  }));

Deno.test("KvGroupCommit.commit() gives a write whose check fails false, and commits the rest", () =>
  withFixture(async (f) => {
    await f.kv.set(["taken"], true);
    const group = new KvGroupCommit(f.kv);
    const checked: GroupWrite = {
      apply: (op) => op.check({ key: ["taken"], versionstamp: null }).set(["g", "checked"], 1),
      mutations: 1,
      checks: 1,
      bytes: 100,
    };
    const results = await Promise.all([
      group.commit(setKey(["g", "first"], 1)),
      group.commit(setKey(["g", "before"], 1)),
      group.commit(checked),
      group.commit(setKey(["g", "after"], 1)),
    ]);
    assertEquals(results, [true, true, false, true]);
    assertEquals((await f.kv.get(["g", "checked"])).value, null);
    assertEquals((await f.kv.get(["g", "before"])).value, 1);
    assertEquals((await f.kv.get(["g", "after"])).value, 1);
  }));

Deno.test("KvGroupCommit.commit() keeps each commit within its limits", () =>
  withFixture(async (f) => {
    const group = new KvGroupCommit(f.kv, { maxMutations: 3 });
    await Promise.all(Array.from({ length: 10 }, (_, i) => group.commit(setKey(["g", i], i))));
    // 1 alone, then the 9 queued ones three at a time.
    assertEquals(group.commits, 4);
  }));

Deno.test("KvGroupCommit.commit() rejects every writer of a commit that failed", () =>
  withFixture(async (f) => {
    const { kv, faults } = faultyKv(f.kv);
    const group = new KvGroupCommit(kv);
    faults.commit = true;
    const results = await Promise.allSettled(
      Array.from({ length: 5 }, (_, i) => group.commit(setKey(["g", i], i))),
    );
    assert(results.every((r) => r.status === "rejected"));
    faults.commit = false;
    assertEquals(await group.commit(setKey(["g", "later"], 1)), true);
  }));

Deno.test("addDelivered() indexes concurrent deliveries into INBOX in few log commits", () =>
  withFixture(async (f) => {
    const store = await f.open();
    // 150 at once: their metadata overflows what rides in one index commit.
    const raws = Array.from({ length: 150 }, (_, i) => message(`direct ${i}`));
    const entriesBefore = (await logEntries(f.kv, f.id)).length;
    const blobs = await Promise.all(
      raws.map(async (raw) =>
        store.addDelivered(await sealToRecipient(raw, store.keys.recipient), raw, 1)
      ),
    );
    const inbox = store.state.byName("INBOX")!;
    assertEquals(inbox.uids.length, 150);
    assert((await logEntries(f.kv, f.id)).length - entriesBefore < 75, "log commits are shared");
    for (const blob of blobs) {
      assert((await f.kv.get(["meta", f.id, blob, 0])).versionstamp, "metadata is stored");
    }
    // The search text comes after the reply: searchable at once, stored by a later commit.
    assert((await store.text(blobs[0])).headers.includes("direct 0"));
    await store.close();
    for (const blob of blobs) {
      assert((await f.kv.get(["text", f.id, blob, 0])).versionstamp, "search text is stored");
    }
    const again = await f.open();
    const reopened = again.state.byName("INBOX")!;
    assertEquals(reopened.uids.map((u) => reopened.byUid.get(u)!.blob).sort(), [...blobs].sort());
    for (const [i, blob] of blobs.entries()) assertEquals(await again.message(blob), raws[i]);
    await again.close();
  }));

Deno.test("deliverLocally() to an unlocked account writes no arrival record; a closed store falls back to one", () =>
  withFixture(async (f) => {
    const store = await f.open();
    const registry = { unlocked: () => store } as unknown as AccountRegistry;
    await deliverLocally(f.kv, f.blobs, "owner@store.test", message("direct"), registry);
    assertEquals(store.state.byName("INBOX")!.uids.length, 1);
    assertEquals(await arrivalCount(f), 0);
    await store.close();
    // The account locked between the lookup and the delivery: the arrival record keeps it.
    await deliverLocally(f.kv, f.blobs, "owner@store.test", message("late"), registry);
    assertEquals(await arrivalCount(f), 1);
    const again = await f.open();
    assertEquals(await again.ingestArrivals(), 1);
    assertEquals(again.state.byName("INBOX")!.uids.length, 2);
    await again.close();
    await assertRejects(() => store.addDelivered(new Uint8Array(1), message("x"), 1));
  }));

async function arrivalCount(f: Fixture): Promise<number> {
  let n = 0;
  for await (const _ of f.kv.list({ prefix: ["arrival", f.id] })) n++;
  return n;
}

Deno.test("Tx.setNoLaterThanCommit() spills what one index commit cannot hold into earlier commits", () =>
  withFixture(async (f) => {
    const store = await f.open();
    const value = new Uint8Array(2_000).fill(7);
    await store.mutate((tx) => {
      for (let i = 0; i < 450; i++) tx.setNoLaterThanCommit(["early", i], value);
    });
    for (let i = 0; i < 450; i++) assertEquals((await f.kv.get(["early", i])).value, value);
    await store.close();
  }));

Deno.test("addDelivered() stores the search text with a later commit, or alone soon after", () =>
  withFixture(async (f) => {
    const store = await f.open();
    const raw = message("text later");
    const blob = await store.addDelivered(await sealToRecipient(raw, store.keys.recipient), raw, 1);
    // No other commit comes: the text gets one of its own within a moment.
    const until = Date.now() + 5_000;
    while (!(await f.kv.get(["text", f.id, blob, 0])).versionstamp) {
      assert(Date.now() < until, "search text stored within 5 s");
      await new Promise((r) => setTimeout(r, 20));
    }
    // A text lost in a crash before that commit: the message is searched from its blob.
    await f.kv.delete(["text", f.id, blob, 0]);
    assert((await store.text(blob)).headers.includes("text later"));
    await store.close();
  }));

Deno.test("search texts of a burst are all stored soon after it, more than one commit holds", () =>
  withFixture(async (f) => {
    const store = await f.open();
    // 40 texts of about 12 KB: about twice what one commit takes (textBytesPerCommit).
    const body = "A line of text for the search index, long enough to count.\r\n".repeat(200);
    const blobs: string[] = [];
    for (let i = 0; i < 40; i++) {
      const raw = message(`burst ${i}`, body);
      blobs.push(
        await store.addDelivered(await sealToRecipient(raw, store.keys.recipient), raw, i),
      );
    }
    // No more mail, no other commit: the texts still reach KV, in commits of their own.
    const until = Date.now() + 10_000;
    for (const blob of blobs) {
      while (!(await f.kv.get(["text", f.id, blob, 0])).versionstamp) {
        assert(Date.now() < until, "every search text stored within 10 s");
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    await store.close();
  }));
