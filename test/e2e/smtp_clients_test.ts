// Real SMTP clients against the home box: Python's smtplib (MX with STARTTLS, submission over
// implicit TLS and STARTTLS) and nodemailer (submission both ways); what they sent is read
// back over IMAP with its Received header.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import nodemailer from "nodemailer";
import { inbox, runTool, splitTrace, startTestBox } from "./harness.ts";
import { RawSmtp } from "./raw_smtp.ts";

const script = new URL("./smtplib_client.py", import.meta.url).pathname;
const decoder = new TextDecoder();

type Step = { ok: string } | { error: [number, string] };

Deno.test("Python smtplib delivers through the MX and submits over TLS and STARTTLS", async () => {
  const box = await startTestBox({ messages: [] });
  try {
    const run = await runTool("python3", [
      script,
      "127.0.0.1",
      String(box.mxPort),
      String(box.submissionPort),
      String(box.submissionsPort),
      box.caFile,
      box.address,
      box.password,
    ], { pkg: "python3" });
    assertEquals(run.code, 0, `smtplib_client.py failed:\n${run.stderr}`);
    const steps: Record<string, Step> = JSON.parse(run.stdout);
    for (const name of ["mx_starttls", "submission_ssl", "submission_starttls"]) {
      assertEquals(steps[name], { ok: "{}" }, `${name}: ${JSON.stringify(steps[name])}`);
    }
    const refused = (name: string) => {
      const s = steps[name];
      assert("error" in s, `${name} should fail: ${JSON.stringify(s)}`);
      return [s.error[0], s.error[1].split(" ")[0]];
    };
    assertEquals(refused("wrong_password"), [535, "5.7.8"]);
    assertEquals(refused("forged_from"), [553, "5.7.1"]);
    assertEquals(refused("remote_recipient"), [451, "4.3.2"]);

    const messages = await inbox(box);
    assertEquals(messages.length, 3);
    const { trace, rest } = splitTrace(messages[0]);
    const mx = trace.get("Received")! + decoder.decode(rest);
    assert(
      /^Authentication-Results: localhost;\r\n dkim=none/.test(
        trace.get("Authentication-Results")!,
      ),
    );
    const [ssl, starttls] = messages.slice(1).map((m) => decoder.decode(m));
    assert(
      /^Received: from client\.example\.org \([^)]*\[127\.0\.0\.1\]\)\r\n\tby localhost \(Hearth\) with ESMTPS \(TLSv1\.[23] [A-Z0-9_-]+\)\r\n\tid [0-9a-f]+ for <me@hearth\.localhost>;\r\n\t\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d \+0000\r\n/
        .test(mx),
      mx,
    );
    assert(mx.endsWith("Subject: via MX\r\n\r\nSent by smtplib: via MX.\r\n"), mx);
    assert(/^Received: [^]*with ESMTPSA/.test(ssl) && ssl.includes("Subject: via 465"), ssl);
    assert(/^Received: [^]*with ESMTPSA/.test(starttls), starttls);
    assert(starttls.includes("Subject: via 587"), starttls);
  } finally {
    await box.stop();
  }
});

Deno.test("nodemailer submits with AUTH over STARTTLS and over implicit TLS", async () => {
  const queued: { from: string; to: string[]; raw: string }[] = [];
  const box = await startTestBox({
    messages: [],
    queue: {
      enqueue(from, to, raw) {
        queued.push({ from, to, raw: decoder.decode(raw) });
        return Promise.resolve();
      },
    },
  });
  try {
    for (
      const [port, secure] of [[box.submissionPort!, false], [box.submissionsPort!, true]] as const
    ) {
      const transport = nodemailer.createTransport({
        host: "127.0.0.1",
        port,
        secure,
        requireTLS: !secure,
        auth: { user: box.address, pass: box.password },
        tls: { ca: box.caPem, servername: "localhost" },
        connectionTimeout: 10_000,
        greetingTimeout: 10_000,
        socketTimeout: 10_000,
      });
      try {
        const info = await transport.sendMail({
          from: `Me <${box.address}>`,
          to: box.address,
          bcc: "friend@remote.example",
          subject: `nodemailer ${secure ? "TLS" : "STARTTLS"}`,
          text: "Hello from nodemailer.",
        });
        assertEquals(info.accepted.sort(), [box.address, "friend@remote.example"].sort());
      } finally {
        transport.close();
      }
    }
    const stored = (await inbox(box)).map((m) => decoder.decode(m));
    assertEquals(stored.length, 2);
    assert(stored[0].includes("Subject: nodemailer STARTTLS"), stored[0]);
    assert(stored[1].includes("Subject: nodemailer TLS"), stored[1]);
    for (const m of stored) {
      assert(!m.includes("friend@remote.example"), `the Bcc recipient leaks: ${m}`);
    }
    assertEquals(queued.length, 2);
    for (const q of queued) {
      assertEquals([q.from, q.to], [box.address, ["friend@remote.example"]]);
      assert(/^Received: [^]*with ESMTPSA/.test(q.raw), q.raw);
      assert(!/^Received: [^;]* for </.test(q.raw), `the queued copy names no recipient: ${q.raw}`);
    }
  } finally {
    await box.stop();
  }
});

Deno.test("submission refuses AUTH before TLS and mail before AUTH", async () => {
  const box = await startTestBox({ messages: [], allowPlaintextAuth: false });
  const c = await RawSmtp.connect(box.submissionPort!);
  try {
    const ehlo = await c.command("EHLO client.example.org");
    assert(ehlo.text.includes("STARTTLS"), ehlo.text);
    const auth = await c.command(`AUTH PLAIN ${btoa(`\0${box.address}\0${box.password}`)}`);
    assertEquals(auth.code, 538, auth.text);
    const mail = await c.command(`MAIL FROM:<${box.address}>`);
    assertEquals([mail.code, mail.text.split(" ")[0]], [530, "5.7.0"], mail.text);
  } finally {
    c.close();
    await box.stop();
  }
});
