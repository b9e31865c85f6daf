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

const encoder = new TextEncoder();

/** Derives the account's AES-256-GCM index key from its age identity. */
export async function deriveIndexKey(identity: string): Promise<CryptoKey> {
  const ikm = await crypto.subtle.importKey("raw", encoder.encode(identity.trim()), "HKDF", false, [
    "deriveKey",
  ]);
  return await crypto.subtle.deriveKey(
    {
      name: "HKDF",
      hash: "SHA-256",
      salt: encoder.encode("hearth index key v1"),
      info: encoder.encode("aes-256-gcm"),
    },
    ikm,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt", "decrypt"],
  );
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

/** Decrypts a value made by {@linkcode encryptJson}. */
export async function decryptJson<T>(key: CryptoKey, box: Uint8Array, context: string): Promise<T> {
  return JSON.parse(new TextDecoder().decode(await decryptIndex(key, box, context))) as T;
}
