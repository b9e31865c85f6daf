// ACME against Debian's pebble (a test CA) on loopback: the edge obtains a certificate for
// `localhost` by real HTTP-01 validation (pebble's VA fetches the token from the edge's HTTP
// listener), serves it on HTTPS and STARTTLS, and renews it when the injected clock passes two
// thirds of its lifetime.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import tls from "node:tls";
import { type Edge, startEdge } from "../../edge/main.ts";
import { renewalDue } from "../../edge/acme.ts";
import { createApp } from "../../edge/app.ts";
import { EdgeStore } from "../../edge/store.ts";
import { issueServerCertificate, makeCertificateAuthority } from "../../src/tls.ts";
import { log } from "../../src/log.ts";
import { freeLowPort } from "../free_low_port.ts";

log.setLevel("error");

const pebbleBinary = "/usr/bin/pebble";

/** Starts pebble with its VA pointed at `httpPort` (where the edge will listen). */
async function startPebble(dir: string, httpPort: number) {
  try {
    await Deno.stat(pebbleBinary);
  } catch {
    throw new Error("pebble is not installed: apt-get install pebble (.ci/run installs it)");
  }
  // Debian ships no test certificate for pebble's own HTTPS: make one from a throwaway CA.
  const ca = await makeCertificateAuthority("pebble test CA");
  const leaf = await issueServerCertificate(ca, ["localhost", "127.0.0.1"]);
  await Deno.writeTextFile(`${dir}/pebble-cert.pem`, leaf.certPem);
  await Deno.writeTextFile(`${dir}/pebble-key.pem`, leaf.keyPem);
  const acmePort = freeLowPort();
  const managementPort = freeLowPort();
  await Deno.writeTextFile(
    `${dir}/pebble.json`,
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${acmePort}`,
        managementListenAddress: `127.0.0.1:${managementPort}`,
        certificate: `${dir}/pebble-cert.pem`,
        privateKey: `${dir}/pebble-key.pem`,
        httpPort,
        tlsPort: freeLowPort(),
        ocspResponderURL: "",
        externalAccountBindingRequired: false,
      },
    }),
  );
  const child = new Deno.Command(pebbleBinary, {
    args: ["-config", `${dir}/pebble.json`],
    // No artificial validation delays, no rejected nonces, a fresh authorization every order
    // (so the renewal is validated again). `localhost` resolves through /etc/hosts.
    env: { PEBBLE_VA_NOSLEEP: "1", PEBBLE_WFE_NONCEREJECT: "0", PEBBLE_AUTHZREUSE: "0" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) output += chunk;
  };
  const collecting = Promise.all([collect(child.stdout), collect(child.stderr)]);
  const client = Deno.createHttpClient({ caCerts: [ca.certPem] });
  const stop = async () => {
    client.close();
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    await child.status;
    await collecting;
  };
  // Pebble makes its keys before it listens: slow under the whole suite's load.
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const res = await fetch(`https://localhost:${acmePort}/dir`, { client });
      await res.body?.cancel();
      if (res.ok) break;
    } catch (e) {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`pebble did not start: ${(e as Error).message}\n${output}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const root = await (await fetch(`https://localhost:${managementPort}/roots/0`, { client }))
    .text();
  return {
    directoryUrl: `https://localhost:${acmePort}/dir`,
    caPem: ca.certPem,
    /** The root pebble issues under: what a client trusts. */
    root,
    log: () => output,
    stop,
  };
}

/** Serials compared as hex without leading zeros (DER may pad a positive INTEGER with 00). */
function hexSerial(serial: string): string {
  return serial.toLowerCase().replace(/^0+/, "");
}

interface PeerCertificate {
  serial: string;
  issuer: string;
  names: string;
}

/** What a TLS client that trusts only `root` sees on `port` (it fails on any other chain). */
function peerCertificate(port: number, root: string): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, servername: "localhost", ca: root });
    socket.once("secureConnect", () => {
      const cert = socket.getPeerCertificate();
      resolve({
        serial: hexSerial(cert.serialNumber),
        issuer: cert.issuer.CN as string,
        names: cert.subjectaltname ?? "",
      });
      socket.end();
    });
    socket.once("error", reject);
  });
}

/** STARTTLS on the SMTP front, verified against `root`. */
async function starttlsHandshake(port: number, root: string): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const reader = conn.readable.getReader();
  const writer = conn.writable.getWriter();
  let buffered = "";
  const reply = async () => {
    for (;;) {
      const last = buffered.split("\r\n").filter(Boolean).at(-1) ?? "";
      if (/^\d{3} /.test(last) && buffered.endsWith("\r\n")) {
        const text = buffered;
        buffered = "";
        return text;
      }
      const { value, done } = await reader.read();
      if (done) throw new Error(`connection closed after ${buffered}`);
      buffered += new TextDecoder().decode(value);
    }
  };
  await reply();
  await writer.write(new TextEncoder().encode("EHLO client.test\r\n"));
  assert((await reply()).includes("STARTTLS"));
  await writer.write(new TextEncoder().encode("STARTTLS\r\n"));
  assert((await reply()).startsWith("220"));
  reader.releaseLock();
  writer.releaseLock();
  const secure = await Deno.startTls(conn, { hostname: "localhost", caCerts: [root] });
  try {
    await secure.handshake();
  } finally {
    secure.close();
  }
}

Deno.test({
  name:
    "the edge obtains a certificate from pebble by HTTP-01, serves it, and renews it near expiry",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "hearth-acme-" });
    const httpPort = freeLowPort();
    const pebble = await startPebble(dir, httpPort);
    let clock = Date.now();
    let edge: Edge | undefined;
    try {
      edge = await startEdge({
        dataDir: dir,
        hostname: "localhost",
        listen: "127.0.0.1",
        httpPort,
        httpsPort: 0,
        smtpPort: 0,
        acme: {
          directoryUrl: pebble.directoryUrl,
          directoryCaPem: pebble.caPem,
          email: "postmaster@example.org",
          names: ["localhost"],
          now: () => clock,
          checkMs: 3600_000,
        },
      });
      const first = await edge.acme!.ensureCertificate();
      assert(first, `no certificate was issued; pebble said:\n${pebble.log()}`);
      assertEquals(first.names, ["localhost"]);

      const seen = await peerCertificate(edge.httpsPort!, pebble.root);
      assertEquals(seen.serial, hexSerial(first.serial));
      assert(seen.issuer.startsWith("Pebble Intermediate CA"), seen.issuer);
      assertEquals(seen.names, "DNS:localhost");
      await starttlsHandshake(edge.smtpPort!, pebble.root);

      // Not yet due: the same certificate stays.
      assertEquals((await edge.acme!.ensureCertificate())!.serial, first.serial);

      // Past two thirds of the lifetime: a new certificate, on HTTPS and STARTTLS alike.
      clock = first.notBefore + (first.notAfter - first.notBefore) * 0.7;
      assert(renewalDue(first, clock));
      const second = await edge.acme!.ensureCertificate();
      assert(second && second.serial !== first.serial, "the certificate was not renewed");
      assertEquals(edge.acme!.current?.serial, second.serial);
      assertEquals(
        (await peerCertificate(edge.httpsPort!, pebble.root)).serial,
        hexSerial(second.serial),
      );
      await starttlsHandshake(edge.smtpPort!, pebble.root);
    } finally {
      await edge?.close();
      await pebble.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("GET /.well-known/acme-challenge/:token answers the stored key authorization only", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const app = createApp({ store: new EdgeStore(kv), hostname: "mx.example.org" });
    const { KvAcmeChallenges } = await import("../../edge/acme_challenge.ts");
    const token = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA";
    await new KvAcmeChallenges(kv).put(token, `${token}.thumbprint`);
    const res = await app.request(`/.well-known/acme-challenge/${token}`);
    assertEquals(res.status, 200);
    assertEquals(await res.text(), `${token}.thumbprint`);
    const missing = await app.request("/.well-known/acme-challenge/unknown-token-0123456789");
    assertEquals(missing.status, 404);
    await missing.body?.cancel();
    await new KvAcmeChallenges(kv).remove(token);
    const removed = await app.request(`/.well-known/acme-challenge/${token}`);
    assertEquals(removed.status, 404);
    await removed.body?.cancel();
  } finally {
    kv.close();
  }
});

Deno.test("renewalDue() is true from two thirds of the lifetime on", () => {
  const day = 86_400_000;
  const cert = { notBefore: 0, notAfter: 90 * day };
  assertEquals(renewalDue(cert, 59 * day), false);
  assertEquals(renewalDue(cert, 60 * day), true);
  assertEquals(renewalDue(cert, 91 * day), true);
});
