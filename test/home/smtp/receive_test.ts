// The MX answers 451 4.3.0 when the store cannot make a message durable, and stores nothing:
// the sender keeps the message and tries again later (RFC 5321 §4.2.5).
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { startMx } from "../../../home/smtp/receive.ts";
import { BlobStore } from "../../../home/store/blobs.ts";
import { AccountRegistry, createAccount } from "../../../home/store/accounts.ts";
import { issueServerCertificate, makeCertificateAuthority } from "../../../src/tls.ts";
import { RawSmtp } from "../../e2e/raw_smtp.ts";

class FailingBlobStore extends BlobStore {
  override put(): Promise<string> {
    return Promise.reject(new Error("disk full"));
  }
}

Deno.test("MX answers 451 4.3.0 when the message cannot be stored", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hearth-mx-" });
  const kv = await Deno.openKv(`${dir}/home.kv`);
  const blobs = new FailingBlobStore(`${dir}/blobs`);
  const registry = new AccountRegistry(kv, blobs);
  try {
    await createAccount(
      kv,
      new BlobStore(`${dir}/blobs`),
      "me@hearth.localhost",
      "password123",
      10,
    );
    const ca = await makeCertificateAuthority("test CA");
    const cert = await issueServerCertificate(ca, ["localhost"]);
    const mx = await startMx({
      kv,
      blobs,
      registry,
      domain: "hearth.localhost",
      hostname: "localhost",
      listen: "127.0.0.1",
      cert,
      port: 0,
    });
    const c = await RawSmtp.connect(mx.ports[0]);
    try {
      await c.command("EHLO client.example.org");
      assertEquals((await c.command("MAIL FROM:<a@example.org>")).code, 250);
      assertEquals((await c.command("RCPT TO:<me@hearth.localhost>")).code, 250);
      // Larger than limits.stagedBlobBytes, so the blob goes to a file (small ones are staged in
      // KV with their record: test/home/store/staging_test.ts covers a failing commit).
      const body = "a line of body text to make the message larger than a staged blob\r\n"
        .repeat(5000);
      const r = await c.data(`Subject: x\r\n\r\n${body}.\r\n`);
      assertEquals([r.code, r.text.split(" ")[0]], [451, "4.3.0"], r.text);
      assertEquals((await c.command("NOOP")).code, 250, "the session goes on");
    } finally {
      c.close();
      await mx.close();
    }
    assertEquals((await Array.fromAsync(kv.list({ prefix: ["arrival"] }))).length, 0);
  } finally {
    await registry.close();
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});
