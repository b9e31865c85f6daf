// The whole outbound path of a running box: nodemailer submits to a remote address, the box's
// own persistent queue signs the message with DKIM and delivers it to the recipient domain's MX
// (a fake MX on loopback, found through the test resolver), and the signature verifies.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { Buffer } from "node:buffer";
import nodemailer from "nodemailer";
import { dkimVerify } from "mailauth/lib/dkim/verify.js";
import { startTestBox } from "./harness.ts";
import { startFakeMx } from "../src/queue/fake_mx.ts";
import { mailauthResolver, TestResolver } from "../../src/dns.ts";
import { dkimRecordName, dkimTxtRecord, ensureDkimKey } from "../../home/queue/dkim.ts";

Deno.test("a submitted message to a remote address leaves through the queue, DKIM-signed", async () => {
  const mx = await startFakeMx();
  const dns = new TestResolver().mx("remote.example", "mx.remote.example").a(
    "mx.remote.example",
    "127.0.0.1",
  );
  const box = await startTestBox({
    messages: [],
    queue: "box",
    resolver: dns,
    outbound: { portFor: () => mx.port, pollMs: 200 },
  });
  try {
    // Publish the box's DKIM key in the test DNS, as `hearth dns` tells the owner to.
    const key = await ensureDkimKey(box.dataDir);
    dns.txt(dkimRecordName(key, "hearth.localhost"), dkimTxtRecord(key));
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
      const info = await transport.sendMail({
        from: box.address,
        to: "friend@remote.example",
        subject: "Out into the world",
        text: "Hello over there.\n.\nA line with a lone dot above.",
      });
      assertEquals(info.accepted, ["friend@remote.example"]);
    } finally {
      transport.close();
    }
    const until = Date.now() + 15_000;
    while (mx.received.length === 0 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assertEquals(mx.received.length, 1, "the queue delivered within 15 s");
    const got = mx.received[0];
    assertEquals(got.from, box.address);
    assertEquals(got.to, ["friend@remote.example"]);
    const text = new TextDecoder().decode(got.raw);
    assert(text.includes("Subject: Out into the world"), text);
    assert(text.includes("\r\n.\r\nA line with a lone dot above."), "dot-stuffing round trip");
    const verdict = await dkimVerify(Buffer.from(got.raw), { resolver: mailauthResolver(dns) });
    assertEquals(
      verdict.results.map((r: { status: { result: string } }) => r.status.result),
      ["pass"],
    );
  } finally {
    await box.stop();
    await mx.close();
  }
});
