import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { dnsRecords, formatBind } from "../../home/dns_records.ts";
import { dkimTxtRecord, ensureDkimKey } from "../../home/queue/dkim.ts";
import { loadConfig } from "../../src/config.ts";

Deno.test("dnsRecords() lists MX, SPF, the box's DKIM key and DMARC; bind output splits long TXT", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hearth-dns-" });
  try {
    const config = await loadConfig(dir, { domain: "example.org", hostname: "mail.example.org" });
    const records = await dnsRecords(config);
    assertEquals(records.map((r) => [r.name, r.type]), [
      ["example.org.", "MX"],
      ["example.org.", "TXT"],
      ["hearth._domainkey.example.org.", "TXT"],
      ["_dmarc.example.org.", "TXT"],
    ]);
    assertEquals(records[0].value, "10 mail.example.org.");
    assertEquals(records[2].value, dkimTxtRecord(await ensureDkimKey(dir)));
    const bind = formatBind(records);
    // An RSA-2048 key record is longer than one 255-byte TXT string (RFC 1035 §3.3.14).
    const dkimLine = bind.split("\n").find((l) => l.startsWith("hearth._domainkey"))!;
    assert(/\( "v=DKIM1; k=rsa; p=[^"]{200,}" "[^"]+" \)$/.test(dkimLine), dkimLine);
    for (const m of dkimLine.matchAll(/"([^"]*)"/g)) assert(m[1].length <= 255);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
