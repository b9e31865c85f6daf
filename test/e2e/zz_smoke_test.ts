import { ImapFlow } from "imapflow";
import { startTestBox } from "/work/main/test/e2e/harness.ts";
Deno.test("smoke", async () => {
  const box = await startTestBox();
  try {
    const c = new ImapFlow({ host: "127.0.0.1", port: box.tlsPort, secure: true, tls: { ca: [box.caPem], servername: "localhost" }, auth: { user: box.address, pass: box.password }, logger: false });
    await c.connect();
    console.log((await c.list()).map((m) => m.path));
    const mb = await c.mailboxOpen("INBOX");
    console.log(mb.exists);
    await c.logout();
  } finally { await box.stop(); }
});
