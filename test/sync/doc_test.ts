import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import * as A from "@automerge/automerge";
import { AccountDoc, type DocEdit, editsPerChange } from "../../sync/doc.ts";

const msg = (mailbox: string, flags: string[] = []) => ({
  mailbox,
  flags,
  date: 1_700_000_000_000,
  size: 1234,
  blob: "b".repeat(64),
});

function seeded(n: number): AccountDoc {
  const doc = AccountDoc.create("aa");
  const edits: DocEdit[] = [
    { kind: "mailbox", id: "inbox", name: "INBOX", use: null },
    { kind: "mailbox", id: "arch", name: "Archive", use: "\\Archive" },
  ];
  for (let i = 0; i < n; i++) {
    edits.push({ kind: "add", id: i.toString(16).padStart(8, "0"), message: msg("inbox") });
  }
  doc.edit(edits);
  return doc;
}

/** Runs the Automerge sync protocol between two docs until neither has anything to say. */
function syncAll(a: AccountDoc, b: AccountDoc): number {
  let sa = A.initSyncState(), sb = A.initSyncState();
  let rounds = 0;
  for (;;) {
    const [sa2, toB] = A.generateSyncMessage(a.automerge, sa);
    sa = sa2;
    if (toB) [b.automerge, sb] = A.receiveSyncMessage(b.automerge, sb, toB);
    const [sb2, toA] = A.generateSyncMessage(b.automerge, sb);
    sb = sb2;
    if (toA) [a.automerge, sa] = A.receiveSyncMessage(a.automerge, sa, toA);
    if (!toA && !toB) return rounds;
    rounds++;
    if (rounds > 20) throw new Error("sync did not converge");
  }
}

Deno.test("AccountDoc records messages and mailboxes and reads them back", () => {
  const doc = seeded(3);
  assertEquals(doc.messageCount, 3);
  assertEquals(doc.message("00000001"), msg("inbox"));
  assertEquals(doc.mailboxes().get("arch"), { name: "Archive", use: "\\Archive" });
  const loaded = AccountDoc.load(doc.save());
  assertEquals([...loaded.messages()].length, 3);
});

Deno.test("AccountDoc edits are recorded in batches, never as one huge change", () => {
  const doc = seeded(editsPerChange * 2 + 10);
  const changes = A.getAllChanges(doc.automerge).length;
  // One initial change plus three batches.
  assertEquals(changes, 4);
});

Deno.test("concurrent flag edits on both replicas merge; moves and removes carry over", () => {
  const home = seeded(4);
  const phone = AccountDoc.empty("bb");
  syncAll(home, phone);
  assertEquals(phone.messageCount, 4);
  const base = phone.heads();

  phone.edit([
    { kind: "flags", id: "00000000", flags: ["\\Seen"] },
    { kind: "move", id: "00000001", mailbox: "arch" },
  ]);
  home.edit([
    { kind: "flags", id: "00000000", flags: ["\\Flagged"] },
    { kind: "remove", id: "00000002" },
  ]);
  const homeBefore = home.heads();
  syncAll(home, phone);

  for (const doc of [home, phone]) {
    assertEquals(doc.message("00000000")!.flags, ["\\Flagged", "\\Seen"]);
    assertEquals(doc.message("00000001")!.mailbox, "arch");
    assertEquals(doc.message("00000002"), null);
  }
  // What the home box must apply to IMAP: only the phone's edits, already merged.
  const forHome = home.editsSince(homeBefore);
  assertEquals(
    forHome.sort((a, b) => a.kind.localeCompare(b.kind)),
    [
      { kind: "flags", id: "00000000", flags: ["\\Flagged", "\\Seen"], was: ["\\Flagged"] },
      { kind: "move", id: "00000001", mailbox: "arch" },
    ],
  );
  // And the phone sees the home's.
  const forPhone = phone.editsSince(base);
  assert(forPhone.some((e) => e.kind === "remove" && e.id === "00000002"));
});

Deno.test("a small change to a large document syncs in a small message", () => {
  const home = seeded(5_000);
  const phone = AccountDoc.empty("bb");
  syncAll(home, phone);
  home.edit([{ kind: "flags", id: "00000100", flags: ["\\Seen"] }]);
  let sh = A.initSyncState(), sp = A.initSyncState();
  // Settle the sync states (as persisted states would be after the first sync).
  for (let i = 0; i < 4; i++) {
    const [a, m1] = A.generateSyncMessage(home.automerge, sh);
    sh = a;
    if (m1) [phone.automerge, sp] = A.receiveSyncMessage(phone.automerge, sp, m1);
    const [b, m2] = A.generateSyncMessage(phone.automerge, sp);
    sp = b;
    if (m2) [home.automerge, sh] = A.receiveSyncMessage(home.automerge, sh, m2);
  }
  home.edit([{ kind: "flags", id: "00000200", flags: ["\\Seen"] }]);
  const [, delta] = A.generateSyncMessage(home.automerge, sh);
  assert(delta !== null && delta.length < 1024, `delta is ${delta?.length} bytes`);
});
