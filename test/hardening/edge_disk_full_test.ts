/**
 * The edge on a full disk: `hearth edge` runs with its KV on a 16 MB tmpfs
 * the test mounts (root only; skipped with the reason otherwise), and the test
 * fills it. The SMTP front answers `452 4.3.1` (RFC 5321 §4.2.5, RFC 3463
 * §3.4), `POST /v1/inbound` answers `503` with a clear text, nothing that got
 * `250`/`200` is lost, and once space returns the same edge process accepts
 * mail again and its home box gets every accepted message exactly once.
 *
 * Sender domains are under `.invalid` (RFC 6761 §6.4): the edge's SPF and
 * DMARC lookups are answered without the network.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { EdgeStore } from "../../edge/store.ts";
import { type EdgeProcess, startEdgeProcess } from "../e2e/edge_process.ts";
import { type HomeProcess, startHomeProcess, testAddress, waitFor } from "../e2e/harness.ts";
import { RawImap } from "../e2e/raw_imap.ts";
import { RawSmtp } from "../e2e/raw_smtp.ts";
import {
  fillFilesystem,
  mountSmallFilesystem,
  smallFilesystemSkipReason,
} from "./small_filesystem.ts";

const skipReason = smallFilesystemSkipReason();
if (skipReason) console.warn(`edge_disk_full_test skipped: ${skipReason}`);

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A message whose Message-ID is `<id@disk.invalid>`; `lines` sets its size (about 60 bytes each). */
function message(id: string, lines: number): string {
  return `From: sender@disk.invalid\r\nTo: ${testAddress}\r\nSubject: ${id}\r\n` +
    `Message-ID: <${id}@disk.invalid>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\n` +
    `a line of ${id} to give the message some weight\r\n`.repeat(lines) + `end of ${id}\r\n`;
}

/** One SMTP transaction to the edge's front; the reply to DATA (or the first refusal). */
async function smtpSend(port: number, id: string, lines: number): Promise<string> {
  const c = await RawSmtp.connect(port, 30_000);
  try {
    await c.command("EHLO disk.invalid");
    const from = await c.command("MAIL FROM:<sender@disk.invalid>");
    if (from.code !== 250) return `${from.code} ${from.text}`;
    const rcpt = await c.command(`RCPT TO:<${testAddress}>`);
    if (rcpt.code !== 250) return `${rcpt.code} ${rcpt.text}`;
    const r = await c.data(encoder.encode(message(id, lines) + ".\r\n"));
    return `${r.code} ${r.text}`;
  } finally {
    c.close();
  }
}

/** One `POST /v1/inbound` as an HTTP mail front would send it; status and body text. */
async function httpSend(
  url: string,
  token: string,
  id: string,
  lines: number,
): Promise<{ status: number; text: string }> {
  const res = await fetch(`${url}/v1/inbound`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${token}`,
      "hearth-rcpt-to": testAddress,
      "hearth-mail-from": "sender@disk.invalid",
    },
    body: message(id, lines),
    signal: AbortSignal.timeout(30_000),
  });
  return { status: res.status, text: await res.text() };
}

/** The Message-ID of every message in INBOX, duplicates kept. */
async function inboxIds(home: HomeProcess): Promise<string[]> {
  const c = await RawImap.connect(home.port);
  try {
    await c.ok(`LOGIN ${home.address} "${home.password}"`);
    await c.ok("SELECT INBOX");
    const bodies = await c.fetchAllBodies();
    return [...bodies.values()].map((b) =>
      decoder.decode(b).match(/^Message-ID: <([^@>]+)@disk\.invalid>\r$/m)?.[1] ?? "?"
    );
  } finally {
    c.close();
  }
}

/** Items waiting at the edge, read from its KV by a second handle (several processes may share it). */
async function waitingAtEdge(kvPath: string): Promise<number> {
  const kv = await Deno.openKv(kvPath);
  try {
    let n = 0;
    for await (const _ of kv.list({ prefix: ["edge", "item"] })) n++;
    return n;
  } finally {
    kv.close();
  }
}

Deno.test({
  name: "the edge on a full disk answers 452 4.3.1 and 503, loses nothing, and recovers by itself",
  ignore: skipReason !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const fsys = await mountSmallFilesystem("16m");
    const edgeDir = `${fsys.dir}/edge`;
    const kvPath = `${edgeDir}/edge.kv`;
    let edge: EdgeProcess | undefined;
    let home: HomeProcess | undefined;
    try {
      await Deno.mkdir(edgeDir, { mode: 0o700 });
      const setup = new EdgeStore(await Deno.openKv(kvPath));
      const pairing = await setup.createPairing("hearth.localhost");
      const front = await setup.createFrontToken("disk-front");
      setup.kv.close();
      edge = await startEdgeProcess({ dataDir: edgeDir });
      home = await startHomeProcess({ messages: [], edge: { url: edge.url, token: pairing } });
      const url = edge.url;
      const smtpPort = edge.smtpPort;

      // What the edge acknowledged (250 or 200): each must reach INBOX exactly once.
      const acked = new Set<string>();
      // Sent without an acknowledgement: may arrive (at most once) or not.
      const unacked = new Set<string>();
      const viaSmtp = async (id: string, lines: number) => {
        const r = await smtpSend(smtpPort, id, lines);
        (r.startsWith("250") ? acked : unacked).add(id);
        return r;
      };
      const viaHttp = async (id: string, lines: number) => {
        const r = await httpSend(url, front, id, lines);
        (r.status === 200 ? acked : unacked).add(id);
        return r;
      };
      for (let i = 0; i < 3; i++) {
        assert((await viaSmtp(`before-smtp-${i}`, 50)).startsWith("250"));
        assertEquals((await viaHttp(`before-http-${i}`, 50)).status, 200);
      }
      await waitFor("the home box to pull the first mail", 30_000, async () => {
        return (await inboxIds(home!)).length === 6;
      }, 200);
      // The home box goes away, so that nothing drains the edge while its disk is full.
      await home.kill("SIGTERM");

      const filler = await fillFilesystem(fsys.dir);
      // SQLite may still fit a small commit into WAL pages it already has: large messages (KV
      // chunks) and small ones in turn; each is either durable (250/200) or refused.
      const smtpReplies: string[] = [];
      const httpReplies: { status: number; text: string }[] = [];
      for (let i = 0; i < 6; i++) {
        const lines = i % 2 ? 20 : 3_000;
        smtpReplies.push(await viaSmtp(`full-smtp-${i}`, lines));
        httpReplies.push(await viaHttp(`full-http-${i}`, lines));
      }
      const tally = (xs: string[]) => {
        const n = new Map<string, number>();
        for (const x of xs) n.set(x, (n.get(x) ?? 0) + 1);
        return [...n].map(([k, v]) => `${v} × ${k}`).join(", ");
      };
      console.log(
        `  while full: SMTP ${tally(smtpReplies.map((r) => r.slice(0, 9)))}; ` +
          `HTTP ${tally(httpReplies.map((r) => String(r.status)))}`,
      );
      for (const r of smtpReplies) assert(/^(250|452 4\.3\.1|451 )/.test(r), r);
      assert(smtpReplies.some((r) => r.startsWith("452 4.3.1")), "the SMTP front answered 452");
      for (const r of httpReplies) assert(r.status === 200 || r.status === 503, JSON.stringify(r));
      const refused = httpReplies.find((r) => r.status === 503);
      assert(refused, "POST /v1/inbound answered 503");
      assert(/storage is full/.test(JSON.parse(refused.text).error), refused.text);

      // The home box comes back while the edge is still full. Its signed requests are refused
      // with 503 (each records its nonce in KV, docs/reliability.md); it retries with backoff.
      await home.restart();
      await new Promise((r) => setTimeout(r, 1_500));

      await Deno.remove(filler);
      // The same edge process (no restart) takes mail again on both fronts.
      assert((await viaSmtp("after-smtp", 50)).startsWith("250"), "SMTP after space returned");
      assertEquals((await viaHttp("after-http", 50)).status, 200, "HTTP after space returned");

      let ids: string[] = [];
      await waitFor("every acknowledged message at home", 60_000, async () => {
        ids = await inboxIds(home!);
        return [...acked].every((id) => ids.includes(id));
      }, 250);
      const seen = new Set<string>();
      for (const id of ids) {
        assert(!seen.has(id), `${id} is in INBOX twice`);
        seen.add(id);
        assert(acked.has(id) || unacked.has(id), `a message that was never sent: ${id}`);
      }
      await waitFor(
        "the edge to be empty",
        30_000,
        async () => (await waitingAtEdge(kvPath)) === 0,
      );
      console.log(
        `  ${acked.size} acknowledged messages all at home once; ` +
          `${
            [...unacked].filter((id) => seen.has(id)).length
          } of ${unacked.size} refused ones arrived`,
      );
    } catch (e) {
      if (edge) console.error(`edge log:\n${edge.stderr()}`);
      if (home) console.error(`home log:\n${home.stderr()}`);
      throw e;
    } finally {
      await home?.stop();
      await edge?.stop();
      await fsys.unmount();
    }
  },
});
