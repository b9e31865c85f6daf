/**
 * The friend's-box backup format (docs/backup.md): grants, object ids and
 * signed manifests. Shared by the backup host and the replicating home box.
 *
 * @example
 * ```ts
 * const grant = parseGrant("http://127.0.0.1:8081#p-1a2b.TOKEN");
 * const signed = await signManifest(homeKey, manifest);
 * const m = await verifyManifest(signed, homeKey.publicKey); // throws when tampered with
 * ```
 */
import { createHash } from "node:crypto";
import { gunzipSync, gzipSync } from "node:zlib";
import { sign, type SigningKey, verify } from "../../src/crypto/device.ts";
import { fromBase64Url, toBase64Url } from "../../src/encoding.ts";
import { ProtocolError } from "../../src/errors.ts";

/**
 * What a friend's box hands out: where it listens (or, `relay+https://…`, the
 * edge route to it: sync/backup/relay.ts), the peer slot, and a one-time secret.
 */
export interface Grant {
  url: string;
  peer: string;
  token: string;
}

const peerPattern = /^p-[0-9a-f]{16}$/;
const objectPattern = /^[0-9a-f]{32}$/;

/** `URL#PEER.TOKEN`: one line to copy from the friend's terminal to the home box. */
export function formatGrant(g: Grant): string {
  return `${g.url.replace(/\/+$/, "")}#${g.peer}.${g.token}`;
}

/** Parses a grant; TypeError with what a grant looks like when it is not one. */
export function parseGrant(text: string): Grant {
  const at = text.trim().lastIndexOf("#");
  const frag = at < 0 ? "" : text.trim().slice(at + 1);
  const dot = frag.indexOf(".");
  const url = text.trim().slice(0, at);
  const peer = frag.slice(0, dot);
  const token = frag.slice(dot + 1);
  if (
    at < 0 || dot < 0 || !peerPattern.test(peer) || token.length < 16 ||
    !/^(relay\+)?https?:\/\//.test(url)
  ) {
    throw new TypeError(
      'not a backup grant (expected "https://friend.example:8081#p-…" from "hearth friend allow")',
    );
  }
  return { url, peer, token };
}

export function isPeerId(id: string): boolean {
  return peerPattern.test(id);
}

export function isObjectId(id: string): boolean {
  return objectPattern.test(id);
}

/**
 * An object's id: the first 128 bits of the SHA-256 of its bytes, hex. For a
 * sealed message this is its blob id at home (home/store/blobs.ts), so the
 * friend stores the very same names.
 */
export function objectIdOf(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex").slice(0, 32);
}

/** A reference to an object, with its size so a restore can report and check progress. */
export interface ObjectRef {
  id: string;
  size: number;
}

/** One account in a manifest. Nothing here is readable: ids, sizes and public keys only. */
export interface ManifestAccount {
  /** The account's id at home (a random UUID). */
  id: string;
  /** Its age recipient: the snapshot is sealed to it, and restore proves the identity against it. */
  recipient: string;
  /** The account's KV entries (index, state, document), gzip, age-sealed to the recipient. */
  snapshot: ObjectRef;
  /** The identity wrapped under the account password (age scrypt), as stored at home. */
  wrapped: ObjectRef;
  /** The account's catalog (see {@linkcode Catalog}): blob list buckets and sealed state units. */
  blobs: ObjectRef;
  messages: number;
  bytes: number;
}

/** A signed statement by the home box of what one backup version consists of. */
export interface Manifest {
  v: 1;
  /** The home box's Ed25519 public key (base64url), which signs. */
  home: string;
  /** Increases by one per version; a restore refuses one lower than it has seen. */
  seq: number;
  created: number;
  accounts: ManifestAccount[];
}

/** A manifest as it travels and is stored: its exact bytes and the signature over them. */
export interface SignedManifest {
  body: string;
  signature: string;
}

const manifestContext = "hearth-backup-manifest-v1\n";

function signedBytes(body: string): Uint8Array {
  return new TextEncoder().encode(manifestContext + body);
}

/** Signs a manifest with the home key. */
export async function signManifest(key: SigningKey, m: Manifest): Promise<SignedManifest> {
  const body = JSON.stringify(m);
  return { body, signature: toBase64Url(await sign(key.privateKey, signedBytes(body))) };
}

/**
 * Checks a manifest's signature against the expected home key and its shape;
 * a ProtocolError saying what is wrong otherwise.
 */
export async function verifyManifest(s: SignedManifest, publicKey: string): Promise<Manifest> {
  let sig: Uint8Array;
  try {
    sig = fromBase64Url(s.signature);
  } catch {
    throw new ProtocolError("BAD", "the manifest signature is malformed");
  }
  if (
    typeof s.body !== "string" ||
    !(await verify(publicKey, sig, signedBytes(s.body)).catch(() => false))
  ) {
    throw new ProtocolError("NO", "the manifest signature does not verify", { http: 403 });
  }
  let m: Manifest;
  try {
    m = JSON.parse(s.body);
  } catch {
    throw new ProtocolError("BAD", "the manifest is not JSON");
  }
  const refOk = (r: ObjectRef | undefined) =>
    !!r && isObjectId(r.id) && Number.isSafeInteger(r.size) && r.size >= 0;
  if (
    m.v !== 1 || m.home !== publicKey || !Number.isSafeInteger(m.seq) || m.seq < 1 ||
    !Array.isArray(m.accounts) ||
    !m.accounts.every((a) =>
      typeof a.id === "string" && typeof a.recipient === "string" && refOk(a.snapshot) &&
      refOk(a.wrapped) && refOk(a.blobs)
    )
  ) {
    throw new ProtocolError("BAD", "the manifest is not a Hearth backup manifest");
  }
  return m;
}

/** The objects a manifest names directly (the blob lists name the rest). */
export function manifestRefs(m: Manifest): ObjectRef[] {
  return m.accounts.flatMap((a) => [a.snapshot, a.wrapped, a.blobs]);
}

/** A message in a blob list: its sealed blob and the object with its encrypted index entries. */
export interface BlobEntry extends ObjectRef {
  /** The message's metadata and search text, already AES-GCM encrypted at home; absent for an arrival. */
  index?: ObjectRef;
}

/**
 * Encodes a blob list object: sorted `id size [indexId indexSize]` lines, gzip, so
 * the same set gives the same object.
 */
export function encodeBlobList(blobs: BlobEntry[]): Uint8Array {
  const lines = blobs.map((b) =>
    b.index ? `${b.id} ${b.size} ${b.index.id} ${b.index.size}` : `${b.id} ${b.size}`
  ).sort();
  return packLines(lines);
}

/** Largest list a host or restore expands (a small gzip must not become gigabytes). */
const maxListBytes = 64 * 1024 * 1024;

/** Lines as gzip (deterministic: the same lines give the same bytes, so the same object id). */
function packLines(lines: string[]): Uint8Array {
  return new Uint8Array(gzipSync(new TextEncoder().encode(lines.join("\n")), { level: 9 }));
}

function unpackLines(bytes: Uint8Array, what: string): string {
  try {
    return new TextDecoder().decode(gunzipSync(bytes, { maxOutputLength: maxListBytes }));
  } catch {
    throw new ProtocolError("BAD", `a ${what} object is damaged`);
  }
}

/** Decodes a blob list object; ProtocolError when it is not one. */
export function decodeBlobList(bytes: Uint8Array): BlobEntry[] {
  const text = unpackLines(bytes, "blob list");
  if (!text) return [];
  return decodeBlobLines(text.split("\n"), "blob list");
}

function decodeBlobLines(lines: string[], what: string): BlobEntry[] {
  const size = (s: string | undefined) => /^\d+$/.test(s ?? "");
  return lines.map((line) => {
    const [id, n, indexId, indexSize] = line.split(" ");
    const withIndex = indexId !== undefined;
    if (
      !isObjectId(id) || !size(n) || (withIndex && (!isObjectId(indexId) || !size(indexSize)))
    ) {
      throw new ProtocolError("BAD", `a ${what} object is damaged`);
    }
    const entry: BlobEntry = { id, size: Number(n) };
    if (withIndex) entry.index = { id: indexId, size: Number(indexSize) };
    return entry;
  });
}

/** Every object id a blob list names: blobs and their index objects. */
export function blobListIds(list: BlobEntry[]): string[] {
  return list.flatMap((b) => b.index ? [b.id, b.index.id] : [b.id]);
}

/** Objects in one upload request, a batch at most this large (one at least, whatever its size). */
export const batchBytes = 8 * 1024 * 1024;
/**
 * Objects per upload request: one pack file and one KV commit on the host, whose pack record
 * (24 bytes an object, pack_index.ts) stays under Deno KV's 64 KiB value limit.
 */
export const batchObjects = 2000;

/** Frames objects for one upload: per object its 32-character id, a u32 length, the bytes. */
export function encodeObjectBatch(
  items: { id: string; bytes: Uint8Array }[],
  scratch?: Uint8Array,
): Uint8Array {
  const total = items.reduce((n, i) => n + 36 + i.bytes.length, 0);
  // A sender's reused buffer when it fits (a run allocates one per batch in flight, not per batch).
  const out = scratch && scratch.length >= total
    ? scratch.subarray(0, total)
    : new Uint8Array(total);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  let off = 0;
  for (const { id, bytes } of items) {
    out.set(new TextEncoder().encode(id), off);
    view.setUint32(off + 32, bytes.length);
    out.set(bytes, off + 36);
    off += 36 + bytes.length;
  }
  return out;
}

/**
 * What a batch upload's signature covers: its framing, each object's id and length. The
 * bytes themselves are bound to their ids by the host's digest check.
 */
export function batchSummary(items: { id: string; bytes: Uint8Array }[]): Uint8Array {
  const head = new TextEncoder().encode("hearth-backup-batch-v1\n");
  const out = new Uint8Array(head.length + items.length * 36);
  const view = new DataView(out.buffer);
  out.set(head);
  items.forEach(({ id, bytes }, i) => {
    new TextEncoder().encodeInto(id, out.subarray(head.length + i * 36));
    view.setUint32(head.length + i * 36 + 32, bytes.length);
  });
  return out;
}

/** The inverse of {@linkcode encodeObjectBatch}; ProtocolError on a malformed body. */
export function decodeObjectBatch(body: Uint8Array): { id: string; bytes: Uint8Array }[] {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const items: { id: string; bytes: Uint8Array }[] = [];
  let off = 0;
  while (off < body.length) {
    if (off + 36 > body.length || items.length >= batchObjects) {
      throw new ProtocolError("BAD", "the object batch is malformed");
    }
    const id = new TextDecoder().decode(body.subarray(off, off + 32));
    const len = view.getUint32(off + 32);
    if (!isObjectId(id) || off + 36 + len > body.length) {
      throw new ProtocolError("BAD", "the object batch is malformed");
    }
    items.push({ id, bytes: body.subarray(off + 36, off + 36 + len) });
    off += 36 + len;
  }
  return items;
}

/**
 * An account's catalog object: the blob list split in buckets (by the first two hex digits of
 * the blob id), the deltas appended since the buckets were last written (in order; see
 * {@linkcode BlobDelta}), and the sealed units of its state (snapshot generations, log entries,
 * document generations, sent once each).
 */
export interface Catalog {
  buckets: ObjectRef[];
  units: ObjectRef[];
  /** Applied over the buckets, first to last. */
  deltas: ObjectRef[];
}

export function encodeCatalog(c: Omit<Catalog, "deltas"> & { deltas?: ObjectRef[] }): Uint8Array {
  const lines = [
    ...c.buckets.map((b) => `b ${b.id} ${b.size}`),
    ...c.units.map((u) => `u ${u.id} ${u.size}`),
    // The position keeps the order through the sort (and makes two equal deltas distinct).
    ...(c.deltas ?? []).map((d, i) => `d ${String(i).padStart(6, "0")} ${d.id} ${d.size}`),
  ].sort();
  return packLines(lines);
}

/** Decodes a catalog; ProtocolError when it is not one. */
export function decodeCatalog(bytes: Uint8Array): Catalog {
  const out: Catalog = { buckets: [], units: [], deltas: [] };
  const text = unpackLines(bytes, "catalog");
  if (!text) return out;
  const damaged = () => new ProtocolError("BAD", "a catalog object is damaged");
  for (const line of text.split("\n")) {
    const parts = line.split(" ");
    if (parts[0] === "d") {
      const [, pos, id, size] = parts;
      if (
        pos !== String(out.deltas.length).padStart(6, "0") || !isObjectId(id) ||
        !/^\d+$/.test(size ?? "")
      ) throw damaged();
      out.deltas.push({ id, size: Number(size) });
      continue;
    }
    const [kind, id, size] = parts;
    if ((kind !== "b" && kind !== "u") || !isObjectId(id) || !/^\d+$/.test(size ?? "")) {
      throw damaged();
    }
    (kind === "b" ? out.buckets : out.units).push({ id, size: Number(size) });
  }
  return out;
}

/**
 * What one run changed in an account's blob list: entries added (or whose index object
 * changed: an arrival indexed since) and blob ids removed (expunged). Appended to the catalog
 * instead of rewriting the buckets those entries fall in; the home box folds the deltas into
 * the buckets now and then (home/backup_lists.ts).
 */
export interface BlobDelta {
  added: BlobEntry[];
  removed: string[];
}

/** Encodes a delta: blob list lines for the additions, `-id` lines for removals; gzip. */
export function encodeBlobDelta(d: BlobDelta): Uint8Array {
  const lines = [
    ...d.added.map((b) =>
      b.index ? `${b.id} ${b.size} ${b.index.id} ${b.index.size}` : `${b.id} ${b.size}`
    ),
    ...d.removed.map((id) => `-${id}`),
  ].sort();
  return packLines(lines);
}

/** Decodes a delta; ProtocolError when it is not one. */
export function decodeBlobDelta(bytes: Uint8Array): BlobDelta {
  const text = unpackLines(bytes, "blob list delta");
  const out: BlobDelta = { added: [], removed: [] };
  if (!text) return out;
  const adds: string[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("-")) {
      adds.push(line);
      continue;
    }
    if (!isObjectId(line.slice(1))) {
      throw new ProtocolError("BAD", "a blob list delta object is damaged");
    }
    out.removed.push(line.slice(1));
  }
  out.added = decodeBlobLines(adds, "blob list delta");
  return out;
}

/** The account's blob list: the buckets' entries with the deltas applied in order. */
export function resolveBlobList(buckets: BlobEntry[][], deltas: BlobDelta[]): BlobEntry[] {
  const byId = new Map<string, BlobEntry>();
  for (const list of buckets) for (const e of list) byId.set(e.id, e);
  for (const d of deltas) {
    for (const id of d.removed) byId.delete(id);
    for (const e of d.added) byId.set(e.id, e);
  }
  return [...byId.values()];
}
