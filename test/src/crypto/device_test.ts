import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { generateSigningKey, sign, verify } from "../../../src/crypto/device.ts";
import { fromBase64Url } from "../../../src/encoding.ts";

const data = new TextEncoder().encode("POST /v1/pull nonce=42");

Deno.test("sign() makes a 64-byte Ed25519 signature that verify() accepts", async () => {
  const keys = await generateSigningKey();
  assertEquals(fromBase64Url(keys.publicKey).length, 32);
  const sig = await sign(keys.privateKey, data);
  assertEquals(sig.length, 64);
  assert(await verify(keys.publicKey, sig, data));
});

Deno.test("verify() rejects changed data, a changed signature and another key", async () => {
  const keys = await generateSigningKey();
  const other = await generateSigningKey();
  const sig = await sign(keys.privateKey, data);
  const changed = data.slice();
  changed[0] ^= 1;
  assertEquals(await verify(keys.publicKey, sig, changed), false);
  const badSig = sig.slice();
  badSig[10] ^= 1;
  assertEquals(await verify(keys.publicKey, badSig, data), false);
  assertEquals(await verify(other.publicKey, sig, data), false);
});
