/**
 * The backup host's HTTP API (docs/backup.md), a Hono app with no Deno calls:
 * served by any Hearth box's home HTTP port (home/http.ts). Every route
 * under `/v1/backup/peers/:peer` is signed (src/wire/signed_request.ts) by
 * the peer's pinned key; reads also by a restore session's key. Write-only:
 * objects are added, never replaced or deleted on request.
 *
 * @example
 * ```ts
 * const app = createBackupHostApp({ store: new BackupHostStore(kv, new ObjectFiles(dir)) });
 * const res = await app.request("/v1/backup/health");
 * ```
 */
import { type Context, Hono, type MiddlewareHandler } from "hono";
import { ProtocolError } from "../../src/errors.ts";
import { jsonObject, readBody, requestPath } from "../../src/wire/http_body.ts";
import { limits } from "../../src/limits.ts";
import { log } from "../../src/log.ts";
import { verifyRequest } from "../../src/wire/signed_request.ts";
import {
  batchBytes,
  batchObjects,
  batchSummary,
  decodeObjectBatch,
  encodeObjectBatch,
  isObjectId,
  isPeerId,
  type SignedManifest,
} from "./format.ts";
import type { BackupHostStore } from "./host_store.ts";

export interface BackupHostDeps {
  store: BackupHostStore;
  now?: () => number;
}

type Env = { Variables: { body: Uint8Array | null; keyId: string } };

// One object at the limit, with its batch framing (bodies are read before the signature check).
const bodyOf = (c: Context) => readBody(c.req.raw, limits.backupObjectBytes + 64 * 1024);
const jsonOf = jsonObject;
const pathOf = (c: Context) => requestPath(c.req.raw);

function peerOf(c: Context): string {
  const peer = c.req.param("peer") ?? "";
  if (!isPeerId(peer)) throw new ProtocolError("BAD", "not a backup peer id", { http: 404 });
  return peer;
}

export function createBackupHostApp(deps: BackupHostDeps): Hono<Env> {
  const { store } = deps;
  const now = deps.now ?? Date.now;
  const app = new Hono<Env>();

  app.onError((err, c) => {
    if (err instanceof ProtocolError) {
      return c.json({ error: err.message }, (err.http ?? 400) as 400);
    }
    log.error("backup-host.http-error", { path: c.req.path, error: err });
    return c.json({ error: "internal error; try again later" }, 500);
  });
  app.notFound((c) => c.json({ error: "no such route" }, 404));
  app.get("/v1/backup/health", (c) => c.json({ ok: true }));

  const verify = (
    c: Context,
    body: Uint8Array | null,
    keyOf: (id: string) => Promise<string | null>,
  ) =>
    verifyRequest({ method: c.req.method, path: pathOf(c), headers: c.req.raw.headers, body }, {
      publicKeyOf: keyOf,
      claimNonce: (id, nonce, ttl) => store.claimNonce(`${peerOf(c)}:${id}`, nonce, ttl),
      now,
    });

  // First contact: the token proves the grant; the signature proves the key being pinned.
  app.post("/v1/backup/peers/:peer/hello", async (c) => {
    const peer = peerOf(c);
    const body = await bodyOf(c);
    const req = jsonOf<{ token?: unknown; publicKey?: unknown }>(body);
    if (typeof req.token !== "string" || typeof req.publicKey !== "string") {
      throw new ProtocolError("BAD", "token and publicKey are required");
    }
    await verify(c, body, (id) => Promise.resolve(id === peer ? req.publicKey as string : null));
    const wasPinned = (await store.peer(peer))?.publicKey === req.publicKey;
    await store.pin(peer, req.token, req.publicKey);
    const rec = (await store.peer(peer))!;
    if (!wasPinned) log.info("backup-host.peer-pinned", { peer });
    return c.json({
      peer,
      quotaBytes: rec.quotaBytes,
      usedBytes: rec.usedBytes,
      latestSeq: rec.latestSeq,
    });
  });

  // A restore on a new machine: the grant's token, then a challenge only an account key opens.
  app.post("/v1/backup/peers/:peer/restore", async (c) => {
    const peer = peerOf(c);
    const body = await bodyOf(c);
    const req = jsonOf<{ token?: unknown; publicKey?: unknown }>(body);
    if (typeof req.token !== "string" || typeof req.publicKey !== "string") {
      throw new ProtocolError("BAD", "token and publicKey are required");
    }
    await verify(c, body, () => Promise.resolve(req.publicKey as string));
    return c.json(await store.startRestore(peer, req.token, req.publicKey));
  });
  // A restore with the URL and a recovery key only: the key's recipient finds the peer.
  app.post("/v1/backup/restore", async (c) => {
    const body = await bodyOf(c);
    const req = jsonOf<{ recipients?: unknown; publicKey?: unknown; peer?: unknown }>(body);
    if (
      !Array.isArray(req.recipients) || !req.recipients.length || req.recipients.length > 64 ||
      !req.recipients.every((r) => typeof r === "string" && r.startsWith("age1")) ||
      typeof req.publicKey !== "string" ||
      (req.peer !== undefined && (typeof req.peer !== "string" || !isPeerId(req.peer)))
    ) {
      throw new ProtocolError("BAD", "recipients (age1…, at most 64) and publicKey are required");
    }
    await verifyRequest(
      { method: c.req.method, path: pathOf(c), headers: c.req.raw.headers, body },
      {
        publicKeyOf: () => Promise.resolve(req.publicKey as string),
        claimNonce: (id, nonce, ttl) => store.claimNonce(`restore:${id}`, nonce, ttl),
        now,
      },
    );
    return c.json(
      await store.startRestoreByRecipient(
        req.recipients as string[],
        req.publicKey,
        req.peer as string | undefined,
      ),
    );
  });
  app.post("/v1/backup/peers/:peer/restore/:session", async (c) => {
    const peer = peerOf(c);
    const session = c.req.param("session");
    const body = await bodyOf(c);
    const req = jsonOf<{ answer?: unknown }>(body);
    if (typeof req.answer !== "string") throw new ProtocolError("BAD", "answer is required");
    await verify(
      c,
      body,
      (id) => id === `r-${session}` ? store.challengeKey(peer, session) : Promise.resolve(null),
    );
    return c.json({ keyId: await store.finishRestore(peer, session, req.answer) });
  });

  /** Signed by the pinned key; `read` also admits a restore session's key. */
  const signed = (read: boolean, signedPart?: (body: Uint8Array) => Uint8Array) =>
    (async (c, next) => {
      const peer = peerOf(c);
      const body = await bodyOf(c);
      const part = signedPart ? signedPart(body ?? new Uint8Array()) : body;
      const keyId = await verify(c, part, (id) => store.keyFor(peer, id, read));
      c.set("body", body);
      c.set("keyId", keyId);
      if (keyId === peer) await store.touch(peer);
      await next();
    }) as MiddlewareHandler<Env>;
  const reader = signed(true);
  const writer = signed(false);
  // A batch is signed over its framing (ids and lengths): each object's bytes are bound to its
  // id by the digest check that follows, so every byte of the body is covered, hashed once.
  const batchWriter = signed(false, (body) => batchSummary(decodeObjectBatch(body)));

  app.get("/v1/backup/peers/:peer/status", reader, async (c) => {
    const rec = (await store.peer(peerOf(c)))!;
    return c.json({
      quotaBytes: rec.quotaBytes,
      usedBytes: rec.usedBytes,
      objects: rec.objects,
      latestSeq: rec.latestSeq,
      home: rec.publicKey,
      prune: await store.pendingPrune(rec.id),
    });
  });

  app.post("/v1/backup/peers/:peer/missing", writer, async (c) => {
    const { ids } = jsonOf<{ ids?: unknown }>(c.get("body"));
    if (
      !Array.isArray(ids) || ids.length > 10_000 ||
      !ids.every((i) => typeof i === "string" && isObjectId(i))
    ) {
      throw new ProtocolError("BAD", "ids must be at most 10000 object ids");
    }
    return c.json({ missing: await store.missing(peerOf(c), ids as string[]) });
  });

  app.put("/v1/backup/peers/:peer/objects/:id", writer, async (c) => {
    const id = c.req.param("id");
    if (!isObjectId(id)) throw new ProtocolError("BAD", "not an object id");
    const res = await store.putObject(peerOf(c), id, c.get("body") ?? new Uint8Array());
    return c.json(res, res.stored ? 201 : 200);
  });

  // A batch of objects in one request (encodeObjectBatch): one pack file, one KV commit.
  app.post("/v1/backup/peers/:peer/objects", batchWriter, async (c) => {
    const body = c.get("body") ?? new Uint8Array();
    return c.json(await store.putObjects(peerOf(c), decodeObjectBatch(body), body));
  });

  // Several objects in one answer (a restore): those held, framed like an upload.
  app.post("/v1/backup/peers/:peer/objects/read", reader, async (c) => {
    const { ids } = jsonOf<{ ids?: unknown }>(c.get("body"));
    if (
      !Array.isArray(ids) || ids.length > batchObjects ||
      !ids.every((i) => typeof i === "string" && isObjectId(i))
    ) {
      throw new ProtocolError("BAD", `ids must be at most ${batchObjects} object ids`);
    }
    const items: { id: string; bytes: Uint8Array }[] = [];
    let size = 0;
    for (const id of ids as string[]) {
      const bytes = await store.getObject(peerOf(c), id);
      if (!bytes) continue;
      // One answer stays bounded: the client asks again for what did not fit.
      if (items.length && size + bytes.length > batchBytes) break;
      items.push({ id, bytes });
      size += bytes.length;
    }
    return c.body(encodeObjectBatch(items) as Uint8Array<ArrayBuffer>, 200, {
      "content-type": "application/octet-stream",
    });
  });

  app.get("/v1/backup/peers/:peer/objects/:id", reader, async (c) => {
    const id = c.req.param("id");
    if (!isObjectId(id)) throw new ProtocolError("BAD", "not an object id");
    const bytes = await store.getObject(peerOf(c), id);
    if (!bytes) throw new ProtocolError("NO", `object ${id} is not held here`, { http: 404 });
    return c.body(bytes as Uint8Array<ArrayBuffer>, 200, {
      "content-type": "application/octet-stream",
    });
  });

  // Write-only by design (DESIGN.md, trust model): no request deletes an object.
  app.delete("/v1/backup/peers/:peer/objects/:id", writer, () => {
    throw new ProtocolError(
      "NO",
      "objects are never deleted on request; send a prune, which takes effect after the grace period",
      { http: 405 },
    );
  });

  app.post("/v1/backup/peers/:peer/manifests", writer, async (c) => {
    const signedManifest = jsonOf<SignedManifest>(c.get("body"));
    const m = await store.putManifest(peerOf(c), signedManifest);
    return c.json({ seq: m.seq }, 201);
  });

  app.get("/v1/backup/peers/:peer/manifests", reader, async (c) => {
    const rec = (await store.peer(peerOf(c)))!;
    return c.json({ home: rec.publicKey, manifests: await store.manifests(rec.id) });
  });

  app.get("/v1/backup/peers/:peer/manifests/:seq", reader, async (c) => {
    const seq = Number(c.req.param("seq"));
    const m = Number.isSafeInteger(seq) ? await store.manifest(peerOf(c), seq) : null;
    if (!m) throw new ProtocolError("NO", "no such manifest", { http: 404 });
    return c.json(m);
  });

  // Pruning: signed by the owner's key, carried out only after the grace period.
  app.post("/v1/backup/peers/:peer/prune", writer, async (c) => {
    const { keepFrom } = jsonOf<{ keepFrom?: unknown }>(c.get("body"));
    if (!Number.isSafeInteger(keepFrom)) throw new ProtocolError("BAD", "keepFrom is required");
    const prune = await store.requestPrune(peerOf(c), keepFrom as number);
    return c.json(prune, 202);
  });

  return app;
}
