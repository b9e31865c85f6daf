import { deepStrictEqual as assertEquals, rejects, throws } from "node:assert/strict";
import { generateSigningKey } from "../../../src/crypto/device.ts";
import { generateAccountKey } from "../../../src/crypto/age.ts";
import { BackupClient, BackupHostError } from "../../../sync/backup/client.ts";
import {
  encodeBlobList,
  encodeCatalog,
  formatGrant,
  type Manifest,
  objectIdOf,
  parseGrant,
  signManifest,
  verifyManifest,
} from "../../../sync/backup/format.ts";
import { createBackupHostApp } from "../../../sync/backup/host.ts";
import { BackupHostStore, parseQuota } from "../../../sync/backup/host_store.ts";
import {
  encodePack,
  type ObjectLocation,
  type ObjectStorage,
} from "../../../sync/backup/object_files.ts";

/** Objects in memory: the conformance of the host logic without a disk. */
class MemoryObjects implements ObjectStorage {
  readonly packs = new Map<string, Uint8Array>();
  writePack(peer: string, items: { id: string; bytes: Uint8Array }[]) {
    const pack = crypto.randomUUID().replaceAll("-", "");
    const { bytes, offsets } = encodePack(items);
    this.packs.set(`${peer}/${pack}`, bytes);
    return Promise.resolve({ pack, offsets });
  }
  read(peer: string, _id: string, at: ObjectLocation) {
    const pack = this.packs.get(`${peer}/${at.pack}`);
    return Promise.resolve(pack ? pack.slice(at.off, at.off! + at.size) : null);
  }
  removePack(peer: string, pack: string) {
    this.packs.delete(`${peer}/${pack}`);
    return Promise.resolve();
  }
  remove() {
    return Promise.resolve();
  }
}

async function setup() {
  const kv = await Deno.openKv(":memory:");
  const store = new BackupHostStore(kv, new MemoryObjects());
  const app = createBackupHostApp({ store });
  // The client's fetch goes to the app in-process.
  const appFetch =
    ((input: string, init?: RequestInit) => app.request(input, init)) as unknown as typeof fetch;
  const { peer, token } = await store.allow("alice", 10_000);
  const key = await generateSigningKey();
  const client = new BackupClient("http://host.test", peer, key, { fetch: appFetch });
  return { kv, store, peer, token, key, client, appFetch };
}

Deno.test("parseGrant() reads what formatGrant() writes and refuses anything else", () => {
  const g = {
    url: "https://friend.example:8081",
    peer: "p-0123456789abcdef",
    token: "x".repeat(32),
  };
  assertEquals(parseGrant(formatGrant(g)), g);
  throws(() => parseGrant("https://friend.example:8081"), TypeError);
  throws(() => parseGrant("ftp://x#p-0123456789abcdef." + "x".repeat(32)), TypeError);
});

Deno.test("parseQuota() takes decimal and binary units", () => {
  assertEquals(parseQuota("20GB"), 20e9);
  assertEquals(parseQuota("1 MiB"), 1 << 20);
  throws(() => parseQuota("lots"), RangeError);
});

Deno.test("verifyManifest() refuses a changed body or another key", async () => {
  const key = await generateSigningKey();
  const m: Manifest = { v: 1, home: key.publicKey, seq: 1, created: 0, accounts: [] };
  const signed = await signManifest(key, m);
  assertEquals(await verifyManifest(signed, key.publicKey), m);
  await rejects(
    verifyManifest({ ...signed, body: signed.body.replace('"seq":1', '"seq":9') }, key.publicKey),
  );
  await rejects(verifyManifest(signed, (await generateSigningKey()).publicKey));
});

Deno.test("backup host: first contact pins, objects are checked, manifests must be complete", async () => {
  const { kv, client, token, key } = await setup();
  try {
    await rejects(
      client.putObject(objectIdOf(new Uint8Array([1])), new Uint8Array([1])),
      (e: BackupHostError) => e.status === 401,
    );
    await client.hello(token);
    await client.hello(token); // the same key again: harmless
    const bytes = new TextEncoder().encode("sealed bytes");
    const id = objectIdOf(bytes);
    assertEquals(await client.missing([id]), [id]);
    assertEquals(await client.putObject(id, bytes), true);
    assertEquals(await client.putObject(id, bytes), false);
    assertEquals(await client.missing([id]), []);
    assertEquals(await client.getObject(id), bytes);
    await rejects(
      client.putObject(objectIdOf(new Uint8Array([2])), bytes),
      (e: BackupHostError) => e.status === 400,
    );
    await rejects(
      client.putObject(objectIdOf(new Uint8Array(20_000)), new Uint8Array(20_000)),
      (e: BackupHostError) => e.status === 507,
    );
    const { recipient } = await generateAccountKey();
    const absent = objectIdOf(new Uint8Array([9, 9]));
    const bucket = encodeBlobList([{ id, size: bytes.length }, { id: absent, size: 2 }]);
    await client.putObject(objectIdOf(bucket), bucket);
    const list = encodeCatalog({
      buckets: [{ id: objectIdOf(bucket), size: bucket.length }],
      units: [],
    });
    await client.putObject(objectIdOf(list), list);
    const m: Manifest = {
      v: 1,
      home: key.publicKey,
      seq: 1,
      created: Date.now(),
      accounts: [{
        id: "a",
        recipient,
        snapshot: { id, size: bytes.length },
        wrapped: { id, size: bytes.length },
        blobs: { id: objectIdOf(list), size: list.length },
        messages: 0,
        bytes: 0,
      }],
    };
    await rejects(
      client.putManifest(await signManifest(key, m)),
      (e: BackupHostError) => e.status === 409 && /does not hold/.test(e.message),
    );
    const other = await generateSigningKey();
    await rejects(
      client.putManifest(await signManifest(other, { ...m, home: other.publicKey })),
      (e: BackupHostError) => e.status === 403,
    );
  } finally {
    kv.close();
  }
});
