// swaks (Debian's swaks) delivers through the MX with STARTTLS and the private CA; and the
// STARTTLS command-injection check: commands pipelined in the same packet as STARTTLS must be
// discarded, not run inside the TLS session (CVE-2011-0411 family).
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { inbox, runTool, splitTrace, startTestBox } from "./harness.ts";
import { RawSmtp } from "./raw_smtp.ts";

Deno.test("swaks delivers through the MX over STARTTLS", async () => {
  const box = await startTestBox({ messages: [] });
  try {
    const run = await runTool("swaks", [
      "--server",
      "127.0.0.1",
      "--port",
      String(box.mxPort),
      "--helo",
      "client.example.org",
      "--from",
      "alice@example.org",
      "--to",
      box.address,
      "--tls",
      "--tls-verify",
      "--tls-ca-path",
      box.caFile,
      "--tls-sni",
      "localhost",
      "--header",
      "Subject: via swaks",
      "--body",
      "Hello from swaks.",
      "--timeout",
      "10",
    ], { pkg: "swaks" });
    assertEquals(run.code, 0, `swaks failed:\n${run.stdout}\n${run.stderr}`);
    const stored = await inbox(box);
    assertEquals(stored.length, 1);
    const { trace, rest } = splitTrace(stored[0]);
    assert(/with ESMTPS \(TLSv1\.[23] /.test(trace.get("Received")!), trace.get("Received"));
    assert(/spf=none/.test(trace.get("Authentication-Results")!));
    const text = new TextDecoder().decode(rest);
    assert(text.includes("Subject: via swaks\r\n") && text.includes("Hello from swaks."), text);
  } finally {
    await box.stop();
  }
});

// Perl's Net::SMTP (Debian's perl, libnet) sends a message in two BDAT chunks (RFC 3030).
const netSmtpBdat = `
use strict;
use Net::SMTP;
my ($port, $to) = @ARGV;
my $smtp = Net::SMTP->new("127.0.0.1", Port => $port, Hello => "client.example.org", Timeout => 10)
  or die "connect: $@";
die "CHUNKING is not offered\\n" unless defined $smtp->supports("CHUNKING");
$smtp->mail("alice\\@example.org") or die "MAIL: " . $smtp->message;
$smtp->to($to) or die "RCPT: " . $smtp->message;
# Net::SMTP turns BDAT on only after MAIL ... BODY=BINARYMIME, which Hearth does not offer: the
# flag that such a MAIL sets is set here, and the library's own bdat() and bdatlast() do the rest.
\${*$smtp}{"net_smtp_chunking"} = 1;
$smtp->bdat("Subject: via Net::SMTP\\r\\n\\r\\nfirst chunk\\r\\n") or die "BDAT: " . $smtp->message;
$smtp->bdatlast(".\\r\\na dot line above, sent as is\\r\\n") or die "BDAT LAST: " . $smtp->message;
print $smtp->code, " ", $smtp->message;
$smtp->quit;
`;

Deno.test("Perl's Net::SMTP delivers through the MX with BDAT (CHUNKING)", async () => {
  const box = await startTestBox({ messages: [] });
  try {
    const run = await runTool("perl", ["-e", netSmtpBdat, String(box.mxPort), box.address], {
      pkg: "perl",
    });
    assertEquals(run.code, 0, `Net::SMTP failed:\n${run.stdout}\n${run.stderr}`);
    assert(/^250 2\.6\.0 .*stored/.test(run.stdout), run.stdout);
    const stored = await inbox(box);
    assertEquals(stored.length, 1);
    const { trace, rest } = splitTrace(stored[0]);
    assert(/with ESMTP\s/.test(trace.get("Received")!), trace.get("Received"));
    assertEquals(
      new TextDecoder().decode(rest),
      "Subject: via Net::SMTP\r\n\r\nfirst chunk\r\n.\r\na dot line above, sent as is\r\n",
    );
  } finally {
    await box.stop();
  }
});

Deno.test("commands pipelined with STARTTLS are discarded (MX and submission)", async () => {
  const box = await startTestBox({ messages: [] });
  try {
    for (const port of [box.mxPort!, box.submissionPort!]) {
      const c = await RawSmtp.connect(port);
      try {
        assertEquals((await c.command("EHLO client.example.org")).code, 250);
        await c.write("STARTTLS\r\nMAIL FROM:<injected@example.org>\r\n");
        assertEquals((await c.reply()).code, 220);
        assertEquals(await c.startTls(box.caPem), "", "nothing answered before the handshake");
        const ehlo = await c.command("EHLO client.example.org");
        assertEquals(ehlo.code, 250);
        assert(
          ehlo.text.includes("PIPELINING"),
          `the first reply under TLS is EHLO's: ${ehlo.text}`,
        );
        // Had the injected MAIL run, this second MAIL would be a bad sequence (503).
        const mail = await c.command(`MAIL FROM:<${box.address}>`);
        assert(mail.code === 250 || mail.code === 530, `${mail.code} ${mail.text}`);
        assertEquals((await c.command("QUIT")).code, 221);
      } finally {
        c.close();
      }
    }
  } finally {
    await box.stop();
  }
});
