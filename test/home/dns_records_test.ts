import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { Buffer } from "node:buffer";
import { dkimVerify } from "mailauth/lib/dkim/verify.js";
import { dnsRecords, formatBind } from "../../home/dns_records.ts";
import { dkimTxtRecord, ensureDkimKey, signMessage } from "../../home/queue/dkim.ts";
import { loadConfig } from "../../src/config.ts";
import { mailauthResolver, TestResolver } from "../../src/dns.ts";
import { mtaStsPolicyId, mtaStsPolicyText } from "../../src/mail/mta_sts_policy.ts";

Deno.test("dnsRecords() lists MX, SPF, the box's DKIM key and DMARC; bind output splits long TXT", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hearth-dns-" });
  try {
    const config = await loadConfig(dir, { domain: "example.org", hostname: "mail.example.org" });
    const records = await dnsRecords(config);
    assertEquals(records.slice(0, 4).map((r) => [r.name, r.type]), [
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

async function withConfig(
  overrides: Parameters<typeof loadConfig>[1],
  fn: (config: Awaited<ReturnType<typeof loadConfig>>) => Promise<void>,
) {
  const dir = await Deno.makeTempDir({ prefix: "hearth-dns-" });
  try {
    await fn(
      await loadConfig(dir, { domain: "example.org", hostname: "home.example.org", ...overrides }),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("dnsRecords() gives every record of the edge layout, well-formed", async () => {
  await withConfig({ edgeHostname: "mx.example.org" }, async (config) => {
    const records = await dnsRecords(config);
    const byName = new Map(records.map((r) => [`${r.type} ${r.name}`, r.value]));
    const policy = mtaStsPolicyText({ mode: "testing", mx: ["mx.example.org"] });
    assertEquals(Object.fromEntries([...byName].filter(([k]) => !k.includes("_domainkey"))), {
      "MX example.org.": "10 mx.example.org.",
      "TXT example.org.": "v=spf1 mx -all",
      "TXT _dmarc.example.org.": "v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@example.org",
      "TXT _mta-sts.example.org.": `v=STSv1; id=${await mtaStsPolicyId(policy)}`,
      "CNAME mta-sts.example.org.": "mx.example.org.",
      "TXT _smtp._tls.example.org.": "v=TLSRPTv1; rua=mailto:tls-reports@example.org",
      "SRV _submissions._tcp.example.org.": "0 1 465 home.example.org.",
      "SRV _submission._tcp.example.org.": "10 1 587 home.example.org.",
      "SRV _imaps._tcp.example.org.": "0 1 993 home.example.org.",
      "SRV _imap._tcp.example.org.": "10 1 143 home.example.org.",
      "SRV _pop3s._tcp.example.org.": "0 0 0 .",
      "SRV _pop3._tcp.example.org.": "0 0 0 .",
      "CNAME autoconfig.example.org.": "mx.example.org.",
      "CNAME autodiscover.example.org.": "mx.example.org.",
    });
    // RFC 8461 §3.1: id is 1 to 32 letters and digits.
    assert(/^v=STSv1; id=[A-Za-z0-9]{1,32}$/.test(byName.get("TXT _mta-sts.example.org.")!));
    for (const r of records) {
      assert(r.name.endsWith("."), r.name);
      assert(r.purpose.length > 10);
      if (r.type === "SRV") assert(/^\d+ \d+ \d+ (\.|[a-z0-9.-]+\.)$/.test(r.value), r.value);
      if (r.type === "CNAME" || r.type === "MX") assert(r.value.endsWith("."), r.value);
    }
    // bind: one comment and one record line each, every field present and TXT quoted.
    const lines = formatBind(records).split("\n");
    assertEquals(lines.length, records.length * 2);
    for (let i = 0; i < records.length; i++) {
      assert(lines[2 * i].startsWith("; "));
      const [name, ttl, cls, type, ...rest] = lines[2 * i + 1].split("\t");
      assertEquals([name, ttl, cls, type], [records[i].name, "3600", "IN", records[i].type]);
      const data = rest.join("\t");
      if (type === "TXT") {
        assertEquals([...data.matchAll(/"([^"]*)"/g)].map((m) => m[1]).join(""), records[i].value);
      } else assertEquals(data, records[i].value);
    }
    // json: the same records, as `hearth dns --format json` prints them.
    assertEquals(JSON.parse(JSON.stringify(records)), records);
  });
});

Deno.test("the printed DKIM record verifies a signature made by the box", async () => {
  await withConfig({}, async (config) => {
    const records = await dnsRecords(config);
    const line = formatBind(records).split("\n").find((l) => l.startsWith("hearth._domainkey"))!;
    const strings = [...line.matchAll(/"([^"]*)"/g)].map((m) => m[1]);
    const dns = new TestResolver().txt("hearth._domainkey.example.org", strings);
    const raw = new TextEncoder().encode(
      "From: me@example.org\r\nTo: you@example.net\r\nSubject: hello\r\n" +
        "Date: Mon, 30 Nov 2026 12:00:00 +0000\r\nMessage-ID: <1@example.org>\r\n\r\nHi.\r\n",
    );
    const signed = await signMessage(raw, {
      domain: "example.org",
      key: await ensureDkimKey(config.dataDir),
    });
    const verdict = await dkimVerify(Buffer.from(signed), { resolver: mailauthResolver(dns) });
    assertEquals(verdict.results.map((r: { status: { result: string } }) => r.status.result), [
      "pass",
    ]);
  });
});

Deno.test("the MTA-STS id changes when the policy changes, and only then", async () => {
  const id = async (o: Parameters<typeof loadConfig>[1]) => {
    let value = "";
    await withConfig(o, async (config) => {
      value = (await dnsRecords(config)).find((r) => r.name === "_mta-sts.example.org.")!.value;
    });
    return value;
  };
  const base = await id({ edgeHostname: "mx.example.org" });
  assertEquals(await id({ edgeHostname: "mx.example.org" }), base);
  assert(await id({ edgeHostname: "mx2.example.org" }) !== base);
  assert(await id({ edgeHostname: "mx.example.org", mtaStsMode: "enforce" }) !== base);
});
