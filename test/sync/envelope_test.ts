import { deepStrictEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import { generateAccountKey } from "../../src/crypto/age.ts";
import { generateSigningKey } from "../../src/crypto/device.ts";
import { openEnvelope, sealEnvelope } from "../../sync/envelope.ts";

async function parties() {
  const home = { id: "home-1", key: await generateSigningKey() };
  const phoneAge = await generateAccountKey();
  const otherAge = await generateAccountKey();
  const keys = new Map([[home.id, home.key.publicKey]]);
  return {
    home,
    phone: { id: "dev-phone", identity: phoneAge.identity, recipient: phoneAge.recipient },
    other: { id: "dev-other", identity: otherAge.identity, recipient: otherAge.recipient },
    keyOf: (id: string) => Promise.resolve(keys.get(id) ?? null),
  };
}

Deno.test("an envelope opens for its recipient and names its sender", async () => {
  const p = await parties();
  const payload = new TextEncoder().encode("sync message bytes");
  const sealed = await sealEnvelope(payload, p.home, p.phone);
  assert(!new TextDecoder().decode(sealed).includes("sync message bytes"));
  assert(!new TextDecoder().decode(sealed).includes("home-1"), "the sender is hidden too");
  const opened = await openEnvelope(sealed, p.phone, p.keyOf);
  assertEquals(opened.sender, "home-1");
  assertEquals(opened.payload, payload);
});

Deno.test("an envelope is refused by another device, from an unknown or forged sender", async () => {
  const p = await parties();
  const payload = new TextEncoder().encode("x");
  // Sealed to the other device's key but claiming to be for the phone: the phone cannot open it.
  const sealed = await sealEnvelope(payload, p.home, p.phone);
  await rejects(openEnvelope(sealed, p.other, p.keyOf), /not sealed to this device/);
  // Sealed to the other device, addressed (inside) to the phone: refused as misaddressed.
  const misaddressed = await sealEnvelope(payload, p.home, {
    id: p.phone.id,
    recipient: p.other.recipient,
  });
  await rejects(openEnvelope(misaddressed, p.other, p.keyOf), /another device/);
  // A sender that is not paired.
  const stranger = { id: "dev-stranger", key: await generateSigningKey() };
  await rejects(
    openEnvelope(await sealEnvelope(payload, stranger, p.phone), p.phone, p.keyOf),
    /not paired/,
  );
  // A paired id with the wrong key.
  const forger = { id: "home-1", key: await generateSigningKey() };
  await rejects(
    openEnvelope(await sealEnvelope(payload, forger, p.phone), p.phone, p.keyOf),
    /does not verify/,
  );
});
