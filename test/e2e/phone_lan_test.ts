// Phone sync on the LAN (docs/sync.md, "On the LAN"): edge, home box and phone on loopback, the
// phone paired with `hearth phone pair --lan-url` (the CLI). With the edge stopped, a sync the
// user starts goes to the home box's HTTP port only and carries flag changes both ways (an IMAP
// client sees the phone's); requests from an unknown device, with a forged signature, or played
// again are refused and change nothing; a LAN URL nobody answers falls back to the edge.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { ImapFlow } from "imapflow";
import { startEdge } from "../../edge/main.ts";
import { readEdgeLink } from "../../home/edge_link.ts";
import { generateSigningKey } from "../../src/crypto/device.ts";
import { AccountDoc } from "../../sync/doc.ts";
import { sealEnvelope } from "../../sync/envelope.ts";
import { encodeEnvelopes, lanExchangePath } from "../../sync/lan.ts";
import { encodeMessage, type SyncMessage } from "../../sync/messages.ts";
import { splitPayload } from "../../sync/parts.ts";
import { SyncPeer } from "../../sync/peer.ts";
import type { Phone } from "../../sync/phone/client.ts";
import { appendedMessage } from "./messages.ts";
import { pairPhone as pairWithCli } from "./phone_pairing.ts";
import { pickFreePort, startTestBox, type TestBox, waitFor } from "./harness.ts";

function imap(box: TestBox) {
  return new ImapFlow({
    host: "127.0.0.1",
    port: box.tlsPort,
    secure: true,
    tls: { ca: [box.caPem], servername: "localhost" },
    auth: { user: box.address, pass: box.password },
    logger: false,
    connectionTimeout: 5_000,
    greetingTimeout: 5_000,
    socketTimeout: 20_000,
  });
}

/** Requests a phone makes, by where they go (the test's fetch). */
class CountingFetch {
  edge = 0;
  lan = 0;
  /** Bodies posted to the LAN port, to play one again. */
  lanBodies: Uint8Array[] = [];
  constructor(readonly edgeUrl: string) {}
  fetch: typeof fetch = (input, init) => {
    const url = String(input instanceof Request ? input.url : input);
    if (url.startsWith(this.edgeUrl)) this.edge++;
    else if (url.includes(lanExchangePath)) {
      this.lan++;
      if (init?.body instanceof Uint8Array) this.lanBodies.push(init.body);
    }
    return fetch(input, init);
  };
}

/** Pairs a phone through `hearth phone pair ADDRESS --lan-url URL` (the CLI). */
function pairPhone(box: TestBox, lanUrl: string, counting: CountingFetch): Promise<Phone> {
  return pairWithCli(box, { pairArgs: ["--lan-url", lanUrl], join: { fetch: counting.fetch } });
}

async function setUp(opts: { http: boolean; lanUrl?: (box: TestBox) => string }) {
  const edgeDir = await Deno.makeTempDir({ prefix: "hearth-edge-" });
  const edge = await startEdge({
    dataDir: edgeDir,
    hostname: "edge.localhost",
    listen: "127.0.0.1",
    httpPort: 0,
    smtpPort: null,
  });
  const token = await edge.store.createPairing("hearth.localhost");
  const messages = Array.from(
    { length: 8 },
    (_, i) => appendedMessage(`Wombatlan ${i}`, `Body ${i} of the burrow series.`),
  );
  const box = await startTestBox({ messages, edge: { url: edge.url, token }, http: opts.http });
  const client = imap(box);
  // The IMAP login unlocks the account, as the owner's mail client would.
  await client.connect();
  await client.mailboxOpen("INBOX");
  const lanUrl = opts.lanUrl?.(box) ?? `http://127.0.0.1:${box.httpPort}`;
  const counting = new CountingFetch(edge.url);
  const phone = await pairPhone(box, lanUrl, counting);
  let edgeClosed = false;
  return {
    edge,
    box,
    client,
    phone,
    counting,
    lanUrl,
    closeEdge: async () => {
      edgeClosed = true;
      await edge.close();
    },
    async tearDown() {
      await client.logout().catch(() => {});
      await box.stop();
      if (!edgeClosed) await edge.close();
      await Deno.remove(edgeDir, { recursive: true }).catch(() => {});
    },
  };
}

Deno.test("a phone on the LAN syncs flags both ways with the edge stopped", async () => {
  const t = await setUp({ http: true });
  const { phone, client, counting } = t;
  try {
    assertEquals(phone.lanUrls, [t.lanUrl], "the welcome carried the LAN URL");
    await waitFor("the phone to have the mailbox over the LAN", 20_000, async () => {
      const r = await phone.sync({ flush: true });
      assertEquals(r.via, "lan", r.lanError);
      return phone.list("INBOX").length === 8;
    });
    await t.closeEdge();
    const edgeBefore = counting.edge;

    const list = phone.list("INBOX").sort((a, b) => a.date - b.date || a.id.localeCompare(b.id));
    for (const m of list.slice(0, 4)) await phone.flag(m.id, ["\\Seen"]);
    await client.messageFlagsAdd("5:8", ["\\Flagged"]);
    // The home records the IMAP change and tries the (stopped) edge first.
    await new Promise((r) => setTimeout(r, 800));

    const report = await phone.sync({ flush: true });
    assertEquals(report.via, "lan");
    const flagged = phone.list("INBOX").filter((m) => m.flags.includes("\\Flagged")).length;
    assertEquals(flagged, 4, "the phone has the IMAP client's changes after one sync");
    await waitFor("the IMAP client to see the phone's changes", 10_000, async () => {
      const seen = await client.search({ seen: true });
      return (seen as number[]).length === 4;
    });
    assertEquals(counting.edge, edgeBefore, "no request went to the edge");
    assert(counting.lan > 0);
  } finally {
    await t.tearDown();
  }
});

Deno.test("the LAN port refuses unknown devices, forged signatures and replays; nothing changes", async () => {
  const t = await setUp({ http: true });
  const { phone, client, counting, box } = t;
  try {
    await waitFor("the phone to have the mailbox over the LAN", 20_000, async () => {
      await phone.sync({ flush: true });
      return phone.list("INBOX").length === 8;
    });
    const link = (await readEdgeLink(box.dataDir))!;
    const home = {
      id: link.homeId,
      recipient: JSON.parse(await Deno.readTextFile(`${box.dataDir}/home-envelope.key`))
        .recipient as string,
    };
    // A real sync message that would mark every message \Deleted.
    const copy = AccountDoc.load(phone.doc.save());
    copy.edit(
      phone.list("INBOX").map((m) => ({ kind: "flags" as const, id: m.id, flags: ["\\Deleted"] })),
    );
    const frames = new SyncPeer(copy, null).start();
    const messages: SyncMessage[] = [
      { kind: "lan", nonce: crypto.randomUUID(), date: Date.now() },
      ...frames.map((frame) => ({ kind: "sync" as const, frame })),
    ];
    const sealAs = async (id: string) => {
      const key = await generateSigningKey();
      const out: Uint8Array[] = [];
      for (const m of messages) {
        for (const part of splitPayload(encodeMessage(m), 60_000)) {
          out.push(await sealEnvelope(part, { id, key }, home));
        }
      }
      return encodeEnvelopes(out);
    };
    const post = (body: Uint8Array) =>
      fetch(`${t.lanUrl}${lanExchangePath}`, { method: "POST", body: body as BodyInit });

    const unknown = await post(await sealAs("dev-000000000000000000000000"));
    assertEquals(unknown.status, 403);
    assert((await unknown.json()).error.includes("not paired"));
    // The paired phone's id, with a key that is not its own.
    const forged = await post(await sealAs(phone.device));
    assertEquals(forged.status, 403);
    assert((await forged.json()).error.includes("signature"));
    // The phone's own last request, played again by someone on the LAN.
    const replay = await post(counting.lanBodies.at(-1)!);
    assertEquals(replay.status, 403);
    assert((await replay.json()).error.includes("seen before"));
    const garbage = await post(new Uint8Array([0, 0, 0, 3, 1, 2, 3]));
    assertEquals(garbage.status, 403);
    await garbage.body?.cancel();

    await new Promise((r) => setTimeout(r, 500));
    assertEquals(await client.search({ deleted: true }), [], "no message was marked \\Deleted");
    await phone.sync({ flush: true });
    assert(phone.list("INBOX").every((m) => !m.flags.includes("\\Deleted")));
  } finally {
    await t.tearDown();
  }
});

Deno.test("a LAN URL nobody answers: the phone syncs through the edge", async () => {
  // A port nobody listens on, and one that accepts and never answers.
  const closed = pickFreePort();
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of silent) held.push(conn);
  })();
  const t = await setUp({ http: false, lanUrl: () => `http://127.0.0.1:${closed}` });
  const { phone, client, counting } = t;
  try {
    await phone.setLanUrls([
      `http://127.0.0.1:${closed}`,
      `http://127.0.0.1:${(silent.addr as Deno.NetAddr).port}`,
    ]);
    await waitFor("the phone to have the mailbox", 20_000, async () => {
      await phone.sync({ flush: true });
      return phone.list("INBOX").length === 8;
    });
    const [first] = phone.list("INBOX");
    await phone.flag(first.id, ["\\Seen"]);
    const edgeBefore = counting.edge;
    const started = Date.now();
    const report = await phone.sync({ flush: true });
    const took = Date.now() - started;
    assertEquals(report.via, "edge");
    assert(report.lanError?.includes("did not answer in time"), report.lanError);
    assert(counting.edge > edgeBefore);
    assert(took < 6_000, `the fallback took ${took} ms`);
    await waitFor("the IMAP client to see the phone's change", 30_000, async () => {
      const seen = await client.search({ seen: true });
      return (seen as number[]).length === 1;
    });
  } finally {
    await t.tearDown();
    silent.close();
    for (const c of held) c.close();
    await accepting.catch(() => {});
  }
});
