// Property-based fuzzing of the edge's HTTP API (issue 8), in-process with app.request: random
// methods, paths, headers and bodies, unsigned and correctly signed by a registered home. The
// edge never answers 500 (an internal error means input reached code that did not expect it),
// and every 4xx is JSON with an `error` sentence.
import { ok as assert } from "node:assert/strict";
import fc from "fast-check";
import { createApp } from "../../edge/app.ts";
import { EdgeStore } from "../../edge/store.ts";
import { generateSigningKey } from "../../src/crypto/device.ts";
import { log } from "../../src/log.ts";
import { signRequest } from "../../src/wire/signed_request.ts";
import { fuzzParams } from "./budget.ts";

log.setLevel("error");
const now = Date.parse("2026-11-30T12:00:00Z");

const kv = await Deno.openKv(":memory:");
const store = new EdgeStore(kv, { now: () => now });
const app = createApp({ store, hostname: "edge.test", now: () => now });
const homeKey = await generateSigningKey();
const homeId = await (async () => {
  const token = await store.createPairing("a.test");
  const body = new TextEncoder().encode(JSON.stringify({ token, publicKey: homeKey.publicKey }));
  const headers = await signRequest(homeKey, "new", "POST", "/v1/homes", body, now);
  const res = await app.request("/v1/homes", { method: "POST", headers, body });
  assert(res.status === 201, `registration: ${res.status}`);
  return (await res.json()).homeId as string;
})();

const paths = [
  "/v1/health",
  "/v1/homes",
  "/v1/outbound",
  "/v1/home/accounts",
  "/v1/home/mail",
  "/v1/home/mail/abc",
  "/v1/home/ack",
  "/v1/home/devices/dev-abcdefgh12",
  "/v1/push/key",
  "/v1/devices/dev-abcdefgh12/push",
  "/v1/relay/dev-abcdefgh12",
  "/v1/relay/dev-abcdefgh12/ack",
  "/v1/inbound",
  "/.well-known/mta-sts.txt",
  "/mail/config-v1.1.xml",
  "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=me@a.test",
  "/autodiscover/autodiscover.xml",
  "/apple/hearth.mobileconfig",
  "/v1/nope",
  "/",
];

const method = fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS");
const path = fc.oneof(
  fc.constantFrom(...paths),
  fc.tuple(fc.constantFrom(...paths), fc.string({ maxLength: 12 }))
    .map(([p, s]) => p + "/" + encodeURIComponent(s)),
  fc.tuple(fc.constantFrom(...paths), fc.string({ maxLength: 12 }))
    .map(([p, s]) => `${p}?x=${encodeURIComponent(s)}&limit=${encodeURIComponent(s)}`),
);
const headerName = fc.constantFrom(
  "content-type",
  "content-length",
  "authorization",
  "signature",
  "signature-input",
  "content-digest",
  "date",
  "hearth-mail-from",
  "hearth-rcpt-to",
  "hearth-client-ip",
  "x-other",
);
const headerValue = fc.oneof(
  fc.constantFrom(
    "application/json",
    "message/rfc822",
    "Bearer x",
    "Bearer ",
    "-1",
    "1e400",
    "99999999999",
    "sig1=:AAAA:",
    'sig1=("@method");keyid="x"',
    "sha-256=:x:",
    "me@a.test",
  ),
  fc.string({ maxLength: 30 }).map((s) => s.replace(/[^\x20-\x7e]/g, "")),
);
const json: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.record({
    token: fc.oneof(fc.string(), fc.integer()),
    publicKey: fc.oneof(fc.string(), fc.constant(homeKey.publicKey)),
    accounts: fc.oneof(
      fc.constant(null),
      fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }),
    ),
    ids: fc.array(fc.oneof(fc.string(), fc.integer()), { maxLength: 3 }),
    endpoint: fc.oneof(fc.webUrl(), fc.string()),
    keys: fc.jsonValue({ maxDepth: 1 }),
    recipients: fc.array(fc.string(), { maxLength: 2 }),
    from: fc.string(),
    message: fc.string(),
  }, { requiredKeys: [] }),
);
const body = fc.oneof(
  fc.constant(null),
  json.map((v) => new TextEncoder().encode(JSON.stringify(v))),
  fc.uint8Array({ maxLength: 200 }),
);

async function check(res: Response, what: string): Promise<void> {
  const text = await res.text();
  assert(res.status !== 500, `${what}: 500 ${text}`);
  // A HEAD answer has no body (RFC 9110 §9.3.2); the autoconfiguration files outside /v1 answer
  // mail clients in plain text.
  const api = / \/v1\//.test(what) || / \/v1$/.test(what);
  if (res.status >= 400 && res.status < 500 && !what.includes("HEAD ") && api) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new Error(`${what}: ${res.status} is not JSON: ${text.slice(0, 200)}`);
    }
    assert(
      typeof (parsed as { error?: unknown })?.error === "string",
      `${what}: ${res.status} ${text}`,
    );
  }
}

Deno.test("fuzz: random requests to the edge never get a 500, and 4xx are JSON errors", async () => {
  await fc.assert(
    fc.asyncProperty(
      method,
      path,
      fc.array(fc.tuple(headerName, headerValue), { maxLength: 5 }),
      body,
      async (m, p, headers, b) => {
        const h = new Headers();
        for (const [k, v] of headers) h.set(k, v);
        const withBody = m !== "GET" && m !== "HEAD";
        const res = await app.request(p, { method: m, headers: h, body: withBody ? b : null });
        await check(res, `${m} ${p}`);
      },
    ),
    fuzzParams(300, 0.2),
  );
});

Deno.test("fuzz: correctly signed requests with random bodies never get a 500", async () => {
  let nonce = 0;
  await fc.assert(
    fc.asyncProperty(method, path, body, async (m, p, b) => {
      const withBody = m !== "GET" && m !== "HEAD";
      const bytes = withBody ? b : null;
      const headers = await signRequest(homeKey, homeId, m, p, bytes, now + nonce++);
      const res = await app.request(p, { method: m, headers, body: bytes });
      await check(res, `signed ${m} ${p}`);
    }),
    fuzzParams(300, 0.2),
  );
});

// Regression cases: requests the fuzzer once answered 500 (test/fixtures/fuzz/).
Deno.test("fuzz regressions: signed requests with non-object JSON bodies are 400, not 500", async () => {
  const text = await Deno.readTextFile(
    new URL("../fixtures/fuzz/edge_non_object_bodies.txt", import.meta.url),
  );
  let n = 1;
  for (const line of text.split("\n").filter((l) => l !== "" && !l.startsWith("#"))) {
    const [m, p, json] = line.split(" ");
    const bytes = new TextEncoder().encode(json);
    const headers = await signRequest(homeKey, homeId, m, p, bytes, now - n++);
    await check(await app.request(p, { method: m, headers, body: bytes }), `signed ${m} ${p}`);
  }
});

Deno.test("the edge fuzz store closes", () => {
  kv.close();
});
