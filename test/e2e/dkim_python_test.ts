// A second, independent DKIM verifier: Debian's python3-dkim (dkimpy) checks the signature the
// box's outbound queue puts on a message (RFC 6376), with the key record served by a dnsfunc
// instead of DNS. A tampered copy must fail, so the check cannot pass vacuously.
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import {
  dkimRecordName,
  dkimTxtRecord,
  ensureDkimKey,
  signingPreparer,
} from "../../home/queue/dkim.ts";
import { runTool } from "./harness.ts";

// Debian's package installs for Debian's interpreter (a python3 earlier on PATH may lack it).
const python = "/usr/bin/python3";

// argv: record name, TXT text; stdin: the message. Exit 0 when the signature verifies.
const verifier = `
import sys, dkim
name, txt = sys.argv[1], sys.argv[2]
def dnsfunc(qname, timeout=5):
    if isinstance(qname, bytes):
        qname = qname.decode()
    return txt.encode() if qname.rstrip(".").lower() == name.lower() else None
ok = dkim.verify(sys.stdin.buffer.read(), dnsfunc=dnsfunc)
print("pass" if ok else "fail")
sys.exit(0 if ok else 1)
`;

async function verify(message: Uint8Array, name: string, txt: string) {
  return await runTool(python, ["-c", verifier, name, txt], {
    pkg: "python3-dkim",
    stdin: new TextDecoder().decode(message),
  });
}

Deno.test("python3-dkim verifies the box's DKIM signature and rejects a tampered copy", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "hearth-dkim-" });
  try {
    const key = await ensureDkimKey(dataDir);
    const domain = "hearth.localhost";
    const name = dkimRecordName(key, domain);
    const txt = dkimTxtRecord(key);
    // Bare LF and a long folded header: the queue normalises line endings before signing.
    const raw = new TextEncoder().encode(
      "From: Me <me@hearth.localhost>\nTo: friend@remote.example\r\n" +
        "Subject: a signed message\r\n with a folded subject\r\n" +
        "Date: Mon, 30 Nov 2026 10:00:00 +0000\r\nMessage-ID: <dkim-py@hearth.localhost>\r\n" +
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
        "Hello,\n\nthis body has  double  spaces and trailing blanks   \r\n\r\n\r\n",
    );
    const signed = await signingPreparer(domain, key)(raw);

    const good = await verify(signed, name, txt);
    assertEquals([good.code, good.stdout.trim()], [0, "pass"], good.stderr);

    const tampered = new TextDecoder().decode(signed).replace("Hello,", "Hullo,");
    const bad = await verify(new TextEncoder().encode(tampered), name, txt);
    assertEquals([bad.code, bad.stdout.trim()], [1, "fail"], bad.stderr);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
