/**
 * Signed HTTP requests between Hearth boxes and the edge (DESIGN.md, trust
 * model). In the spirit of HTTP Message Signatures (RFC 9421), simplified to
 * one fixed set of covered components: the method, the path with its query,
 * the date, the body digest (RFC 9530 `Content-Digest`, sha-256), a nonce and
 * the key id, signed with Ed25519.
 *
 * The verifier refuses a date more than {@linkcode maxSkewMs} away from its
 * clock and a nonce it has seen for that key (the nonce store remembers each
 * nonce for twice the skew, so a replay is refused for as long as its date is
 * acceptable).
 *
 * @example
 * ```ts
 * const headers = await signRequest(key, "home-1", "GET", "/v1/home/mail", null);
 * const who = await verifyRequest({ method: "GET", path: "/v1/home/mail", headers, body: null }, {
 *   publicKeyOf: async (id) => id === "home-1" ? key.publicKey : null,
 *   claimNonce: async () => true,
 * });
 * ```
 */
import { sign, type SigningKey, verify } from "../crypto/device.ts";
import { fromBase64Url, sha256, toBase64Url } from "../encoding.ts";
import { ProtocolError } from "../errors.ts";

/** How far a request's date may be from the verifier's clock. */
export const maxSkewMs = 5 * 60_000;

export const signatureHeaders = {
  key: "hearth-key",
  date: "hearth-date",
  nonce: "hearth-nonce",
  digest: "content-digest",
  signature: "hearth-signature",
} as const;

/** RFC 9530 §2: `sha-256=:BASE64:` of the body (an empty body for none). */
export async function contentDigest(body: Uint8Array | null): Promise<string> {
  const digest = await sha256(body ?? new Uint8Array());
  return `sha-256=:${btoa(String.fromCharCode(...digest))}:`;
}

function signingBase(
  method: string,
  path: string,
  date: string,
  digest: string,
  nonce: string,
  keyId: string,
): Uint8Array {
  return new TextEncoder().encode(
    ["hearth-request-v1", method.toUpperCase(), path, date, digest, nonce, keyId].join("\n"),
  );
}

/** The headers that sign one request. `path` includes the query string. */
export async function signRequest(
  key: SigningKey,
  keyId: string,
  method: string,
  path: string,
  body: Uint8Array | null,
  now = Date.now(),
): Promise<Record<string, string>> {
  const date = new Date(now).toISOString();
  const nonce = toBase64Url(crypto.getRandomValues(new Uint8Array(16)));
  const digest = await contentDigest(body);
  const signature = await sign(
    key.privateKey,
    signingBase(method, path, date, digest, nonce, keyId),
  );
  return {
    [signatureHeaders.key]: keyId,
    [signatureHeaders.date]: date,
    [signatureHeaders.nonce]: nonce,
    [signatureHeaders.digest]: digest,
    [signatureHeaders.signature]: toBase64Url(signature),
  };
}

export interface SignedRequestParts {
  method: string;
  /** Path with query, as the client sent it. */
  path: string;
  headers: Headers | Record<string, string>;
  body: Uint8Array | null;
}

export interface VerifyOptions {
  /** The pinned public key of a key id, or null if unknown. */
  publicKeyOf(keyId: string): Promise<string | null>;
  /** Records a nonce for a key; false if it was already seen (a replay). */
  claimNonce(keyId: string, nonce: string, ttlMs: number): Promise<boolean>;
  now?: () => number;
}

function header(headers: Headers | Record<string, string>, name: string): string | null {
  if (headers instanceof Headers) return headers.get(name);
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === name) return v;
  return null;
}

function refuse(text: string): never {
  throw new ProtocolError("NO", text, { http: 401 });
}

/**
 * Checks a signed request and returns the key id that signed it. Throws a
 * ProtocolError with HTTP status 401 saying what is wrong.
 */
export async function verifyRequest(req: SignedRequestParts, opts: VerifyOptions): Promise<string> {
  const keyId = header(req.headers, signatureHeaders.key);
  const date = header(req.headers, signatureHeaders.date);
  const nonce = header(req.headers, signatureHeaders.nonce);
  const digest = header(req.headers, signatureHeaders.digest);
  const signature = header(req.headers, signatureHeaders.signature);
  if (!keyId || !date || !nonce || !digest || !signature) refuse("the request is not signed");
  if (nonce.length < 16 || nonce.length > 64) refuse("the request nonce is malformed");
  const when = Date.parse(date);
  const now = (opts.now ?? Date.now)();
  if (!Number.isFinite(when) || Math.abs(now - when) > maxSkewMs) {
    refuse("the request date is too far from the server's clock");
  }
  if (digest !== await contentDigest(req.body)) refuse("the body does not match its digest");
  const publicKey = await opts.publicKeyOf(keyId);
  if (!publicKey) refuse("the signing key is not registered here");
  let sig: Uint8Array;
  try {
    sig = fromBase64Url(signature);
  } catch {
    refuse("the signature is malformed");
  }
  const base = signingBase(req.method, req.path, date, digest, nonce, keyId);
  if (!(await verify(publicKey, sig, base).catch(() => false))) {
    refuse("the signature does not verify");
  }
  // Claimed last, so an unauthenticated request cannot burn someone's nonces.
  if (!(await opts.claimNonce(keyId, nonce, 2 * maxSkewMs))) refuse("the request was replayed");
  return keyId;
}
