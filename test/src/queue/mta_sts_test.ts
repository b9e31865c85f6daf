/**
 * MTA-STS enforcement (RFC 8461) in the direct transport, against fake MX
 * hosts on loopback with certificates from a test CA.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { TestResolver } from "../../../src/dns.ts";
import { issueServerCertificate, makeCertificateAuthority } from "../../../src/tls.ts";
import { type MtaStsPolicy, mxAllowed, TestMtaSts } from "../../../src/queue/mta_sts.ts";
import { DirectTransport } from "../../../src/queue/transport.ts";
import { type FakeMx, type FakeMxOptions, startFakeMx } from "./fake_mx.ts";

const ca = await makeCertificateAuthority("Hearth queue test CA");
const validTls = await issueServerCertificate(ca, ["mx.remote.test"]);
const message = new TextEncoder().encode(
  "From: a@home.test\r\nTo: bob@remote.test\r\nSubject: STS\r\n\r\nhi\r\n",
);

/** Delivers one message to bob@remote.test through a fake MX under `policy`. */
async function deliverUnder(
  policy: MtaStsPolicy | null,
  mxOpts: FakeMxOptions,
): Promise<{ mx: FakeMx; result: { kind: string; reason?: string } }> {
  const mx = await startFakeMx(mxOpts);
  try {
    const sts = new TestMtaSts();
    if (policy) sts.set("remote.test", policy);
    const transport = new DirectTransport({
      resolver: new TestResolver().mx("remote.test", "mx.remote.test").a(
        "mx.remote.test",
        "127.0.0.1",
      ),
      hostname: "box.home.test",
      portFor: () => mx.port,
      mtaSts: sts,
      tlsCa: [ca.certPem],
      connectTimeoutMs: 5_000,
      socketTimeoutMs: 10_000,
    });
    const results = await transport.deliver({
      from: "a@home.test",
      recipients: ["bob@remote.test"],
      message,
    });
    return { mx, result: results.get("bob@remote.test")! };
  } finally {
    await mx.close();
  }
}

function bounded(name: string, fn: () => Promise<void>, ms = 30_000) {
  Deno.test({
    name,
    sanitizeOps: false,
    sanitizeResources: false,
    async fn() {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
      });
      try {
        await Promise.race([fn(), timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
  });
}

const enforce: MtaStsPolicy = { mode: "enforce", mx: ["mx.remote.test"] };

bounded("enforce: delivered over TLS to a listed MX with a valid certificate", async () => {
  const { mx, result } = await deliverUnder(enforce, { tls: validTls });
  assertEquals(result.kind, "delivered");
  assertEquals(mx.received.length, 1);
  assert(mx.received[0].secure);
});

bounded("enforce: an MX the policy does not list gets nothing; delivery is deferred", async () => {
  const { mx, result } = await deliverUnder(
    { mode: "enforce", mx: ["*.other.test"] },
    { tls: validTls },
  );
  assertEquals(result.kind, "transient");
  assert(result.reason!.includes("MTA-STS"), result.reason);
  assertEquals(mx.rcptAttempts, []);
});

bounded("enforce: an untrusted certificate defers delivery", async () => {
  const { mx, result } = await deliverUnder(enforce, {}); // smtp-server's self-signed certificate
  assertEquals(result.kind, "transient");
  assertEquals(mx.received.length, 0);
});

bounded(
  "enforce: an MX without STARTTLS defers delivery (no downgrade to clear text)",
  async () => {
    const { mx, result } = await deliverUnder(enforce, { starttls: false });
    assertEquals(result.kind, "transient");
    assertEquals(mx.received.length, 0);
  },
);

bounded(
  "testing mode and no policy: opportunistic TLS delivers despite a bad certificate",
  async () => {
    const testing = await deliverUnder({ mode: "testing", mx: ["*.other.test"] }, {});
    assertEquals(testing.result.kind, "delivered");
    const none = await deliverUnder(null, { starttls: false });
    assertEquals(none.result.kind, "delivered");
  },
);

Deno.test("mxAllowed() matches names and one-label wildcards only", () => {
  const policy: MtaStsPolicy = { mode: "enforce", mx: ["mx.example.net", "*.mail.example.net"] };
  assert(mxAllowed("mx.example.net", policy));
  assert(mxAllowed("MX.example.net.", policy));
  assert(mxAllowed("a.mail.example.net", policy));
  assert(!mxAllowed("a.b.mail.example.net", policy));
  assert(!mxAllowed("mail.example.net", policy));
  assert(!mxAllowed("evilmx.example.net", policy));
});
