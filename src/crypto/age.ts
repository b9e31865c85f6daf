/**
 * Sealing with age (https://age-encryption.org/v1): every message blob is an
 * age file sealed to its account's X25519 recipient, so the standard `age`
 * tool opens it with the recovery key. The account identity itself is kept
 * only wrapped under the account password (age's scrypt passphrase mode).
 *
 * @example
 * ```ts
 * const { identity, recipient } = await generateAccountKey();
 * const sealed = await sealToRecipient(new TextEncoder().encode("hi"), recipient);
 * const plain = await openSealed(sealed, identity);
 * ```
 */
import * as age from "age-encryption";
import { sealX25519 } from "./age_seal.ts";

/** An account's age key pair: `AGE-SECRET-KEY-1…` and `age1…`. */
export interface AccountKey {
  identity: string;
  recipient: string;
}

/** Makes a new X25519 account identity and its recipient. */
export async function generateAccountKey(): Promise<AccountKey> {
  const identity = await age.generateX25519Identity();
  const recipient = await age.identityToRecipient(identity);
  return { identity, recipient };
}

/** The recipient (`age1…`) of an identity; throws TypeError on a malformed identity. */
export async function recipientOf(identity: string): Promise<string> {
  try {
    return await age.identityToRecipient(identity.trim());
  } catch {
    throw new TypeError("not an age identity (expected AGE-SECRET-KEY-1…)");
  }
}

/**
 * Seals bytes to an X25519 age recipient (`age1…`); TypeError on anything else.
 * Uses the native-crypto encrypter in age_seal.ts, several times faster than
 * the library's Encrypter on the per-message hot path.
 */
export function sealToRecipient(data: Uint8Array, recipient: string): Promise<Uint8Array> {
  try {
    return Promise.resolve(sealX25519(data, recipient));
  } catch (e) {
    return Promise.reject(e);
  }
}

/** Opens an age file with an identity. Throws when the file is not for this identity or is damaged. */
export async function openSealed(sealed: Uint8Array, identity: string): Promise<Uint8Array> {
  const d = new age.Decrypter();
  d.addIdentity(identity);
  return await d.decrypt(sealed, "uint8array");
}

/**
 * Wraps an identity under a password with age's scrypt recipient. `logN` is
 * the scrypt work factor (age's default is 18, about a second here).
 */
export async function wrapIdentity(
  identity: string,
  password: string,
  logN: number,
): Promise<Uint8Array> {
  const e = new age.Encrypter();
  e.setPassphrase(password);
  e.setScryptWorkFactor(logN);
  return await e.encrypt(identity);
}

/** Unwraps an identity with its password; null when the password is wrong. */
export async function unwrapIdentity(
  wrapped: Uint8Array,
  password: string,
): Promise<string | null> {
  const d = new age.Decrypter();
  d.addPassphrase(password);
  try {
    return await d.decrypt(wrapped, "text");
  } catch {
    return null;
  }
}
