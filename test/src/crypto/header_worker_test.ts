import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import * as age from "age-encryption";
import { generateAccountKey } from "../../../src/crypto/age.ts";
import { headersInStock, sealAheadFor, sealX25519 } from "../../../src/crypto/age_seal.ts";
import {
  headerBatch,
  startHeaderWorker,
  stopHeaderWorker,
} from "../../../src/crypto/header_worker.ts";

const share = (x: Uint8Array) => new TextDecoder().decode(x.subarray(0, 200)).split("\n")[1];

async function open(sealed: Uint8Array, identity: string): Promise<Uint8Array> {
  const d = new age.Decrypter();
  d.addIdentity(identity);
  return await d.decrypt(sealed, "uint8array");
}

Deno.test("the header worker stocks headers that each seal one file that opens", async () => {
  const key = await generateAccountKey();
  const data = new TextEncoder().encode("Subject: worker\r\n\r\nmade ahead\r\n");
  startHeaderWorker();
  try {
    sealAheadFor(key.recipient);
    sealAheadFor(key.recipient); // one request in flight per recipient
    const until = Date.now() + 10_000;
    while (headersInStock(key.recipient) < headerBatch && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assertEquals(headersInStock(key.recipient), headerBatch);
    // Seal through the stock and beyond: each seal takes a header out and tops the stock up.
    const shares = new Set<string>();
    const sealed = headerBatch * 3;
    for (let i = 0; i < sealed; i++) {
      const file = sealX25519(data, key.recipient);
      assertEquals(await open(file, key.identity), data);
      shares.add(share(file));
      await new Promise((r) => setTimeout(r, 1));
    }
    // Never a header twice: every file has its own ephemeral share.
    assertEquals(shares.size, sealed);
  } finally {
    stopHeaderWorker();
  }
});

Deno.test("a recipient the worker cannot use still gets the caller's TypeError", () => {
  startHeaderWorker();
  try {
    let thrown: unknown;
    try {
      sealX25519(new Uint8Array(1), "age1notarecipient");
    } catch (e) {
      thrown = e;
    }
    assert(thrown instanceof TypeError);
  } finally {
    stopHeaderWorker();
  }
});
