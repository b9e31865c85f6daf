import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import * as A from "@automerge/automerge";
import { AccountDoc, type DocEdit } from "../../sync/doc.ts";
import { maxRounds, SyncPeer } from "../../sync/peer.ts";
import { Reassembler, splitPayload } from "../../sync/parts.ts";

function seeded(n: number): AccountDoc {
  const doc = AccountDoc.create("aa");
  const edits: DocEdit[] = [{ kind: "mailbox", id: "inbox", name: "INBOX", use: null }];
  for (let i = 0; i < n; i++) {
    edits.push({
      kind: "add",
      id: i.toString(16).padStart(8, "0"),
      message: {
        mailbox: "inbox",
        flags: [],
        date: 1_700_000_000_000 + i * 7_919,
        size: 1_000 + i,
        blob: ((i * 2_654_435_761) >>> 0).toString(36).repeat(6),
      },
    });
  }
  doc.edit(edits);
  return doc;
}

/** One exchange between two peers; returns the frames each side sent. */
function exchange(a: SyncPeer, b: SyncPeer): { aSent: number; bSent: number; bytes: number } {
  let toB = a.start();
  let aSent = 0, bSent = 0, bytes = 0;
  while (toB.length) {
    const toA: Uint8Array[] = [];
    for (const f of toB) {
      aSent++;
      bytes += f.length;
      toA.push(...b.receive(f));
    }
    toB = [];
    for (const f of toA) {
      bSent++;
      bytes += f.length;
      toB.push(...a.receive(f));
    }
  }
  return { aSent, bSent, bytes };
}

Deno.test("two peers converge, and persisted states make the next exchange cheap", () => {
  const home = seeded(1_000);
  const phone = AccountDoc.empty("bb");
  const h = new SyncPeer(home), p = new SyncPeer(phone);
  exchange(h, p);
  assertEquals(phone.messageCount, 1_000);

  const hState = h.state(), pState = p.state();
  home.edit([{ kind: "flags", id: "00000010", flags: ["\\Seen"] }]);
  const h2 = new SyncPeer(home, hState), p2 = new SyncPeer(phone, pState);
  const cost = exchange(h2, p2);
  assertEquals(phone.message("00000010")!.flags, ["\\Seen"]);
  assert(cost.bytes < 1024, `${cost.bytes} bytes for one flag`);
  assert(cost.aSent <= 2, `${cost.aSent} frames from home`);
});

Deno.test("changes that are many by count but small by size are sent as changes, not the document", () => {
  // Two batch changes hold 1,000 messages; 20 one-flag changes are more than a third of the
  // history by count, which makes Automerge offer the whole document.
  const home = seeded(1_000);
  const phone = AccountDoc.empty("bb");
  const h = new SyncPeer(home), p = new SyncPeer(phone);
  exchange(h, p);
  const whole = home.save().length;
  for (let i = 0; i < 20; i++) {
    home.edit([{ kind: "flags", id: i.toString(16).padStart(8, "0"), flags: ["\\Seen"] }]);
  }
  const cost = exchange(h, p);
  assertEquals(phone.message("00000013")!.flags, ["\\Seen"]);
  assertEquals(A.getHeads(phone.automerge), A.getHeads(home.automerge));
  assert(cost.bytes < whole / 4, `${cost.bytes} bytes for 20 flags (whole document ${whole})`);
});

Deno.test("a home that lost a phone's change in a crash gets it again", () => {
  const home = seeded(100);
  const phone = AccountDoc.empty("bb");
  const h = new SyncPeer(home, null, { announceFresh: true }), p = new SyncPeer(phone);
  exchange(h, p);
  const savedDoc = home.save();
  // The phone's change reaches the home, which persists its sync state but crashes before
  // saving its document.
  phone.edit([{ kind: "flags", id: "00000005", flags: ["$Phone"] }]);
  exchange(p, h);
  assertEquals(home.message("00000005")!.flags, ["$Phone"]);
  const savedState = h.state();
  const restarted = AccountDoc.load(savedDoc);
  assertEquals(restarted.message("00000005")!.flags, []);
  const h2 = new SyncPeer(restarted, savedState, { announceFresh: true });
  exchange(h2, p);
  exchange(h2, p);
  assertEquals(restarted.message("00000005")!.flags, ["$Phone"]);
});

Deno.test("a phone's message the home dropped (locked, or crashed before storing) is sent again", () => {
  const home = seeded(100);
  const phone = AccountDoc.empty("bb");
  const h = new SyncPeer(home, null, { announceFresh: true }), p = new SyncPeer(phone);
  exchange(h, p);
  phone.edit([{ kind: "flags", id: "00000005", flags: ["$Phone"] }]);
  assert(p.start().length, "the phone sends its change, and it is lost");
  // The home restarts from its saved state and speaks first.
  const h2 = new SyncPeer(home, h.state(), { announceFresh: true });
  exchange(h2, p);
  exchange(p, h2);
  assertEquals(home.message("00000005")!.flags, ["$Phone"]);
});

Deno.test("a restarted home's first frame carries no changes: the phone knows it is behind", () => {
  const home = seeded(100);
  const phone = AccountDoc.empty("bb");
  const h = new SyncPeer(home, null, { announceFresh: true }), p = new SyncPeer(phone);
  exchange(h, p);
  assert(!p.behindPeer(), "in step after an exchange");
  // Mail fetched from the edge is recorded before the restarted home first speaks.
  home.edit([{ kind: "flags", id: "00000007", flags: ["\\Seen"] }]);
  const h2 = new SyncPeer(home, h.state(), { announceFresh: true });
  const replies = h2.start().flatMap((f) => p.receive(f));
  assertEquals(phone.message("00000007")!.flags, [], "the first frame carried no changes");
  assert(p.behindPeer(), "the home named heads the phone lacks");
  assert(replies.length, "the phone has a reply, which the home needs to send the change");
  // The reply (posted at once, not kept for the next exchange) brings the change.
  for (const f of replies.flatMap((r) => h2.receive(r))) p.receive(f);
  assertEquals(phone.message("00000007")!.flags, ["\\Seen"]);
  assert(!p.behindPeer());
});

Deno.test("a peer that keeps the exchange going is answered with plain changes after the cap", () => {
  const home = seeded(10);
  const h = new SyncPeer(home);
  const fresh = AccountDoc.empty("cc");
  // A crafted peer: replays its first sync message forever, claiming to know nothing.
  const liar = new SyncPeer(fresh);
  const [opening] = liar.start();
  let last: Uint8Array[] = [];
  h.start();
  for (let i = 0; i <= maxRounds; i++) last = h.receive(opening);
  assertEquals(last.length, 1);
  assertEquals(last[0][0], 2, "a changes frame");
  liar.receive(last[0]);
  assertEquals(fresh.messageCount, 10);
});

Deno.test("malformed frames are refused without touching the document", () => {
  const doc = seeded(2);
  const peer = new SyncPeer(doc);
  const heads = doc.heads();
  throws(() => peer.receive(new Uint8Array()), RangeError);
  throws(() => peer.receive(new Uint8Array([9, 1, 2])), RangeError);
  throws(() => peer.receive(new Uint8Array([1, 0xff, 0xff, 0xff])), RangeError);
  throws(() => peer.receive(new Uint8Array([2, 0, 0, 0, 5])), RangeError);
  assertEquals(doc.heads(), heads);
  assertEquals(A.getHeads(doc.automerge), heads);
});

Deno.test("payloads split into envelope-sized parts come back whole, in any order", () => {
  const payload = Uint8Array.from({ length: 150_000 }, (_, i) => (i * 7919) & 0xff);
  const parts = splitPayload(payload, 60 * 1024);
  assertEquals(parts.length, 3);
  assert(parts.every((p) => p.length <= 60 * 1024));
  const r = new Reassembler();
  assertEquals(r.add(parts[2]), null);
  assertEquals(r.add(parts[0]), null);
  assertEquals(r.add(parts[0]), null, "a duplicate part is ignored");
  assertEquals(r.add(parts[1]), payload);
  throws(() => r.add(new Uint8Array(5)), RangeError);
});
