// The edge's MTA-STS policy and mail client autoconfiguration in-process (app.request): the
// policy for Host mta-sts.DOMAIN, 404 for domains no home serves, and well-formed autoconfig,
// autodiscover and Apple profile documents naming the right hosts, ports and TLS modes.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { createApp } from "../../edge/app.ts";
import { escapeXml } from "../../edge/client_config.ts";
import { EdgeStore } from "../../edge/store.ts";
import { generateSigningKey } from "../../src/crypto/device.ts";
import { log } from "../../src/log.ts";
import { children, childText, parseXml, plistValue } from "./xml_check.ts";

log.setLevel("warn");

const servers = {
  imap: { host: "home.example.org", tlsPort: 993, starttlsPort: 143 },
  submission: { host: "home.example.org", tlsPort: 465, starttlsPort: 587 },
};

async function setUp(mode: "testing" | "enforce" = "testing") {
  const kv = await Deno.openKv(":memory:");
  const store = new EdgeStore(kv);
  const key = await generateSigningKey();
  await store.registerHome(await store.createPairing("example.org"), key.publicKey);
  const app = createApp({
    store,
    hostname: "mx.example.org",
    mailClients: servers,
    mtaSts: { mode },
  });
  return { app, close: () => kv.close() };
}

Deno.test("GET /.well-known/mta-sts.txt answers the policy as text/plain for mta-sts.DOMAIN", async () => {
  const t = await setUp("enforce");
  try {
    const res = await t.app.request("/.well-known/mta-sts.txt", {
      headers: { host: "MTA-STS.Example.org:8443" },
    });
    assertEquals(res.status, 200);
    assert(res.headers.get("content-type")!.startsWith("text/plain"));
    assertEquals(
      await res.text(),
      "version: STSv1\r\nmode: enforce\r\nmx: mx.example.org\r\nmax_age: 604800\r\n",
    );
  } finally {
    t.close();
  }
});

Deno.test("the MTA-STS policy is 404 for a domain no home serves and for a host without mta-sts.", async () => {
  const t = await setUp();
  try {
    for (const host of ["mta-sts.other.example", "example.org", "mta-sts.", "mta-sts.a..b"]) {
      const res = await t.app.request("/.well-known/mta-sts.txt", { headers: { host } });
      assertEquals(res.status, 404, host);
      await res.body?.cancel();
    }
    const res = await t.app.request("/.well-known/mta-sts.txt", {
      headers: { host: "mta-sts.example.org" },
    });
    assert((await res.text()).includes("mode: testing\r\n"));
  } finally {
    t.close();
  }
});

Deno.test("Thunderbird autoconfig is well-formed XML with IMAP 993/143 and SMTP 465/587", async () => {
  const t = await setUp();
  try {
    for (
      const [path, host] of [
        ["/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=me%40example.org", "x"],
        ["/mail/config-v1.1.xml", "autoconfig.example.org"],
        ["/mail/config-v1.1.xml?emailaddress=Me%40EXAMPLE.org", "autoconfig.example.org"],
      ]
    ) {
      const res = await t.app.request(path, { headers: { host } });
      assertEquals(res.status, 200, path);
      assert(res.headers.get("content-type")!.includes("xml"));
      const root = parseXml(await res.text());
      assertEquals(root.name, "clientConfig");
      assertEquals(root.attrs.version, "1.1");
      const provider = children(root, "emailProvider")[0];
      assertEquals(provider.attrs.id, "example.org");
      assertEquals(childText(provider, "domain"), "example.org");
      const summary = (tag: string) =>
        children(provider, tag).map((s) => [
          s.attrs.type,
          childText(s, "hostname"),
          childText(s, "port"),
          childText(s, "socketType"),
          childText(s, "username"),
          childText(s, "authentication"),
        ]);
      assertEquals(summary("incomingServer"), [
        ["imap", "home.example.org", "993", "SSL", "%EMAILADDRESS%", "password-cleartext"],
        ["imap", "home.example.org", "143", "STARTTLS", "%EMAILADDRESS%", "password-cleartext"],
      ]);
      assertEquals(summary("outgoingServer"), [
        ["smtp", "home.example.org", "465", "SSL", "%EMAILADDRESS%", "password-cleartext"],
        ["smtp", "home.example.org", "587", "STARTTLS", "%EMAILADDRESS%", "password-cleartext"],
      ]);
    }
    for (
      const path of [
        "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=me%40other.example",
        "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=%3Cscript%3E",
      ]
    ) {
      const res = await t.app.request(path);
      assertEquals(res.status, 404, path);
      await res.body?.cancel();
    }
  } finally {
    t.close();
  }
});

Deno.test("POST /autodiscover/autodiscover.xml answers the Outlook response schema", async () => {
  const t = await setUp();
  try {
    const request = (address: string) =>
      `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>${address}</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>`;
    for (const path of ["/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"]) {
      const res = await t.app.request(path, {
        method: "POST",
        headers: { "content-type": "text/xml" },
        body: request("o'neil&co@example.org"),
      });
      assertEquals(res.status, 200);
      const body = await res.text();
      assert(body.includes("o&apos;neil&amp;co@example.org"), body);
      const root = parseXml(body);
      assertEquals(root.name, "Autodiscover");
      assertEquals(
        root.attrs.xmlns,
        "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006",
      );
      const response = children(root, "Response")[0];
      assertEquals(
        response.attrs.xmlns,
        "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a",
      );
      const account = children(response, "Account")[0];
      assertEquals(childText(account, "AccountType"), "email");
      assertEquals(childText(account, "Action"), "settings");
      assertEquals(
        children(account, "Protocol").map((p) =>
          ["Type", "Server", "Port", "SSL", "LoginName", "AuthRequired"].map((k) => childText(p, k))
        ),
        [
          ["IMAP", "home.example.org", "993", "on", "o'neil&co@example.org", "on"],
          ["SMTP", "home.example.org", "465", "on", "o'neil&co@example.org", "on"],
        ],
      );
    }
    const other = await t.app.request("/autodiscover/autodiscover.xml", {
      method: "POST",
      body: request("me@other.example"),
    });
    assertEquals(other.status, 404);
    await other.body?.cancel();
    const none = await t.app.request("/autodiscover/autodiscover.xml", {
      method: "POST",
      body: "<Autodiscover/>",
    });
    assertEquals(none.status, 400);
    await none.body?.cancel();
  } finally {
    t.close();
  }
});

Deno.test("GET /apple/hearth.mobileconfig is a plist with a com.apple.mail.managed payload", async () => {
  const t = await setUp();
  try {
    const res = await t.app.request("/apple/hearth.mobileconfig?email=me%40example.org");
    assertEquals(res.status, 200);
    assertEquals(res.headers.get("content-type"), "application/x-apple-aspen-config");
    const root = parseXml(await res.text());
    assertEquals(root.name, "plist");
    const profile = plistValue(root.children[0]) as Record<string, unknown>;
    assertEquals(profile.PayloadType, "Configuration");
    assertEquals(profile.PayloadVersion, 1);
    assert(/^[0-9A-F]{8}-[0-9A-F]{4}-5[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$/.test(
      profile.PayloadUUID as string,
    ));
    const [account] = profile.PayloadContent as Record<string, unknown>[];
    assertEquals(account.PayloadType, "com.apple.mail.managed");
    assertEquals(account.EmailAccountType, "EmailTypeIMAP");
    assertEquals(account.EmailAddress, "me@example.org");
    assertEquals(account.IncomingMailServerHostName, "home.example.org");
    assertEquals(account.IncomingMailServerPortNumber, 993);
    assertEquals(account.IncomingMailServerUseSSL, true);
    assertEquals(account.IncomingMailServerUsername, "me@example.org");
    assertEquals(account.OutgoingMailServerHostName, "home.example.org");
    assertEquals(account.OutgoingMailServerPortNumber, 465);
    assertEquals(account.OutgoingMailServerUseSSL, true);
    assertEquals(account.OutgoingPasswordSameAsIncomingPassword, true);
    assert(account.PayloadUUID !== profile.PayloadUUID);
    // The same address gets the same UUIDs: installing again replaces the profile.
    const again = await t.app.request("/apple/hearth.mobileconfig?email=me%40example.org");
    assert((await again.text()).includes(profile.PayloadUUID as string));
    for (
      const [q, status] of [["", 400], ["?email=bad", 400], ["?email=me%40other.example", 404]]
    ) {
      const r = await t.app.request(`/apple/hearth.mobileconfig${q}`);
      assertEquals(r.status, status, String(q));
      await r.body?.cancel();
    }
  } finally {
    t.close();
  }
});

Deno.test("escapeXml() escapes markup and drops characters XML cannot carry", () => {
  assertEquals(
    escapeXml(`<a href="x">'&'</a>\u0001`),
    "&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;",
  );
  assertEquals(parseXml(`<v>${escapeXml("]]> & <b>\u0000")}</v>`).text, "]]> & <b>");
});
