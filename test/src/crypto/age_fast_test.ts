import {
  deepStrictEqual as assertEquals,
  ok as assert,
  rejects as assertRejects,
  throws as assertThrows,
} from "node:assert/strict";
import fc from "fast-check";
import * as age from "age-encryption";
import { generateAccountKey, sealToRecipient } from "../../../src/crypto/age.ts";
import { decodeRecipient, sealAheadFor, sealX25519 } from "../../../src/crypto/age_seal.ts";

const SIZES = [0, 1, 1000, 65535, 65536, 65537, 131072, 200000];

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  // getRandomValues fills at most 65536 bytes per call.
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, i + 65536));
  return out;
}

async function openWithLibrary(sealed: Uint8Array, identity: string): Promise<Uint8Array> {
  const d = new age.Decrypter();
  d.addIdentity(identity);
  return await d.decrypt(sealed, "uint8array");
}

/** Opens with the reference `age` CLI, as DESIGN.md promises a user can. */
async function openWithCli(sealed: Uint8Array, identity: string): Promise<Uint8Array> {
  const dir = await Deno.makeTempDir({ prefix: "hearth-age-" });
  try {
    const keyFile = `${dir}/identity.txt`;
    await Deno.writeTextFile(keyFile, identity + "\n", { mode: 0o600 });
    const child = new Deno.Command("age", {
      args: ["-d", "-i", keyFile],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    const [out] = await Promise.all([
      child.output(),
      writer.write(sealed).then(() => writer.close()),
    ]);
    if (!out.success) {
      throw new Error(`age -d failed: ${new TextDecoder().decode(out.stderr)}`);
    }
    return out.stdout;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const key = await generateAccountKey();

for (const size of SIZES) {
  Deno.test(`sealToRecipient() of ${size} bytes opens with the library and the age CLI`, async () => {
    const data = randomBytes(size);
    const sealed = await sealToRecipient(data, key.recipient);
    assertEquals(await openWithLibrary(sealed, key.identity), data);
    assertEquals(await openWithCli(sealed, key.identity), data);
  });
}

Deno.test("sealToRecipient() output of random size opens with the library and the age CLI", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.uint8Array({ minLength: 0, maxLength: 140_000 }),
      async (data) => {
        const sealed = await sealToRecipient(data, key.recipient);
        assertEquals(await openWithLibrary(sealed, key.identity), data);
        assertEquals(await openWithCli(sealed, key.identity), data);
      },
    ),
    { numRuns: 25 },
  );
});

Deno.test("sealToRecipient() header has the age v1 shape", async () => {
  const sealed = await sealToRecipient(new Uint8Array(3), key.recipient);
  const text = new TextDecoder("latin1").decode(sealed);
  const lines = text.split("\n");
  assertEquals(lines[0], "age-encryption.org/v1");
  assert(/^-> X25519 [A-Za-z0-9+/]{43}$/.test(lines[1]), lines[1]);
  assert(/^[A-Za-z0-9+/]{43}$/.test(lines[2]), lines[2]);
  assert(/^--- [A-Za-z0-9+/]{43}$/.test(lines[3]), lines[3]);
  // header + 16-byte nonce + 3 bytes + one 16-byte tag.
  const headerLength = lines.slice(0, 4).join("\n").length + 1;
  assertEquals(sealed.length, headerLength + 16 + 3 + 16);
});

Deno.test("sealToRecipient() never repeats ciphertext or ephemeral share", async () => {
  const data = new TextEncoder().encode("Subject: same\r\n\r\nsame\r\n");
  const a = await sealToRecipient(data, key.recipient);
  const b = await sealToRecipient(data, key.recipient);
  assert(a.some((byte, i) => byte !== b[i]));
  const share = (x: Uint8Array) => new TextDecoder().decode(x).split("\n")[1];
  assert(share(a) !== share(b));
});

Deno.test("sealAheadFor() makes one header, used by the next seal only", async () => {
  const data = new TextEncoder().encode("Subject: ahead\r\n\r\nahead\r\n");
  const share = (x: Uint8Array) => new TextDecoder().decode(x).split("\n")[1];
  sealAheadFor(key.recipient);
  sealAheadFor(key.recipient); // one ready header per recipient: this call changes nothing
  const shares = new Set<string>();
  for (let i = 0; i < 3; i++) {
    const sealed = sealX25519(data, key.recipient);
    assertEquals(await openWithLibrary(sealed, key.identity), data);
    shares.add(share(sealed));
  }
  assertEquals(shares.size, 3);
  sealAheadFor(key.recipient);
  assertEquals(await openWithCli(sealX25519(data, key.recipient), key.identity), data);
});

Deno.test("sealToRecipient() refuses a wrong recipient string with TypeError", async () => {
  const flipped = key.recipient.slice(0, -1) + (key.recipient.endsWith("q") ? "p" : "q");
  const bad = [
    "",
    "age1",
    "not a recipient",
    key.recipient.toUpperCase(),
    flipped, // bad checksum
    key.recipient + "q",
    key.identity,
    "age1pq1" + "q".repeat(100),
  ];
  for (const r of bad) {
    await assertRejects(() => sealToRecipient(new Uint8Array(1), r), TypeError, r);
  }
});

Deno.test("sealX25519() refuses a low-order recipient (all-zero shared secret)", () => {
  // The all-zero point, bech32-encoded with HRP "age".
  const zero = encodeBech32("age", new Uint8Array(32));
  assertEquals(decodeRecipient(zero), new Uint8Array(32));
  assertThrows(() => sealX25519(new Uint8Array(1), zero), TypeError);
});

Deno.test("decodeRecipient() agrees with the library's own key derivation", async () => {
  for (let i = 0; i < 20; i++) {
    const identity = await age.generateX25519Identity();
    const recipient = await age.identityToRecipient(identity);
    assertEquals(encodeBech32("age", decodeRecipient(recipient)), recipient);
  }
});

// A minimal Bech32 encoder (BIP 173) for the tests only.
function encodeBech32(hrp: string, bytes: Uint8Array): string {
  const charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
  const gen = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
  const polymod = (values: number[]) => {
    let chk = 1;
    for (const v of values) {
      const top = chk >>> 25;
      chk = ((chk & 0x1ffffff) << 5) ^ v;
      for (let i = 0; i < 5; i++) if ((top >>> i) & 1) chk ^= gen[i];
    }
    return chk;
  };
  const words: number[] = [];
  let acc = 0, bits = 0;
  for (const b of bytes) {
    acc = ((acc << 8) | b) & 0xfff;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      words.push((acc >> bits) & 31);
    }
  }
  if (bits > 0) words.push((acc << (5 - bits)) & 31);
  const expanded = [...hrp].map((c) => c.charCodeAt(0) >> 5).concat(
    [0],
    [...hrp].map((c) => c.charCodeAt(0) & 31),
  );
  const mod = polymod(expanded.concat(words, [0, 0, 0, 0, 0, 0])) ^ 1;
  const checksum = [0, 1, 2, 3, 4, 5].map((i) => (mod >>> (5 * (5 - i))) & 31);
  return hrp + "1" + words.concat(checksum).map((w) => charset[w]).join("");
}
