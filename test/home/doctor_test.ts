/**
 * `hearth doctor` on a deliberately broken setup (wrong SPF, missing DKIM, expired certificate,
 * edge unreachable) and on a good one (every record published, fresh certificate, a running
 * edge and home box). Loopback only.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { loadConfig } from "../../src/config.ts";
import { initDataDir, startHome } from "../../home/box.ts";
import { dnsRecords } from "../../home/dns_records.ts";
import {
  doctorContext,
  doctorExitCode,
  type DoctorResult,
  formatDoctor,
  runDoctor,
} from "../../home/doctor.ts";
import { TestRecordResolver } from "../../home/doctor_dns.ts";
import { homeSigningKey, linkToEdge } from "../../home/edge_link.ts";
import { openStore } from "../../home/box.ts";
import { startEdge } from "../../edge/main.ts";
import { issueServerCertificate } from "../../src/tls.ts";
import { withoutAddresses } from "../../home/probes.ts";
import { freeLowPort } from "../free_low_port.ts";

const dayMs = 24 * 3600_000;
const plenty = () => Promise.resolve({ availableBytes: 50 * 2 ** 30, totalBytes: 100 * 2 ** 30 });

async function setUp(dir: string) {
  const config = await loadConfig(dir, {
    domain: "example.org",
    hostname: "localhost",
    edgeHostname: "mx.example.org",
    mailHostname: "localhost",
    imapPort: freeLowPort(),
    imapsPort: freeLowPort(),
    mxPort: freeLowPort(),
    submissionPort: freeLowPort(),
    submissionsPort: freeLowPort(),
    scryptLogN: 10,
  });
  await initDataDir(config);
  return config;
}

function byName(results: DoctorResult[], name: string): DoctorResult {
  const r = results.find((r) => r.name === name);
  assert(r, `no check named ${name} in ${results.map((r) => r.name)}`);
  return r;
}

Deno.test("hearth doctor names each problem of a broken setup and its fix", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hearth-doctor-" });
  try {
    const config = await setUp(dir);
    const records = await dnsRecords(config);
    // Wrong SPF, no DKIM key; the rest as `hearth dns` says.
    const resolver = new TestRecordResolver()
      .publish(records, (r) => !(r.type === "TXT" && /^v=(spf1|DKIM1)/.test(r.value)))
      .txt("example.org", "v=spf1 ip4:192.0.2.1 -all");
    // An expired certificate from the box's own CA.
    const ca = {
      certPem: await Deno.readTextFile(`${dir}/tls/ca.pem`),
      keyPem: await Deno.readTextFile(`${dir}/tls/ca-key.pem`),
    };
    const expired = await issueServerCertificate(ca, ["localhost"], {
      notBefore: new Date(Date.now() - 400 * dayMs),
      notAfter: new Date(Date.now() - 2 * dayMs),
    });
    await Deno.writeTextFile(`${dir}/tls/cert.pem`, expired.certPem);
    // An edge link to a port where nothing listens.
    const closed = freeLowPort();
    await homeSigningKey(dir);
    await Deno.writeTextFile(
      `${dir}/edge-link.json`,
      JSON.stringify({ url: `http://127.0.0.1:${closed}`, homeId: "h1", domain: "example.org" }),
    );

    const ctx = await doctorContext(config, { resolver, freeSpace: plenty, timeoutMs: 2_000 });
    const results = await runDoctor(ctx);
    const text = formatDoctor(results);

    const spf = byName(results, "dns TXT example.org");
    assertEquals(spf.status, "fail", text);
    assert(spf.sentence.includes("v=spf1 ip4:192.0.2.1 -all"), spf.sentence);
    assert(spf.fix?.includes('"v=spf1 mx -all"'), spf.fix);

    const dkim = byName(results, "dns TXT hearth._domainkey.example.org");
    assertEquals(dkim.status, "fail", text);
    assert(/no DKIM record is published/.test(dkim.sentence), dkim.sentence);
    assert(dkim.fix?.includes("v=DKIM1; k=rsa; p="), dkim.fix);

    const cert = byName(results, "certificate");
    assertEquals(cert.status, "fail", text);
    assert(/expired on \d{4}-\d\d-\d\d/.test(cert.sentence), cert.sentence);
    assert(cert.fix?.includes("hearth init"), cert.fix);

    const edge = byName(results, "edge link");
    assertEquals(edge.status, "fail", text);
    assert(edge.sentence.includes(`127.0.0.1:${closed} is unreachable`), edge.sentence);
    assert(edge.fix?.includes("start the edge"), edge.fix);

    // The records that are right pass; the box is stopped, which is a warning only.
    assertEquals(byName(results, "dns MX example.org").status, "ok", text);
    assertEquals(byName(results, "dns TXT _dmarc.example.org").status, "ok", text);
    assertEquals(byName(results, "listeners").status, "warn", text);
    assert(byName(results, "listeners").sentence.includes("not running"));

    assertEquals(doctorExitCode(results), 1);
    assert(text.includes("✗ certificate: the TLS certificate expired"), text);
    assert(text.includes("    fix: publish this record"), text);
    assert(/4 problems to fix/.test(text), text);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("hearth doctor on a good setup says all is well", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hearth-doctor-" });
  const edgeDir = await Deno.makeTempDir({ prefix: "hearth-doctor-edge-" });
  const edge = await startEdge({
    dataDir: edgeDir,
    hostname: "localhost",
    listen: "127.0.0.1",
    httpPort: 0,
    smtpPort: null,
  });
  let box;
  try {
    const config = await setUp(dir);
    const { kv } = await openStore(config);
    try {
      await linkToEdge(dir, kv, edge.url, await edge.store.createPairing("example.org"));
    } finally {
      kv.close();
    }
    box = await startHome(config, { queue: null });
    const resolver = new TestRecordResolver().publish(await dnsRecords(config));
    const ctx = await doctorContext(config, { resolver, freeSpace: plenty, timeoutMs: 3_000 });
    const results = await runDoctor(ctx);
    const text = formatDoctor(results);
    assertEquals(results.filter((r) => r.status === "fail"), [], text);
    // No backup peer is configured in this setup: the only warning.
    assertEquals(results.filter((r) => r.status === "warn").map((r) => r.name), ["backups"], text);
    assertEquals(doctorExitCode(results), 0);
    assert(text.endsWith("All is well: no problem found (1 warning above)."), text);
    assert(byName(results, "edge link").sentence.includes("no mail waits there"), text);
    assert(byName(results, "clock").sentence.includes("agrees with the edge"), text);
    assert(byName(results, "listeners").sentence.includes("answers on IMAP"), text);
  } finally {
    await box?.close();
    await edge.close();
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(edgeDir, { recursive: true });
  }
});

Deno.test("hearth doctor judges published records by meaning, not spelling", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hearth-doctor-" });
  try {
    const config = await setUp(dir);
    const records = await dnsRecords(config);
    const resolver = new TestRecordResolver()
      .publish(records, (r) => !(r.type === "TXT" && /^v=(spf1|DMARC1)/.test(r.value)))
      .txt("example.org", "v=spf1  mx include:_spf.example.net ~all")
      .txt("_dmarc.example.org", "v=DMARC1;p=none");
    const results = await runDoctor(
      await doctorContext(config, { resolver, freeSpace: plenty, link: null }),
    );
    assertEquals(byName(results, "dns TXT example.org").status, "ok");
    const dmarc = byName(results, "dns TXT _dmarc.example.org");
    assertEquals(dmarc.status, "warn");
    assert(dmarc.sentence.includes("p=none"), dmarc.sentence);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("withoutAddresses() keeps only the domain of quoted addresses", () => {
  assertEquals(
    withoutAddresses("550 5.1.1 <bob.smith@example.net>: user unknown"),
    "550 5.1.1 <…@example.net>: user unknown",
  );
});
