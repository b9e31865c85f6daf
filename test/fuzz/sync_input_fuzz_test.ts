// Property-based fuzzing of the sync input path (issue 8): random and mutated bytes into
// openEnvelope, SyncPeer.receive and Reassembler.add. Each either succeeds or throws its typed
// error (ProtocolError for envelopes, RangeError for frames and parts), and a refused frame leaves
// the account document as it was. Changes a paired peer makes to the document, whatever their
// shape, never make the document's readers throw.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import * as A from "@automerge/automerge";
import fc from "fast-check";
import { generateAccountKey, sealToRecipient } from "../../src/crypto/age.ts";
import { generateSigningKey } from "../../src/crypto/device.ts";
import { ProtocolError } from "../../src/errors.ts";
import { AccountDoc, type DocEdit } from "../../sync/doc.ts";
import { openEnvelope, sealEnvelope } from "../../sync/envelope.ts";
import { Reassembler, splitPayload } from "../../sync/parts.ts";
import { changesFrame, SyncPeer } from "../../sync/peer.ts";
import { fuzzParams, withinTime } from "./budget.ts";

function seeded(n: number, actor: string): AccountDoc {
  const doc = AccountDoc.create(actor);
  const edits: DocEdit[] = [{ kind: "mailbox", id: "inbox", name: "INBOX", use: null }];
  for (let i = 0; i < n; i++) {
    edits.push({
      kind: "add",
      id: i.toString(16).padStart(8, "0"),
      message: { mailbox: "inbox", flags: i % 2 ? ["\\Seen"] : [], date: i, size: 10, blob: "ab" },
    });
  }
  doc.edit(edits);
  return doc;
}

/** Real frames to mutate: a sync opening, a reply, and a plain changes frame. */
const realFrames: Uint8Array[] = (() => {
  const home = seeded(20, "aa");
  const h = new SyncPeer(home);
  const p = new SyncPeer(AccountDoc.empty("bb"));
  const [opening] = h.start();
  const reply = p.receive(opening);
  const more = h.receive(reply[0]);
  return [opening, ...reply, ...more, changesFrame(A.getAllChanges(home.automerge))];
})();

function mutate(b: Uint8Array, ops: [number, number, number][]): Uint8Array {
  let out = [...b];
  for (const [kind, at0, byte] of ops) {
    const at = out.length === 0 ? 0 : at0 % out.length;
    if (kind === 0) out[at] = byte;
    else if (kind === 1) out.splice(at, 0, byte);
    else if (kind === 2) out.splice(at, 1 + (byte % 8));
    else out = out.slice(0, at);
  }
  return Uint8Array.from(out);
}

const mutations = fc.array(
  fc.tuple(fc.nat({ max: 3 }), fc.nat(), fc.integer({ min: 0, max: 255 })),
  { minLength: 1, maxLength: 6 },
);

/** Feeds one frame to a peer over a seeded document: returns or RangeError, the doc unchanged on error. */
function checkFrame(frame: Uint8Array): void {
  const doc = seeded(5, "cc");
  const peer = new SyncPeer(doc);
  peer.start();
  const heads = doc.heads();
  withinTime(`a ${frame.length}-byte frame`, () => {
    try {
      peer.receive(frame);
    } catch (e) {
      assert(
        e instanceof RangeError,
        `receive threw ${(e as Error)?.name}: ${(e as Error)?.message}`,
      );
      assertEquals(doc.heads(), heads, "a refused frame changed the document");
    }
    // Whatever was merged, the document's readers still work.
    readAll(doc);
  });
}

function readAll(doc: AccountDoc): void {
  doc.messageCount;
  doc.mailboxes();
  for (const _ of doc.messages()) { /* every message decodes */ }
}

Deno.test("fuzz: random sync frames are merged or refused with RangeError, the document intact", () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 300 }),
        fc.uint8Array({ maxLength: 300 }).map((b) => Uint8Array.from([1, ...b])),
        fc.uint8Array({ maxLength: 300 }).map((b) => Uint8Array.from([2, ...b])),
      ),
      checkFrame,
    ),
    fuzzParams(200, 0.2),
  );
});

Deno.test("fuzz: mutated real sync frames are merged or refused with RangeError", () => {
  fc.assert(
    fc.property(fc.nat({ max: realFrames.length - 1 }), mutations, (which, ops) => {
      checkFrame(mutate(realFrames[which], ops));
    }),
    fuzzParams(200, 0.2),
  );
});

/** A value of any shape a peer could write into the document. */
const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.string({ maxLength: 8 }),
  fc.dictionary(
    fc.constantFrom("%", "\\Seen", "ab", "name", "use", "x"),
    fc.oneof(
      fc.constant(null),
      fc.boolean(),
      fc.integer(),
      fc.string({ maxLength: 8 }),
      fc.constant({}),
    ),
    { maxKeys: 4 },
  ),
  fc.array(fc.integer(), { maxLength: 3 }),
).map((v) => JSON.parse(JSON.stringify(v))); // plain objects, as Automerge takes them

/** A peer writes `writes` (path, value) into its replica; the home box merges and reads it. */
function mergePeerWrites(writes: [string[], unknown][]): void {
  const home = seeded(3, "dd");
  const phone = AccountDoc.load(home.save(), "ee");
  const before = home.heads();
  // The phone writes whatever it likes, as valid Automerge changes.
  phone.automerge = A.change(phone.automerge, (d) => {
    for (const [path, value] of writes) {
      // deno-lint-ignore no-explicit-any
      let at: any = d;
      for (const key of path.slice(0, -1)) {
        const inner = at[key];
        if (typeof inner !== "object" || inner === null || Array.isArray(inner)) at[key] = {};
        at = at[key];
      }
      at[path[path.length - 1]] = value;
    }
  });
  const frame = changesFrame(A.getChangesSince(phone.automerge, before));
  new SyncPeer(home).receive(frame);
  readAll(home);
  home.editsSince(before);
}

Deno.test("fuzz: changes of any shape from a peer never break the document's readers", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.tuple(
          fc.constantFrom<string[]>(
            ["mailboxes"],
            ["msgs"],
            ["mailboxes", "inbox"],
            ["msgs", "00"],
            ["msgs", "00", "00000000"],
            ["msgs", "00", "00000000", "%"],
            ["mailboxes", "inbox", "name"],
          ),
          anyValue,
        ),
        { minLength: 1, maxLength: 4 },
      ),
      mergePeerWrites,
    ),
    fuzzParams(150, 0.1),
  );
});

Deno.test("fuzz: random parts are reassembled or refused with RangeError", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          fc.uint8Array({ maxLength: 40 }),
          fc.tuple(
            fc.nat({ max: 3 }),
            fc.nat({ max: 4 }),
            fc.nat({ max: 4 }),
            fc.uint8Array({ maxLength: 20 }),
          )
            .map(([id, i, n, body]) =>
              Uint8Array.from([0, 0, 0, 0, 0, 0, 0, id, 0, i, 0, n, ...body])
            ),
        ),
        { maxLength: 30 },
      ),
      (parts) => {
        const r = new Reassembler();
        for (const p of parts) {
          try {
            const whole = r.add(p);
            if (whole) assert(whole.length <= parts.reduce((n, q) => n + q.length, 0));
          } catch (e) {
            assert(
              e instanceof RangeError,
              `add threw ${(e as Error)?.name}: ${(e as Error)?.message}`,
            );
          }
        }
      },
    ),
    fuzzParams(300),
  );
});

Deno.test("fuzz: split payloads come back whole through the reassembler in any order", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 2000 }),
      fc.integer({ min: 13, max: 300 }),
      fc.nat(),
      (payload, size, seed) => {
        const parts = splitPayload(payload, size);
        const order = parts.map((_, i) => i).sort((a, b) =>
          ((a * 7919 + seed) % 97) - ((b * 7919 + seed) % 97)
        );
        const r = new Reassembler();
        let whole: Uint8Array | null = null;
        for (const i of order) whole = r.add(parts[i]) ?? whole;
        assertEquals(whole, payload);
      },
    ),
    fuzzParams(100),
  );
});

const parties = await (async () => {
  const home = { id: "home-1", key: await generateSigningKey() };
  const age = await generateAccountKey();
  const phone = { id: "dev-phone", identity: age.identity, recipient: age.recipient };
  const keys = new Map([[home.id, home.key.publicKey]]);
  const keyOf = (id: string) => Promise.resolve(keys.get(id) ?? null);
  const valid = await sealEnvelope(new TextEncoder().encode("payload"), home, phone);
  return { home, phone, keyOf, valid };
})();

async function checkEnvelope(sealed: Uint8Array): Promise<void> {
  try {
    await openEnvelope(sealed, parties.phone, parties.keyOf);
  } catch (e) {
    assert(
      e instanceof ProtocolError,
      `openEnvelope threw ${(e as Error)?.name}: ${(e as Error)?.message}`,
    );
  }
}

Deno.test("fuzz: random and mutated sealed envelopes open or fail with ProtocolError", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.uint8Array({ maxLength: 400 }),
        mutations.map((ops) => mutate(parties.valid, ops)),
      ),
      checkEnvelope,
    ),
    fuzzParams(100, 0.1),
  );
});

Deno.test("fuzz: envelopes whose sealed inner layout is random fail with ProtocolError", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.uint8Array({ maxLength: 200 }),
        fc.tuple(fc.nat({ max: 300 }), fc.uint8Array({ maxLength: 100 }))
          .map(([n, rest]) => Uint8Array.from([1, n >> 8, n & 0xff, ...rest])),
      ),
      async (inner) => await checkEnvelope(await sealToRecipient(inner, parties.phone.recipient)),
    ),
    fuzzParams(60, 0.05),
  );
});

// Regression cases: document entries the fuzzer once made unreadable (test/fixtures/fuzz/).
Deno.test("fuzz regressions: malformed document entries from a peer are skipped by the readers", async () => {
  const cases: { found: string; writes: [string[], unknown][] }[] = JSON.parse(
    await Deno.readTextFile(
      new URL("../fixtures/fuzz/sync_malformed_doc_entries.json", import.meta.url),
    ),
  );
  for (const c of cases) mergePeerWrites(c.writes);
});

// Regression case: a changes frame with one byte changed made Automerge panic (test/fixtures/fuzz/).
Deno.test("fuzz regressions: a damaged changes frame is refused with RangeError", async () => {
  const c: { mutations: [number, number, number][] } = JSON.parse(
    await Deno.readTextFile(
      new URL("../fixtures/fuzz/sync_changes_frame_panic.json", import.meta.url),
    ),
  );
  const changes = realFrames[realFrames.length - 1];
  checkFrame(mutate(changes, c.mutations));
  // The whole class: each byte of the frame set to 0x01 in turn.
  for (let i = 0; i < changes.length; i += 7) checkFrame(mutate(changes, [[0, i, 1]]));
});
