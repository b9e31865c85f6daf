// Inbound SPF, DKIM and DMARC on the MX (mailauth) with a table resolver: a signed message
// from an authorised host passes and is stored with its Authentication-Results; a forged
// sender whose domain publishes DMARC p=reject is refused with 550 5.7.1 and nothing is stored;
// a failure under p=none is delivered with the verdict recorded.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { Buffer } from "node:buffer";
import { dkimSign } from "mailauth";
import { TestResolver } from "../../src/dns.ts";
import { inbox, splitTrace, startTestBox } from "./harness.ts";
import { RawSmtp } from "./raw_smtp.ts";

const decoder = new TextDecoder();

function dkimKey() {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    publicKeyEncoding: { type: "spki", format: "der" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
  return { privateKey, publicKey: Buffer.from(publicKey).toString("base64") };
}

async function send(port: number, from: string, message: string) {
  const c = await RawSmtp.connect(port);
  try {
    assertEquals((await c.command("EHLO mail.sender.example")).code, 250);
    assertEquals((await c.command(`MAIL FROM:<${from}>`)).code, 250);
    assertEquals((await c.command("RCPT TO:<me@hearth.localhost>")).code, 250);
    return await c.data(message.replace(/\r\n\./g, "\r\n..") + ".\r\n");
  } finally {
    c.close();
  }
}

Deno.test("MX records SPF/DKIM/DMARC results and enforces DMARC p=reject", async () => {
  const key = dkimKey();
  const resolver = new TestResolver()
    .txt("sender.example", "v=spf1 ip4:127.0.0.1 -all")
    .txt("sel._domainkey.sender.example", `v=DKIM1; k=rsa; p=${key.publicKey}`)
    .txt("_dmarc.sender.example", "v=DMARC1; p=reject")
    .txt("bank.example", "v=spf1 -all")
    .txt("_dmarc.bank.example", "v=DMARC1; p=reject")
    .txt("lax.example", "v=spf1 -all")
    .txt("_dmarc.lax.example", "v=DMARC1; p=none");
  const box = await startTestBox({ messages: [], resolver });
  try {
    const body = "From: Alice <alice@sender.example>\r\nTo: me@hearth.localhost\r\n" +
      "Subject: signed\r\n\r\nA signed message.\r\n";
    const signer = { signingDomain: "sender.example", selector: "sel", privateKey: key.privateKey };
    // mailauth 7 reads the keys from signatureData; its type declarations ask for them on top.
    const signed = await dkimSign(body, { ...signer, signatureData: [signer] });
    assertEquals(signed.errors, []);
    const ok = await send(box.mxPort!, "alice@sender.example", signed.signatures + body);
    assertEquals(ok.code, 250, ok.text);

    const forged = await send(
      box.mxPort!,
      "ceo@bank.example",
      "From: CEO <ceo@bank.example>\r\nSubject: wire money\r\n\r\nNow.\r\n",
    );
    assertEquals([forged.code, forged.text.split(" ")[0]], [550, "5.7.1"], forged.text);
    assert(/DMARC policy of bank\.example/.test(forged.text), forged.text);

    const lax = await send(
      box.mxPort!,
      "news@lax.example",
      "From: News <news@lax.example>\r\nSubject: weekly\r\n\r\nNews.\r\n",
    );
    assertEquals(lax.code, 250, lax.text);

    const stored = await inbox(box);
    assertEquals(stored.length, 2, "the forged message is not stored");
    const first = splitTrace(stored[0]);
    const results = first.trace.get("Authentication-Results")!;
    assert(/^Authentication-Results: localhost;/.test(results), results);
    assert(/\bspf=pass\b/.test(results), results);
    assert(/\bdkim=pass header\.i=@sender\.example header\.s=sel\b/.test(results), results);
    assert(/\bdmarc=pass\b/.test(results), results);
    assertEquals(decoder.decode(first.rest), signed.signatures + body);

    const second = splitTrace(stored[1]).trace.get("Authentication-Results")!;
    assert(/\bspf=fail\b/.test(second), second);
    assert(/\bdmarc=fail\b/.test(second), second);
  } finally {
    await box.stop();
  }
});
