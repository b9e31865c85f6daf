// The edge's data path with real tools: swaks sends to the edge's SMTP front while the home box
// is stopped; the edge stores only sealed items (a scan of its files finds no plaintext); the home
// box starts, pulls, and every message is readable over IMAP exactly once; the edge is then empty.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { type Edge, startEdge } from "../../edge/main.ts";
import { log } from "../../src/log.ts";
import { runTool, startHomeProcess, startTestBox, testAddress, waitFor } from "./harness.ts";
import { RawImap } from "./raw_imap.ts";
import { scanForPlaintext } from "./plaintext_scan.ts";

async function testEdge(): Promise<{ edge: Edge; dir: string; stop(): Promise<void> }> {
  if (!Deno.env.get("HEARTH_LOG")) log.setLevel("warn");
  const dir = await Deno.makeTempDir({ prefix: "hearth-edge-" });
  const edge = await startEdge({
    dataDir: dir,
    hostname: "edge.localhost",
    listen: "127.0.0.1",
    httpPort: 0,
    smtpPort: 0,
  });
  return {
    edge,
    dir,
    async stop() {
      await edge.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

async function swaks(port: number, caFile: string, n: number) {
  const run = await runTool("swaks", [
    "--server",
    "127.0.0.1",
    "--port",
    String(port),
    "--helo",
    "client.example.org",
    "--from",
    "edgesender-q7z@example.org",
    "--to",
    testAddress,
    "--tls",
    "--tls-verify",
    "--tls-ca-path",
    caFile,
    "--tls-sni",
    "localhost",
    "--header",
    `Subject: Edgeward subject ${n}`,
    "--body",
    `The platypodial secret number ${n}.`,
    "--timeout",
    "10",
  ], { pkg: "swaks" });
  assertEquals(run.code, 0, `swaks failed:\n${run.stdout}\n${run.stderr}`);
}

/** Subjects in INBOX, read over IMAP. */
async function subjects(port: number, address: string, password: string): Promise<string[]> {
  const c = await RawImap.connect(port);
  try {
    await c.ok(`LOGIN ${address} "${password}"`);
    await c.ok("SELECT INBOX");
    const bodies = await c.fetchAllBodies();
    return [...bodies.values()].map((b) =>
      new TextDecoder().decode(b).match(/^Subject: (.*)$/m)?.[1].trim() ?? ""
    );
  } finally {
    c.close();
  }
}

Deno.test("mail sent to the edge while home is stopped arrives exactly once, sealed in between", async () => {
  const { edge, dir, stop } = await testEdge();
  const token = await edge.store.createPairing("hearth.localhost");
  const home = await startHomeProcess({ messages: [], edge: { url: edge.url, token } });
  try {
    await home.kill("SIGTERM");
    for (let n = 1; n <= 20; n++) await swaks(edge.smtpPort!, `${dir}/tls/ca.pem`, n);
    const [status] = await edge.store.status();
    assertEquals(status.waiting, 20);

    // Nothing readable of the messages in the edge's files (KV, its WAL, certificates).
    const { found, files } = await scanForPlaintext(dir, [
      "Edgeward subject",
      "platypodial secret",
      "edgesender-q7z",
      testAddress,
    ]);
    assert(files.some((f) => f.includes("edge.kv")), "the KV file was scanned");
    assertEquals(found, []);

    await home.restart();
    await waitFor("20 messages at home", 20_000, async () => {
      return (await subjects(home.port, home.address, home.password)).length >= 20;
    });
    const got = await subjects(home.port, home.address, home.password);
    assertEquals(
      got.sort(),
      Array.from({ length: 20 }, (_, i) => `Edgeward subject ${i + 1}`).sort(),
    );
    await waitFor("the edge to be empty", 10_000, async () => {
      return (await edge.store.status())[0].waiting === 0;
    });
  } finally {
    await home.kill("SIGKILL");
    await Deno.remove(home.dataDir, { recursive: true }).catch(() => {});
    await stop();
  }
});

Deno.test("the edge refuses unknown users and foreign domains at RCPT", async () => {
  const { edge, stop } = await testEdge();
  const token = await edge.store.createPairing("hearth.localhost");
  const box = await startTestBox({ messages: [], edge: { url: edge.url, token } });
  try {
    const rcpt = async (to: string) => {
      const run = await runTool("swaks", [
        "--server",
        "127.0.0.1",
        "--port",
        String(edge.smtpPort),
        "--from",
        "a@example.org",
        "--to",
        to,
        "--quit-after",
        "RCPT",
        "--timeout",
        "10",
      ], { pkg: "swaks" });
      return run.stdout + run.stderr;
    };
    const refused = async (to: string, reply: RegExp) => {
      const out = await rcpt(to);
      assert(reply.test(out), `${to}:\n${out}`);
    };
    await refused("nobody@hearth.localhost", /<\*\* 550 5\.1\.1 /);
    await refused("someone@elsewhere.example", /<\*\* 554 5\.7\.1 /);
    await refused("me%elsewhere.example@hearth.localhost", /<\*\* 554 5\.7\.1 /);
    await refused(testAddress, /<- {2}250 /);
  } finally {
    await box.stop();
    await stop();
  }
});
