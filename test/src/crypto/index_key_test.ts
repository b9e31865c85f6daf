import {
  deepStrictEqual as assertEquals,
  notDeepStrictEqual as assertNotEquals,
  ok as assert,
  rejects as assertRejects,
} from "node:assert/strict";
import { generateAccountKey } from "../../../src/crypto/age.ts";
import {
  decryptIndex,
  decryptJson,
  deriveIndexKey,
  encryptIndex,
  encryptJson,
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
