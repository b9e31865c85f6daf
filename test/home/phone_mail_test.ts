// What a phone's mail needs from the home box: summaries of what was added since the last ones (the
// newest per mailbox), bodies as stored, and a Sent copy stored once from the phone's sealed bytes.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { AccountStore } from "../../home/store/account_store.ts";
import { appendFromPhone, newSummaries, sealedBlob } from "../../home/phone_mail.ts";
import { DocHost } from "../../home/sync_host.ts";
import { generateAccountKey, sealToRecipient } from "../../src/crypto/age.ts";
import { limits } from "../../src/limits.ts";
import { makeFixture } from "./store/fixture.ts";

const mail = (i: number) =>
  new TextEncoder().encode(
    `From: Sender ${i} <s${i}@x.test>\r\nSubject: Note ${i}\r\n` +
      `Date: ${new Date(Date.UTC(2024, 0, 1) + i * 60_000).toUTCString()}\r\n\r\nBody ${i}.\r\n`,
  );

async function deliver(store: AccountStore, raws: Uint8Array[], mailbox = "INBOX") {
  const prepared = await store.prepareMany(raws);
  await store.mutate((tx) => {
    const mb = tx.state.byName(mailbox)!;
    prepared.forEach((p, j) => {
      tx.push({
        op: "add",
        mb: mb.id,
        msg: AccountStore.newRecord(
          mb.rec.uidNext,
          p,
          [],
          Date.UTC(2024, 0, 1) + j * 60_000,
          tx.nextModSeq(),
        ),
      });
    });
  });
  return prepared;
}

Deno.test("summaries: the newest per mailbox first, then only what was added since", async () => {
  const f = await makeFixture();
  try {
    const store = await f.open();
    const n = limits.phoneSummariesPerMailbox + 5;
    const first = await deliver(store, Array.from({ length: n }, (_, i) => mail(i)));
    const host = await DocHost.open(f.kv, store);
    const initial = await newSummaries(store, host.doc, null);
    assertEquals(initial.entries.length, limits.phoneSummariesPerMailbox);
    const got = new Map(initial.entries);
    assert(!got.has(first[0].blob), "the oldest waits until asked for");
    assertEquals(got.get(first[n - 1].blob)?.subject, `Note ${n - 1}`);
    assertEquals(got.get(first[n - 1].blob)?.from, `Sender ${n - 1}`);

    const later = await deliver(store, [mail(1000)], "Archive");
    const next = await newSummaries(store, host.doc, initial.heads);
    assertEquals(next.entries.map(([b]) => b), [later[0].blob]);
    assertEquals((await newSummaries(store, host.doc, next.heads)).entries, []);
    // Heads this document does not know: start again from the newest.
    assertEquals(
      (await newSummaries(store, host.doc, ["ab".repeat(32)])).entries.length,
      limits.phoneSummariesPerMailbox + 1,
    );
    await host.close();
  } finally {
    await f.cleanup();
  }
});

Deno.test("a phone's Sent copy is stored once, as sealed; bodies go out as stored", async () => {
  const f = await makeFixture();
  try {
    const store = await f.open();
    const raw = mail(7);
    const sealed = await sealToRecipient(raw, f.keys.recipient);
    const copy = {
      use: "\\Sent",
      flags: ["\\Seen", "\\Deleted"],
      date: Date.UTC(2024, 1, 1),
      sealed,
    };
    assert(await appendFromPhone(store, copy));
    assert(!(await appendFromPhone(store, copy)), "the same bytes again are not stored twice");
    const sent = store.state.byName("Sent")!;
    assertEquals(sent.uids.length, 1);
    const rec = sent.byUid.get(sent.uids[0])!;
    assertEquals(rec.flags, ["\\Seen"], "only flags a phone may set");
    assertEquals(rec.date, Date.UTC(2024, 1, 1));
    assertEquals(await sealedBlob(store, rec.blob), sealed, "the body goes out as stored");
    assertEquals(await store.message(rec.blob), raw);
    assertEquals((await sealedBlob(store, "00".repeat(16))).length, 0, "not this account's");

    const other = await sealToRecipient(raw, (await generateAccountKey()).recipient);
    await appendFromPhone(store, { ...copy, sealed: other }).then(
      () => assert(false, "a copy sealed to someone else must be refused"),
      () => {},
    );
    assert(!(await appendFromPhone(store, { ...copy, use: "\\Drafts" })));
    assertEquals(store.state.byName("Sent")!.uids.length, 1);
  } finally {
    await f.cleanup();
  }
});
