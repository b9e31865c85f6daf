/**
 * The index key: everything readable that Hearth keeps beside the sealed
 * blobs (envelopes, structures, search text, folder names) is encrypted with
 * AES-256-GCM under a key derived by HKDF-SHA-256 (RFC 5869) from the account
 * identity. The same identity always yields the same key, so the recovery key
 * alone reopens the index.
 *
 * @example
 * ```ts
 * const key = await deriveIndexKey(identity);
 * const box = await encryptIndex(key, new TextEncoder().encode("Inbox"), "mailbox-name");
 * const name = await decryptIndex(key, box, "mailbox-name");
 * ```
 */
import { createCipheriv, createSecretKey, type KeyObject } from "node:crypto";

const encoder = new TextEncoder();

// The same key for node:crypto, which encrypts without leaving the thread (encryptIndexSync).
const nativeKeys = new WeakMap<CryptoKey, KeyObject>();

/** Derives the account's AES-256-GCM index key from its age identity. */
export async function deriveIndexKey(identity: string): Promise<CryptoKey> {
  const ikm = await crypto.subtle.importKey("raw", encoder.encode(identity.trim()), "HKDF", false, [
    "deriveBits",
  ]);
  // RFC 5869 HKDF-SHA-256, 256 bits: what deriveKey to AES-GCM-256 would derive.
  const bits = new Uint8Array(
    await crypto.subtle.deriveBits(
      {
        name: "HKDF",
        hash: "SHA-256",
        salt: encoder.encode("hearth index key v1"),
        info: encoder.encode("aes-256-gcm"),
      },
      ikm,
      256,
    ),
  );
  const key = await crypto.subtle.importKey("raw", bits, "AES-GCM", false, ["encrypt", "decrypt"]);
  nativeKeys.set(key, createSecretKey(bits));
  bits.fill(0);
  return key;
}

/**
 * {@linkcode encryptIndex} in one synchronous call, for a small value on a
 * latency path (a delivery's metadata before its `250`): WebCrypto's
 * asynchronous call waits for a worker thread, which costs more than the
 * encryption of a few kilobytes. Same output format. TypeError for a key not
 * made by {@linkcode deriveIndexKey}.
 *
 * @example
 * ```ts
 * const box = encryptIndexSync(key, new TextEncoder().encode("Inbox"), "mailbox-name");
 * ```
 */
export function encryptIndexSync(key: CryptoKey, plain: Uint8Array, context: string): Uint8Array {
  const native = nativeKeys.get(key);
  if (!native) throw new TypeError("encryptIndexSync needs a key made by deriveIndexKey");
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const cipher = createCipheriv("aes-256-gcm", native, iv);
  cipher.setAAD(encoder.encode(context));
  const head = cipher.update(plain);
  const tail = cipher.final();
  const out = new Uint8Array(12 + head.length + tail.length + 16);
  out.set(iv);
  out.set(head, 12);
  out.set(tail, 12 + head.length);
  out.set(cipher.getAuthTag(), 12 + head.length + tail.length);
  return out;
}

/**
 * Encrypts with a fresh 96-bit nonce; `context` is bound as additional data so
 * a value cannot be moved to another place (a folder name into a subject).
 * Output: nonce (12 bytes) || ciphertext with tag.
 */
export async function encryptIndex(
  key: CryptoKey,
  plain: Uint8Array,
  context: string,
): Promise<Uint8Array> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: encoder.encode(context) },
      key,
      plain as Uint8Array<ArrayBuffer>,
    ),
  );
  const out = new Uint8Array(12 + ct.length);
  out.set(iv);
  out.set(ct, 12);
  return out;
}

/** Decrypts what {@linkcode encryptIndex} made; throws on a wrong key, context or damaged data. */
export async function decryptIndex(
  key: CryptoKey,
  box: Uint8Array,
  context: string,
): Promise<Uint8Array> {
  if (box.length < 28) throw new RangeError("encrypted index value is truncated");
  const plain = await crypto.subtle.decrypt(
    {
      name: "AES-GCM",
      iv: box.subarray(0, 12) as Uint8Array<ArrayBuffer>,
      additionalData: encoder.encode(context),
    },
    key,
    box.subarray(12) as Uint8Array<ArrayBuffer>,
  );
  return new Uint8Array(plain);
}

/** Encrypts a JSON-serialisable value. */
export async function encryptJson(key: CryptoKey, value: unknown, context: string) {
  return await encryptIndex(key, encoder.encode(JSON.stringify(value)), context);
}

/** {@linkcode encryptJson} in one synchronous call (see {@linkcode encryptIndexSync}). */
export function encryptJsonSync(key: CryptoKey, value: unknown, context: string): Uint8Array {
  return encryptIndexSync(key, encoder.encode(JSON.stringify(value)), context);
}

/** Decrypts a value made by {@linkcode encryptJson}. */
export async function decryptJson<T>(key: CryptoKey, box: Uint8Array, context: string): Promise<T> {
  return JSON.parse(new TextDecoder().decode(await decryptIndex(key, box, context))) as T;
}
