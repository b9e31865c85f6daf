import {
  deepStrictEqual as assertEquals,
  ok as assert,
  rejects as assertRejects,
} from "node:assert/strict";
import {
  generateAccountKey,
  openSealed,
  recipientOf,
  sealToRecipient,
  unwrapIdentity,
  wrapIdentity,
} from "../../../src/crypto/age.ts";

const text = new TextEncoder().encode("Subject: hello\r\n\r\nThe quick brown fox.\r\n");

Deno.test("sealToRecipient() output opens with the matching identity", async () => {
  const key = await generateAccountKey();
  assert(key.identity.startsWith("AGE-SECRET-KEY-1"));
  assert(key.recipient.startsWith("age1"));
  const sealed = await sealToRecipient(text, key.recipient);
  assert(sealed.length > text.length);
  assertEquals(await openSealed(sealed, key.identity), text);
});

Deno.test("sealToRecipient() never repeats ciphertext for the same message", async () => {
  const key = await generateAccountKey();
  const a = await sealToRecipient(text, key.recipient);
  const b = await sealToRecipient(text, key.recipient);
  assert(a.some((byte, i) => byte !== b[i]));
});

Deno.test("openSealed() rejects another account's identity", async () => {
  const owner = await generateAccountKey();
  const other = await generateAccountKey();
  const sealed = await sealToRecipient(text, owner.recipient);
  await assertRejects(() => openSealed(sealed, other.identity));
});

Deno.test("openSealed() rejects a damaged file", async () => {
  const key = await generateAccountKey();
  const sealed = await sealToRecipient(text, key.recipient);
  sealed[sealed.length - 5] ^= 1;
  await assertRejects(() => openSealed(sealed, key.identity));
});

Deno.test("recipientOf() derives the recipient and refuses garbage with TypeError", async () => {
  const key = await generateAccountKey();
  assertEquals(await recipientOf(`  ${key.identity}\n`), key.recipient);
  await assertRejects(() => recipientOf("AGE-SECRET-KEY-1NOTAKEY"), TypeError);
});

Deno.test("wrapIdentity() round-trips with the password and gives null for a wrong one", async () => {
  const key = await generateAccountKey();
  const wrapped = await wrapIdentity(key.identity, "correct horse battery", 10);
  assertEquals(await unwrapIdentity(wrapped, "correct horse battery"), key.identity);
  assertEquals(await unwrapIdentity(wrapped, "wrong horse battery"), null);
  assertEquals(await unwrapIdentity(wrapped, ""), null);
  // The wrapping holds no trace of the identity.
  assert(!new TextDecoder().decode(wrapped).includes(key.identity));
});
