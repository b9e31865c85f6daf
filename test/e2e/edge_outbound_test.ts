// Outbound through the edge relay: a home box linked to an edge hands its DKIM-signed mail to the
// edge (POST /v1/outbound), the edge delivers it to the recipient domain's MX (a fake MX on
// loopback, found through the test resolver) with the signature intact, and a permanent refusal
// comes back to the sender's INBOX as a DSN, sealed by the edge and pulled home.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { Buffer } from "node:buffer";
import nodemailer from "nodemailer";
import { dkimVerify } from "mailauth/lib/dkim/verify.js";
import { startEdge } from "../../edge/main.ts";
import { dkimRecordName, dkimTxtRecord, ensureDkimKey } from "../../home/queue/dkim.ts";
import { mailauthResolver, TestResolver } from "../../src/dns.ts";
import { startFakeMx } from "../src/queue/fake_mx.ts";
import { inbox, startTestBox, type TestBox, waitFor } from "./harness.ts";

async function submit(box: TestBox, to: string, subject: string) {
  const transport = nodemailer.createTransport({
    host: "127.0.0.1",
    port: box.submissionPort!,
    secure: false,
    requireTLS: true,
    auth: { user: box.address, pass: box.password },
    tls: { ca: box.caPem, servername: "localhost" },
    connectionTimeout: 10_000,
    socketTimeout: 10_000,
  });
  try {
    await transport.sendMail({ from: box.address, to, subject, text: "Sent through the edge." });
  } finally {
    transport.close();
  }
}

Deno.test("outbound mail leaves through the edge, DKIM intact; a refusal comes home as a DSN", async () => {
  const mx = await startFakeMx({ starttls: false });
  mx.rcptReply = (to) => to.startsWith("gone@") ? { code: 550, text: "5.1.1 no such user" } : null;
  const dns = new TestResolver().mx("remote.example", "mx.remote.example").a(
    "mx.remote.example",
    "127.0.0.1",
  );
  const edgeDir = await Deno.makeTempDir({ prefix: "hearth-edge-" });
  const edge = await startEdge({
    dataDir: edgeDir,
    hostname: "edge.localhost",
    listen: "127.0.0.1",
    httpPort: 0,
    smtpPort: null,
    outbound: { resolver: dns, portFor: () => mx.port, pollMs: 200 },
  });
  const token = await edge.store.createPairing("hearth.localhost");
  const box = await startTestBox({
    messages: [],
    queue: "box",
    resolver: dns,
    outbound: { pollMs: 200 },
    edge: { url: edge.url, token },
  });
  try {
    const key = await ensureDkimKey(box.dataDir);
    dns.txt(dkimRecordName(key, "hearth.localhost"), dkimTxtRecord(key));

    await submit(box, "friend@remote.example", "Relayed by the edge");
    await waitFor("the remote MX to receive it", 15_000, () => mx.received.length > 0);
    const got = mx.received[0];
    assertEquals(got.from, box.address);
    assertEquals(got.to, ["friend@remote.example"]);
    const verdict = await dkimVerify(Buffer.from(got.raw), { resolver: mailauthResolver(dns) });
    assertEquals(
      verdict.results.map((r: { status: { result: string } }) => r.status.result),
      ["pass"],
    );

    await submit(box, "gone@remote.example", "Will bounce");
    await waitFor("the DSN in INBOX", 20_000, async () => (await inbox(box)).length > 0);
    const [dsn] = await inbox(box);
    const text = new TextDecoder().decode(dsn);
    assert(text.includes("Subject: Undelivered Mail Returned to Sender"), text.slice(0, 500));
    assert(text.includes("gone@remote.example"), "the DSN names the failed recipient");
    assert(/Status: 5\.1\.1/.test(text), "with the remote's enhanced status");
    assertEquals((await edge.store.status())[0].waiting, 0, "nothing left at the edge");
  } finally {
    await box.stop();
    await edge.close();
    await mx.close();
    await Deno.remove(edgeDir, { recursive: true }).catch(() => {});
  }
});
