/**
 * The trust model's promise for a home box at rest: a stolen disk shows
 * message counts, sizes and flags, never content, subjects, addresses or
 * folder names. These tests put distinctive plaintext in through every path
 * (local delivery, IMAP APPEND, IMAP CREATE and RENAME), stop the box, and
 * scan every byte under the data directory. A second test opens a stored
 * blob with the standard `age` tool and the recovery key.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { loadConfig } from "../../src/config.ts";
import { initDataDir, openStore, startHome } from "../../home/box.ts";
import { createAccount } from "../../home/store/accounts.ts";
import { deliverLocally } from "../../home/store/deliver.ts";
import { RawImap } from "./raw_imap.ts";
import { contains, filesUnder, scanForPlaintext } from "./plaintext_scan.ts";

const owner = "quokkaowner-zq7";
const address = `${owner}@hearth.localhost`;
const password = "privacy test password";

/** Plaintext that must never appear on disk. */
const needles = [
  owner,
  "Zanzibarquokka subject line",
  "xylophonic marmalade",
  "perambulating ocelot",
  "quentinsender-xq4",
  "Bartholomew Quixotic",
  "ventriloquistfrog",
  "Kumquatfolder Secret",
  "Wombatique",
  "Renamedpangolin",
  "Appendedsubject Yakety",
  "appendsender-kk9",
];

function crlf(text: string): Uint8Array {
  return new TextEncoder().encode(text.replace(/\r?\n/g, "\r\n"));
}

const delivered = crlf(`From: Bartholomew Quixotic <quentinsender-xq4@sender.example>
To: ${address}
Cc: ventriloquistfrog@sender.example
Subject: Zanzibarquokka subject line
Message-ID: <privacy-1@sender.example>
Content-Type: text/plain; charset=utf-8

Please bring the xylophonic marmalade and the perambulating ocelot.
`);

const appended = crlf(`From: appendsender-kk9@sender.example
To: ${address}
Subject: Appendedsubject Yakety
Message-ID: <privacy-2@sender.example>

The xylophonic marmalade again, in a folder called Wombatique.
`);

async function setUp() {
  const dir = await Deno.makeTempDir({ prefix: "hearth-privacy-" });
  const config = await loadConfig(dir, {
    imapPort: 0,
    imapsPort: 0,
    mxPort: null,
    submissionPort: null,
    submissionsPort: null,
    scryptLogN: 10,
  });
  await initDataDir(config);
  const { kv, blobs } = await openStore(config);
  const { recoveryKey } = await createAccount(kv, blobs, address, password, 10);
  kv.close();
  return { dir, config, recoveryKey };
}

Deno.test("no plaintext of messages, addresses or folder names is written to the data directory", async () => {
  const { dir, config } = await setUp();
  try {
    const box = await startHome(config, { allowPlaintextAuth: true });
    let client: RawImap | undefined;
    try {
      // Delivered while the account is locked, then again while it is unlocked.
      await deliverLocally(box.kv, box.blobs, address, delivered, box.registry);
      client = await RawImap.connect(box.imap.port!);
      await client.ok(`LOGIN ${address} "${password}"`);
      await deliverLocally(box.kv, box.blobs, address, delivered, box.registry);
      await client.ok(`CREATE "Kumquatfolder Secret"`);
      await client.ok(`CREATE "Wombatique/Inner"`);
      await client.ok(`CREATE "Temporary"`);
      await client.ok(`RENAME "Temporary" "Renamedpangolin"`);
      const r = await client.append("Wombatique", appended, "\\Seen");
      assertEquals(r.status, "OK", r.text);
      // The second delivery is indexed in the background: wait for it.
      for (let i = 0; i < 100; i++) {
        const st = await client.ok("STATUS INBOX (MESSAGES)");
        if (st.untagged.some((u) => /MESSAGES 2\)/.test(u.text))) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      await client.ok("SELECT INBOX");
      await client.ok(`COPY 1 "Kumquatfolder Secret"`);
      // Search and fetch make the box read (and cache) metadata and search text.
      await client.ok("SEARCH TEXT marmalade");
      await client.ok("FETCH 1:* (ENVELOPE BODYSTRUCTURE)");
      const bodies = await client.fetchAllBodies();
      assertEquals(bodies.size, 2, "both deliveries are in INBOX");
      for (const body of bodies.values()) assertEquals(body, delivered);
      await client.ok("LOGOUT");
    } finally {
      client?.close();
      await box.close();
    }

    const { found, files } = await scanForPlaintext(dir, needles);
    const kvSeen = files.some((f) => f.includes("home.kv"));
    assert(kvSeen, "the KV index was scanned");
    // Control: the scanner does find plaintext that is meant to be there.
    assert(
      contains(
        await Deno.readFile(`${dir}/config.json`),
        new TextEncoder().encode("hearth.localhost"),
      ),
    );
    assert(files.length > 5, `only ${files.length} files scanned`);
    assertEquals(found, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a stored blob opens with the age CLI and the recovery key", async () => {
  const { dir, config, recoveryKey } = await setUp();
  try {
    const { kv, blobs } = await openStore(config);
    await deliverLocally(kv, blobs, address, delivered);
    kv.close();
    const keyFile = `${dir}/recovery.txt`;
    await Deno.writeTextFile(keyFile, `${recoveryKey}\n`, { mode: 0o600 });
    const blobFiles: string[] = [];
    for await (const path of filesUnder(`${dir}/blobs`)) {
      if (/\/blobs\/[0-9a-f]{2}\/[0-9a-f]{32}\.age$/.test(path)) blobFiles.push(path);
    }
    assertEquals(blobFiles.length, 1);
    const out = await new Deno.Command("age", {
      args: ["-d", "-i", keyFile, blobFiles[0]],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert(out.success, new TextDecoder().decode(out.stderr));
    assertEquals(out.stdout, delivered);
    // The file is a standard age file, and a wrong key does not open it.
    const head = new TextDecoder().decode((await Deno.readFile(blobFiles[0])).subarray(0, 40));
    assert(head.startsWith("age-encryption.org/v1\n-> X25519 "));
    const other = `${dir}/other.txt`;
    const gen = await new Deno.Command("age-keygen", { args: ["-o", other], stderr: "null" })
      .output();
    if (gen.success) {
      const wrong = await new Deno.Command("age", {
        args: ["-d", "-i", other, blobFiles[0]],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert(!wrong.success);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
