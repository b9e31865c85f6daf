// The MX listener driven over raw TCP: relay attempts in every form, unknown users, bad
// sequences, the size limit with and without SIZE, bare line endings and the SMTP smuggling
// set. What was stored is then read back over IMAP and compared byte for byte.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { limits } from "../../src/limits.ts";
import { normaliseLineEndings } from "../../src/mail/line_endings.ts";
import { inbox, splitTrace, startTestBox, type TestBox } from "./harness.ts";
import { RawSmtp } from "./raw_smtp.ts";

const decoder = new TextDecoder();

async function session(box: TestBox): Promise<RawSmtp> {
  const c = await RawSmtp.connect(box.mxPort!);
  assertEquals((await c.command("EHLO client.example.org")).code, 250);
  return c;
}

Deno.test("MX advertises its extensions and refuses relaying in every form", async () => {
  const box = await startTestBox({ messages: [] });
  const c = await RawSmtp.connect(box.mxPort!);
  try {
    const ehlo = await c.command("EHLO client.example.org");
    assertEquals(ehlo.code, 250);
    for (
      const ext of [
        "PIPELINING",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "CHUNKING",
        "STARTTLS",
      ]
    ) {
      assert(ehlo.text.split("\n").includes(ext), `EHLO lists ${ext}: ${ehlo.text}`);
    }
    assert(ehlo.text.includes(`SIZE ${limits.messageBytes}`), ehlo.text);
    assert(!ehlo.text.includes("AUTH"), "an MX offers no AUTH");

    assertEquals((await c.command("RCPT TO:<me@hearth.localhost>")).code, 503, "RCPT before MAIL");
    assertEquals((await c.command("DATA")).code, 503, "DATA before MAIL");
    assertEquals((await c.command("MAIL FROM:<alice@example.org>")).code, 250);
    assertEquals((await c.command("DATA")).code, 503, "DATA before RCPT");

    const refusals: [string, number, string][] = [
      ["<someone@elsewhere.example>", 554, "5.7.1"],
      ["<someone%elsewhere.example@hearth.localhost>", 554, "5.7.1"],
      ["<@hearth.localhost:someone@elsewhere.example>", 554, "5.7.1"],
      ["<@elsewhere.example:me@hearth.localhost>", 554, "5.7.1"],
      // An "@" inside quotes fails the path syntax (501) before the relay check.
      ['<"someone@elsewhere.example"@hearth.localhost>', 501, "5.1.3"],
      ['<"me"@hearth.localhost>', 554, "5.7.1"],
      ["<elsewhere.example!someone@hearth.localhost>", 554, "5.7.1"],
      ["<nobody@hearth.localhost>", 550, "5.1.1"],
    ];
    for (const [path, code, enhanced] of refusals) {
      const r = await c.command(`RCPT TO:${path}`);
      assertEquals([r.code, r.text.split(" ")[0]], [code, enhanced], `${path}: ${r.text}`);
    }
    const ok = await c.command("RCPT TO:<Me@Hearth.Localhost>");
    assertEquals([ok.code, ok.text.split(" ")[0]], [250, "2.1.5"]);
    assertEquals((await c.command("AUTH PLAIN AGZvbwBiYXI=")).code, 500, "AUTH is not offered");
    assertEquals((await c.command("QUIT")).code, 221);
  } finally {
    c.close();
    await box.stop();
  }
});

Deno.test("MX refuses a message over the size limit with and without SIZE, storing nothing", async () => {
  const box = await startTestBox({ messages: [] });
  try {
    const c = await session(box);
    try {
      const declared = await c.command(`MAIL FROM:<a@example.org> SIZE=${limits.messageBytes + 1}`);
      assertEquals([declared.code, declared.text.split(" ")[0]], [552, "5.3.4"], declared.text);

      assertEquals((await c.command("MAIL FROM:<a@example.org>")).code, 250);
      assertEquals((await c.command("RCPT TO:<me@hearth.localhost>")).code, 250);
      const line = "x".repeat(998) + "\r\n";
      const big = new TextEncoder().encode(
        "Subject: big\r\n\r\n" + line.repeat(Math.ceil(limits.messageBytes / line.length) + 10),
      );
      const r = await c.data(new Uint8Array([...big, ...new TextEncoder().encode(".\r\n")]));
      assertEquals([r.code, r.text.split(" ")[0]], [552, "5.3.4"], r.text);
      // The session goes on: a small message after the refusal is taken.
      assertEquals((await c.command("MAIL FROM:<a@example.org>")).code, 250);
      assertEquals((await c.command("RCPT TO:<me@hearth.localhost>")).code, 250);
      assertEquals((await c.data("Subject: small\r\n\r\nok\r\n.\r\n")).code, 250);
    } finally {
      c.close();
    }
    const stored = await inbox(box);
    assertEquals(stored.length, 1, "only the small message is stored");
    assert(decoder.decode(stored[0]).includes("Subject: small"));
  } finally {
    await box.stop();
  }
});

// The SMTP smuggling set: a lone "." between bare line endings must not end DATA, or the
// commands after it would be run as a second, forged transaction.
const smuggling = ["\n.\n", "\n.\r\n", "\r.\r", "\r\n.\r", "\r.\r\n"];

Deno.test("MX stores bare line endings as CRLF and never splits a message (SMTP smuggling)", async () => {
  const box = await startTestBox({ messages: [] });
  const sent: Uint8Array[] = [];
  try {
    const c = await session(box);
    try {
      for (const [i, end] of smuggling.entries()) {
        assertEquals((await c.command("MAIL FROM:<alice@example.org>")).code, 250);
        assertEquals((await c.command("RCPT TO:<me@hearth.localhost>")).code, 250);
        const body = `From: alice@example.org\nSubject: case ${i}\r\n\r\nline one\nline two` +
          `${end}MAIL FROM:<ceo@hearth.localhost>\r\nRCPT TO:<me@hearth.localhost>\r\nDATA\r\n` +
          `Subject: smuggled\r\n\r\nforged\r\n`;
        // RFC 5321 §4.5.2: a line (after a real CRLF) that starts with a dot loses that dot.
        sent.push(new TextEncoder().encode(body.replaceAll("\r\n.", "\r\n")));
        const r = await c.data(body + ".\r\n");
        assertEquals(r.code, 250, `case ${JSON.stringify(end)}: ${r.text}`);
      }
      // Any smuggled command would have left extra replies queued before this one.
      const noop = await c.command("NOOP");
      assertEquals(noop.code, 250, noop.text);
      assertEquals((await c.command("QUIT")).code, 221);
    } finally {
      c.close();
    }
    const stored = await inbox(box);
    assertEquals(stored.length, smuggling.length, "exactly one message per transaction");
    for (const [i, message] of stored.entries()) {
      const { trace, rest } = splitTrace(message);
      const received = trace.get("Received")!;
      assert(/^Received: from client\.example\.org \(/.test(received), received);
      assert(/with ESMTP\r\n/.test(received), `no TLS on this session: ${received}`);
      assert(received.includes("for <me@hearth.localhost>;"), received);
      assertEquals(decoder.decode(rest), decoder.decode(normaliseLineEndings(sent[i])));
      assert(!/[^\r]\n|\r[^\n]/.test(decoder.decode(rest)), "CRLF only");
    }
  } finally {
    await box.stop();
  }
});

Deno.test("MX delivers one copy per recipient; each Received names only its own recipient", async () => {
  const box = await startTestBox({ messages: [] });
  try {
    const c = await session(box);
    try {
      assertEquals((await c.command("MAIL FROM:<alice@example.org>")).code, 250);
      // The same mailbox twice (as To and as Bcc would give): the envelope keeps one entry.
      assertEquals((await c.command("RCPT TO:<me@hearth.localhost>")).code, 250);
      assertEquals((await c.command("RCPT TO:<ME@hearth.localhost>")).code, 250);
      const r = await c.data("Subject: once\r\n\r\nhello\r\n.\r\n");
      assertEquals([r.code, r.text.split(" ")[0]], [250, "2.6.0"], r.text);
    } finally {
      c.close();
    }
    const stored = await inbox(box);
    assertEquals(stored.length, 1);
    assertEquals(decoder.decode(splitTrace(stored[0]).rest), "Subject: once\r\n\r\nhello\r\n");
  } finally {
    await box.stop();
  }
});

Deno.test("MX refuses a too-long command line and keeps serving", async () => {
  const box = await startTestBox({ messages: [] });
  try {
    const c = await session(box);
    try {
      await c.write(`RCPT TO:<${"x".repeat(100_000)}@hearth.localhost>\r\n`);
      const outcome = await c.reply().then((r) => `${r.code}`, (e) => `closed: ${e.message}`);
      assert(/^(421|5\d\d)$|^closed/.test(outcome), outcome);
    } finally {
      c.close();
    }
    const next = await session(box);
    assertEquals((await next.command("QUIT")).code, 221);
    next.close();
  } finally {
    await box.stop();
  }
});

Deno.test("MX refuses connections past the per-address limit with 421, and takes them again after", async () => {
  const box = await startTestBox({ messages: [] });
  const open: RawSmtp[] = [];
  try {
    for (let i = 0; i < limits.smtpConnectionsPerIp; i++) {
      open.push(await RawSmtp.connect(box.mxPort!));
    }
    const extra = await Deno.connect({ hostname: "127.0.0.1", port: box.mxPort! });
    const buf = new Uint8Array(512);
    const n = await extra.read(buf);
    extra.close();
    assert(/^421 /.test(decoder.decode(buf.subarray(0, n ?? 0))), "the extra connection gets 421");
    open.pop()!.close();
    // The freed place is counted back once the server has seen the close.
    let again: RawSmtp | null = null;
    for (let tries = 0; tries < 50 && !again; tries++) {
      again = await RawSmtp.connect(box.mxPort!).catch(() => null);
      if (!again) await new Promise((r) => setTimeout(r, 50));
    }
    assert(again, "a new connection is accepted after one closed");
    open.push(again);
  } finally {
    for (const c of open) c.close();
    await box.stop();
  }
});

Deno.test("submission closes a connection after limits.smtpAuthFailuresPerConnection bad logins", async () => {
  const box = await startTestBox({ messages: [] });
  const c = await RawSmtp.connect(box.submissionPort!);
  try {
    assertEquals((await c.command("EHLO client.example.org")).code, 250);
    const bad = btoa(`\0${box.address}\0not the password`);
    for (let i = 1; i < limits.smtpAuthFailuresPerConnection; i++) {
      assertEquals((await c.command(`AUTH PLAIN ${bad}`)).code, 535);
    }
    const last = await c.command(`AUTH PLAIN ${bad}`);
    assertEquals([last.code, last.text.startsWith("4.7.0")], [421, true], last.text);
  } finally {
    c.close();
    await box.stop();
  }
});
