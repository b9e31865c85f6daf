/**
 * Device keys: every Hearth box and phone signs its requests with Ed25519
 * (WebCrypto). Keys are kept as base64url PKCS#8 / raw strings.
 *
 * @example
 * ```ts
 * const keys = await generateSigningKey();
 * const sig = await sign(keys.privateKey, new TextEncoder().encode("hello"));
 * await verify(keys.publicKey, sig, new TextEncoder().encode("hello")); // true
 * ```
 */
import { fromBase64Url, toBase64Url } from "../encoding.ts";

export interface SigningKey {
  /** base64url PKCS#8 private key. */
  privateKey: string;
  /** base64url raw 32-byte public key. */
  publicKey: string;
}

/** Makes a new Ed25519 signing key pair. */
export async function generateSigningKey(): Promise<SigningKey> {
  const pair = await crypto.subtle.generateKey("Ed25519", true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  return { privateKey: toBase64Url(pkcs8), publicKey: toBase64Url(raw) };
}

/** Signs data with a base64url PKCS#8 Ed25519 key. */
export async function sign(privateKey: string, data: Uint8Array): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey(
    "pkcs8",
    fromBase64Url(privateKey) as Uint8Array<ArrayBuffer>,
    "Ed25519",
    false,
    ["sign"],
  );
  return new Uint8Array(await crypto.subtle.sign("Ed25519", key, data as Uint8Array<ArrayBuffer>));
}

/** Verifies an Ed25519 signature against a base64url raw public key. */
export async function verify(
  publicKey: string,
  signature: Uint8Array,
  data: Uint8Array,
): Promise<boolean> {
  const key = await crypto.subtle.importKey(
    "raw",
    fromBase64Url(publicKey) as Uint8Array<ArrayBuffer>,
    "Ed25519",
    false,
    ["verify"],
  );
  return await crypto.subtle.verify(
    "Ed25519",
    key,
    signature as Uint8Array<ArrayBuffer>,
    data as Uint8Array<ArrayBuffer>,
  );
}
