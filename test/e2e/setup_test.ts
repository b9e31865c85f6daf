// `hearth init` run as a script would (flags, password on stdin), then `hearth dns --format
// json`; and the edge's MTA-STS policy and autoconfiguration fetched over HTTPS, trusting only
// the edge's private CA, as a mail client or a sending MTA would fetch them.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { startEdge } from "../../edge/main.ts";
import { generateSigningKey } from "../../src/crypto/device.ts";
import { log } from "../../src/log.ts";
import { children, childText, parseXml, plistValue } from "../edge/xml_check.ts";

log.setLevel("warn");
const root = new URL("../../", import.meta.url).pathname;

async function hearth(args: string[], stdin: string) {
  const env = Deno.env.toObject();
  delete env.HEARTH_DATA;
  delete env.HEARTH_PASSWORD;
  env.HEARTH_SCRYPT_LOG_N = "10";
  env.NO_COLOR = "1";
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", ...args],
    cwd: root,
    env,
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(stdin));
  await w.close();
  const out = await child.output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

Deno.test("hearth init with flags makes keys and the first account; hearth dns --format json lists the records", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hearth-init-" });
  try {
    const flags = [
      "init",
      "--data",
      dir,
      "--domain",
      "example.org",
      "--account",
      "alice@example.org",
      "--password-stdin",
      "--edge",
      "here",
      "--edge-hostname",
      "mx.example.org",
    ];
    const first = await hearth(flags, "correct horse battery\n");
    assertEquals(first.code, 0, first.stderr);
    assert(first.stdout.includes("Created alice@example.org."), first.stdout);
    const recovery = first.stdout.match(/AGE-SECRET-KEY-1[0-9A-Z]+/g) ?? [];
    assertEquals(recovery.length, 1, "the recovery key is printed exactly once");
    assert(/store it offline/.test(first.stdout));
    assert(/Next:\n {2}1\. Publish the DNS records: +hearth dns/.test(first.stdout), first.stdout);
    assert(first.stdout.includes("hearth up"));
    const dkim = await Deno.readTextFile(`${dir}/dkim/hearth.key`);
    const cert = await Deno.readTextFile(`${dir}/tls/cert.pem`);

    // Safe to re-run: nothing is overwritten, no second recovery key.
    const again = await hearth(flags, "another password\n");
    assertEquals(again.code, 0, again.stderr);
    assert(again.stdout.includes("nothing was overwritten"), again.stdout);
    assert(again.stdout.includes("alice@example.org exists already"), again.stdout);
    assert(!again.stdout.includes("AGE-SECRET-KEY"));
    assertEquals(await Deno.readTextFile(`${dir}/dkim/hearth.key`), dkim);
    assertEquals(await Deno.readTextFile(`${dir}/tls/cert.pem`), cert);

    const other = await hearth(["init", "--data", dir, "--domain", "other.example"], "");
    assertEquals(other.code, 2);
    assert(/already set up for example\.org/.test(other.stderr), other.stderr);

    const dns = await hearth(["dns", "--data", dir, "--format", "json"], "");
    assertEquals(dns.code, 0, dns.stderr);
    const records: { name: string; type: string; value: string }[] = JSON.parse(dns.stdout);
    const find = (type: string, name: string) =>
      records.find((r) => r.type === type && r.name === name)?.value;
    assertEquals(find("MX", "example.org."), "10 mx.example.org.");
    assertEquals(find("TXT", "example.org."), "v=spf1 mx -all");
    assert(find("TXT", "hearth._domainkey.example.org.")!.startsWith("v=DKIM1; k=rsa; p=MII"));
    assert(find("TXT", "_dmarc.example.org.")!.includes("rua=mailto:dmarc-reports@example.org"));
    assert(/^v=STSv1; id=[0-9a-f]{20}$/.test(find("TXT", "_mta-sts.example.org.")!));
    assertEquals(find("CNAME", "mta-sts.example.org."), "mx.example.org.");
    assert(find("TXT", "_smtp._tls.example.org.")!.startsWith("v=TLSRPTv1; rua=mailto:"));
    assertEquals(find("SRV", "_submissions._tcp.example.org."), "0 1 465 mx.example.org.");
    assertEquals(find("SRV", "_imaps._tcp.example.org."), "0 1 993 mx.example.org.");
    assertEquals(find("CNAME", "autoconfig.example.org."), "mx.example.org.");
    assertEquals(find("CNAME", "autodiscover.example.org."), "mx.example.org.");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** One HTTP/1.1 request over TLS with a Host header of our choosing (fetch does not allow one). */
async function httpsGetWithHost(port: number, ca: string, host: string, path: string) {
  const conn = await Deno.connectTls({ hostname: "localhost", port, caCerts: [ca] });
  try {
    await conn.write(
      new TextEncoder().encode(
        `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
      ),
    );
    const text = new TextDecoder().decode(
      new Uint8Array(await new Response(conn.readable).arrayBuffer()),
    );
    const [head, body] = [
      text.slice(0, text.indexOf("\r\n\r\n")),
      text.slice(text.indexOf("\r\n\r\n") + 4),
    ];
    return { status: Number(head.split(" ")[1]), head: head.toLowerCase(), body };
  } catch (e) {
    conn.close();
    throw e;
  }
}

Deno.test("the edge serves the MTA-STS policy and client autoconfiguration over HTTPS", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hearth-wellknown-" });
  const edge = await startEdge({
    dataDir: dir,
    hostname: "localhost",
    listen: "127.0.0.1",
    httpPort: 0,
    httpsPort: 0,
    smtpPort: null,
    mailClients: {
      imap: { host: "home.example.org", tlsPort: 993, starttlsPort: 143 },
      submission: { host: "home.example.org", tlsPort: 465, starttlsPort: 587 },
    },
    mtaSts: { mode: "enforce" },
  });
  const ca = await Deno.readTextFile(`${dir}/tls/ca.pem`);
  const client = Deno.createHttpClient({ caCerts: [ca] });
  try {
    const key = await generateSigningKey();
    await edge.store.registerHome(await edge.store.createPairing("example.org"), key.publicKey);
    const base = `https://localhost:${edge.httpsPort}`;

    const policy = await httpsGetWithHost(
      edge.httpsPort!,
      ca,
      "mta-sts.example.org",
      "/.well-known/mta-sts.txt",
    );
    assertEquals(policy.status, 200);
    assert(policy.head.includes("content-type: text/plain"), policy.head);
    assertEquals(
      policy.body,
      "version: STSv1\r\nmode: enforce\r\nmx: localhost\r\nmax_age: 604800\r\n",
    );
    const unknown = await httpsGetWithHost(
      edge.httpsPort!,
      ca,
      "mta-sts.other.example",
      "/.well-known/mta-sts.txt",
    );
    assertEquals(unknown.status, 404);

    const auto = await fetch(
      `${base}/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=me%40example.org`,
      { client },
    );
    assertEquals(auto.status, 200);
    const provider = children(parseXml(await auto.text()), "emailProvider")[0];
    assertEquals(
      children(provider, "incomingServer").map((s) => childText(s, "port")),
      ["993", "143"],
    );

    const discover = await fetch(`${base}/autodiscover/autodiscover.xml`, {
      client,
      method: "POST",
      body:
        "<Autodiscover><Request><EMailAddress>me@example.org</EMailAddress></Request></Autodiscover>",
    });
    assertEquals(discover.status, 200);
    const account =
      children(children(parseXml(await discover.text()), "Response")[0], "Account")[0];
    assertEquals(children(account, "Protocol").map((p) => childText(p, "Server")), [
      "home.example.org",
      "home.example.org",
    ]);

    const profile = await fetch(`${base}/apple/hearth.mobileconfig?email=me%40example.org`, {
      client,
    });
    assertEquals(profile.headers.get("content-type"), "application/x-apple-aspen-config");
    const plist = plistValue(parseXml(await profile.text()).children[0]) as {
      PayloadContent: Record<string, unknown>[];
    };
    assertEquals(plist.PayloadContent[0].IncomingMailServerHostName, "home.example.org");

    // The plain HTTP listener serves the same app (behind a TLS-terminating proxy).
    const plain = await fetch(`${edge.url}/v1/health`);
    assertEquals(plain.status, 200);
    await plain.body?.cancel();
  } finally {
    client.close();
    await edge.close();
    await Deno.remove(dir, { recursive: true });
  }
});
