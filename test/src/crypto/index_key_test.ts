import {
  deepStrictEqual as assertEquals,
  notDeepStrictEqual as assertNotEquals,
  ok as assert,
  rejects as assertRejects,
  throws as assertThrows,
} from "node:assert/strict";
import { generateAccountKey } from "../../../src/crypto/age.ts";
import {
  decryptIndex,
  decryptJson,
  deriveIndexKey,
  encryptIndex,
  encryptIndexSync,
  encryptJson,
  encryptJsonSync,
} from "../../../src/crypto/index_key.ts";

const plain = new TextEncoder().encode("Project Falcon");

Deno.test("deriveIndexKey() is deterministic: a key derived again opens old values", async () => {
  const { identity } = await generateAccountKey();
  const box = await encryptIndex(await deriveIndexKey(identity), plain, "mailbox-name");
  // Surrounding whitespace (a recovery key pasted from a file) does not change the key.
  const again = await deriveIndexKey(`${identity}\n`);
  assertEquals(await decryptIndex(again, box, "mailbox-name"), plain);
});

Deno.test("deriveIndexKey() gives different accounts different keys", async () => {
  const a = await deriveIndexKey((await generateAccountKey()).identity);
  const b = await deriveIndexKey((await generateAccountKey()).identity);
  const box = await encryptIndex(a, plain, "mailbox-name");
  await assertRejects(() => decryptIndex(b, box, "mailbox-name"));
});

Deno.test("encryptIndex() binds the context: a value moved elsewhere does not decrypt", async () => {
  const key = await deriveIndexKey((await generateAccountKey()).identity);
  const box = await encryptIndex(key, plain, "meta:aaaa");
  await assertRejects(() => decryptIndex(key, box, "meta:bbbb"));
  await assertRejects(() => decryptIndex(key, box, "mailbox-name"));
  assertEquals(await decryptIndex(key, box, "meta:aaaa"), plain);
});

Deno.test("encryptIndex() uses a fresh nonce and detects tampering", async () => {
  const key = await deriveIndexKey((await generateAccountKey()).identity);
  const a = await encryptIndex(key, plain, "x");
  const b = await encryptIndex(key, plain, "x");
  assertNotEquals(a.subarray(0, 12), b.subarray(0, 12));
  assertEquals(a.length, 12 + plain.length + 16);
  const bad = a.slice();
  bad[20] ^= 0x80;
  await assertRejects(() => decryptIndex(key, bad, "x"));
  await assertRejects(() => decryptIndex(key, a.subarray(0, 27), "x"), RangeError);
});

Deno.test("encryptJson() round-trips a value", async () => {
  const key = await deriveIndexKey((await generateAccountKey()).identity);
  const value = { subject: "Quarterly", to: ["a@example.org"], n: 3 };
  const box = await encryptJson(key, value, "meta:1");
  assert(!new TextDecoder().decode(box).includes("Quarterly"));
  assertEquals(await decryptJson(key, box, "meta:1"), value);
});

Deno.test("encryptIndexSync() output opens with decryptIndex, bound to its context", async () => {
  const key = await deriveIndexKey((await generateAccountKey()).identity);
  const a = encryptIndexSync(key, plain, "meta:aaaa");
  const b = encryptJsonSync(key, { n: 1 }, "meta:aaaa");
  assertEquals(a.length, 12 + plain.length + 16);
  assertNotEquals(a.subarray(0, 12), encryptIndexSync(key, plain, "meta:aaaa").subarray(0, 12));
  assertEquals(await decryptIndex(key, a, "meta:aaaa"), plain);
  assertEquals(await decryptJson(key, b, "meta:aaaa"), { n: 1 });
  await assertRejects(() => decryptIndex(key, a, "meta:bbbb"));
  const foreign = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, [
    "encrypt",
  ]);
  assertThrows(() => encryptIndexSync(foreign, plain, "x"), TypeError);
});

Deno.test("deriveIndexKey() opens values sealed under the key HKDF deriveKey gives", async () => {
  const { identity } = await generateAccountKey();
  const te = new TextEncoder();
  const ikm = await crypto.subtle.importKey("raw", te.encode(identity), "HKDF", false, [
    "deriveKey",
  ]);
  const old = await crypto.subtle.deriveKey(
    {
      name: "HKDF",
      hash: "SHA-256",
      salt: te.encode("hearth index key v1"),
      info: te.encode("aes-256-gcm"),
    },
    ikm,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt"],
  );
  const iv = new Uint8Array(12);
  const ct = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: te.encode("x") },
      old,
      plain,
    ),
  );
  const box = new Uint8Array(12 + ct.length);
  box.set(ct, 12);
  assertEquals(await decryptIndex(await deriveIndexKey(identity), box, "x"), plain);
});
