/**
 * A fast age v1 encrypter for one X25519 recipient (https://age-encryption.org/v1,
 * c2sp.org/age). Sealing is the largest CPU cost per inbound message, so this
 * does in one synchronous pass, with the runtime's native crypto (node:crypto,
 * backed by Rust in Deno), what age-encryption does in pure JS through Web
 * Streams. Decryption stays on the library; the tests open every output with it
 * and with the `age` CLI.
 *
 * @example
 * ```ts
 * const sealed = sealX25519(new TextEncoder().encode("hi"), "age1…");
 * ```
 */
import {
  createCipheriv,
  createHmac,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  type KeyObject,
} from "node:crypto";
import { Buffer } from "node:buffer";

const encoder = new TextEncoder();

// c2sp.org/age "Header": version line, stanzas, then the MAC line.
const VERSION_LINE = "age-encryption.org/v1\n";
// c2sp.org/age "X25519 recipient stanza": HKDF info for the wrap key.
const X25519_INFO = encoder.encode("age-encryption.org/v1/X25519");
// c2sp.org/age "Header MAC" and "Payload": HKDF infos.
const HEADER_INFO = encoder.encode("header");
const PAYLOAD_INFO = encoder.encode("payload");
const EMPTY = new Uint8Array(0);

const FILE_KEY_SIZE = 16; // c2sp.org/age "File key": 16 bytes of CSPRNG output.
const PAYLOAD_NONCE_SIZE = 16; // c2sp.org/age "Payload": 16-byte nonce.
const CHUNK_SIZE = 64 * 1024; // c2sp.org/age "Payload": chunks of 64 KiB.
const TAG_SIZE = 16; // RFC 7539 Poly1305 tag.
// c2sp.org/age "Recipient stanza": body wrapped at 64 columns = 48 bytes a line.
const BODY_BYTES_PER_LINE = 48;

// RFC 8410 §4: SubjectPublicKeyInfo for X25519 is this prefix and the raw 32 bytes.
const X25519_SPKI_PREFIX = new Uint8Array([
  0x30,
  0x2a,
  0x30,
  0x05,
  0x06,
  0x03,
  0x2b,
  0x65,
  0x6e,
  0x03,
  0x21,
  0x00,
]);

// Parsed recipients, so a busy edge does not re-decode the same account key per message.
const MAX_CACHED_RECIPIENTS = 1024;
const recipientCache = new Map<string, { bytes: Uint8Array; key: KeyObject }>();

/** Everything of one age file that does not depend on its contents: used once, then dropped. */
export interface SealHeader {
  header: Uint8Array;
  nonce: Uint8Array;
  payloadKey: Uint8Array;
}

// Headers made ahead of time (sealAheadFor, or the header worker), per recipient. Each is taken
// out before use, so none ever serves two files (a reused file key would repeat the keystream).
const MAX_RECIPIENTS_AHEAD = 256;
const headersAhead = new Map<string, SealHeader[]>();

/**
 * Where headers come from when a worker makes them (header_worker.ts): asked for more whenever a
 * recipient's stock runs low. Without one, sealAheadFor makes a single header on this thread.
 */
export interface HeaderSource {
  /** Asks for more headers for `recipient`; they arrive through {@linkcode addHeadersAhead}. */
  refill(recipient: string, have: number): void;
}

let headerSource: HeaderSource | null = null;

/** Installs (or, with null, removes) the source that keeps headers in stock. */
export function setHeaderSource(source: HeaderSource | null): void {
  headerSource = source;
}

/**
 * Adds headers made elsewhere for `recipient`, at most `max` kept. Only for headers from
 * {@linkcode makeSealHeader}, each handed over once.
 */
export function addHeadersAhead(recipient: string, headers: SealHeader[], max: number): void {
  let stock = headersAhead.get(recipient);
  if (!stock) {
    if (headersAhead.size >= MAX_RECIPIENTS_AHEAD) {
      headersAhead.delete(headersAhead.keys().next().value!);
    }
    headersAhead.set(recipient, stock = []);
  }
  for (const h of headers) if (stock.length < max) stock.push(h);
}

/** How many made-ahead headers `recipient` has in stock. */
export function headersInStock(recipient: string): number {
  return headersAhead.get(recipient)?.length ?? 0;
}

/** Takes one made-ahead header for `recipient` out of the stock, if there is one. */
function takeHeader(recipient: string): SealHeader | undefined {
  const stock = headersAhead.get(recipient);
  const header = stock?.pop();
  headerSource?.refill(recipient, stock?.length ?? 0);
  return header;
}

/**
 * Seals bytes to one X25519 age recipient (`age1…`) and returns the binary age
 * file. Throws TypeError when the recipient is not a valid X25519 recipient.
 * Uses a header made by {@linkcode sealAheadFor} when one is ready.
 *
 * @example
 * ```ts
 * const file = sealX25519(new Uint8Array([1, 2, 3]), recipient);
 * // `age -d -i identity.txt` opens `file`.
 * ```
 */
export function sealX25519(data: Uint8Array, recipient: string): Uint8Array {
  return sealPayload(takeHeader(recipient) ?? makeSealHeader(recipient), data);
}

/**
 * Makes the next file header for `recipient` now (the X25519 exchange, the key
 * derivations and the header MAC: most of a small message's sealing), so that
 * the next {@linkcode sealX25519} to it only encrypts the payload. Call it when
 * the thread would otherwise wait (a delivery waiting for its fsync). Throws
 * TypeError like sealX25519. With a header worker running (header_worker.ts), it
 * only asks the worker to top up the recipient's stock.
 *
 * @example
 * ```ts
 * sealAheadFor(recipient);
 * const file = sealX25519(data, recipient); // uses the header made above
 * ```
 */
export function sealAheadFor(recipient: string): void {
  const have = headersInStock(recipient);
  // A worker keeps the stock: nothing to make on this thread.
  if (headerSource) return headerSource.refill(recipient, have);
  if (have === 0) addHeadersAhead(recipient, [makeSealHeader(recipient)], 1);
}

/**
 * A fresh file key, its recipient stanza, the header MAC and the payload key: everything of an
 * age file to `recipient` but its payload. TypeError like {@linkcode sealX25519}.
 */
export function makeSealHeader(recipient: string): SealHeader {
  const rcpt = parseRecipient(recipient);

  // c2sp.org/age "File key": fresh for every file.
  const fileKey = crypto.getRandomValues(new Uint8Array(FILE_KEY_SIZE));

  // c2sp.org/age "X25519 recipient stanza": a new ephemeral secret per stanza and file.
  const ephemeral = generateKeyPairSync("x25519");
  const share = new Uint8Array(
    ephemeral.publicKey.export({ type: "spki", format: "der" }).subarray(X25519_SPKI_PREFIX.length),
  );
  let secret: Uint8Array;
  try {
    secret = diffieHellman({ privateKey: ephemeral.privateKey, publicKey: rcpt.key });
  } catch {
    // OpenSSL-style derivation fails on an all-zero result: a low-order recipient.
    throw new TypeError("age recipient is a low-order point; it cannot receive mail");
  }
  // c2sp.org/age "X25519 recipient stanza": an all-zero shared secret MUST abort.
  if (secret.every((b) => b === 0)) {
    throw new TypeError("age recipient is a low-order point; it cannot receive mail");
  }
  const salt = new Uint8Array(share.length + rcpt.bytes.length);
  salt.set(share);
  salt.set(rcpt.bytes, share.length);
  const wrapKey = hkdf(secret, salt, X25519_INFO);
  // ChaCha20-Poly1305 with the fixed all-zero nonce; body is 16 + 16 = 32 bytes.
  const body = aeadSeal(wrapKey, new Uint8Array(12), fileKey);

  // c2sp.org/age "Header MAC": HMAC-SHA-256 over the header up to and including "---".
  const headerNoMac = VERSION_LINE + "-> X25519 " + base64NoPad(share) + "\n" +
    wrapBody(body) + "---";
  const macKey = hkdf(fileKey, EMPTY, HEADER_INFO);
  const mac = createHmac("sha256", macKey).update(headerNoMac).digest();
  const header = encoder.encode(headerNoMac + " " + base64NoPad(mac) + "\n");

  // c2sp.org/age "Payload": nonce, then the STREAM chunks.
  const nonce = crypto.getRandomValues(new Uint8Array(PAYLOAD_NONCE_SIZE));
  const payloadKey = hkdf(fileKey, nonce, PAYLOAD_INFO);
  return { header, nonce, payloadKey };
}

/** The age file: the header, the payload nonce, then the STREAM chunks of `data`. */
function sealPayload({ header, nonce, payloadKey }: SealHeader, data: Uint8Array): Uint8Array {
  // An empty plaintext is one empty final chunk; otherwise the final chunk is non-empty.
  const chunks = Math.max(1, Math.ceil(data.length / CHUNK_SIZE));
  const out = new Uint8Array(
    header.length + PAYLOAD_NONCE_SIZE + data.length + chunks * TAG_SIZE,
  );
  out.set(header);
  out.set(nonce, header.length);
  let at = header.length + PAYLOAD_NONCE_SIZE;
  // c2sp.org/age "Payload": 11-byte big-endian chunk counter || last-chunk flag.
  const chunkNonce = new Uint8Array(12);
  for (let i = 0; i < chunks; i++) {
    if (i === chunks - 1) chunkNonce[11] = 1;
    const start = i * CHUNK_SIZE;
    const plain = data.subarray(start, Math.min(start + CHUNK_SIZE, data.length));
    const cipher = createCipheriv("chacha20-poly1305", payloadKey, chunkNonce, {
      authTagLength: TAG_SIZE,
    });
    const sealed = cipher.update(plain);
    out.set(sealed, at);
    at += sealed.length;
    const tail = cipher.final();
    out.set(tail, at);
    at += tail.length;
    out.set(cipher.getAuthTag(), at);
    at += TAG_SIZE;
    incrementCounter(chunkNonce);
  }
  if (at !== out.length) throw new Error("age seal: payload length mismatch");
  return out;
}

/** ChaCha20-Poly1305 (RFC 7539) with no associated data: ciphertext || tag. */
function aeadSeal(key: Uint8Array, nonce: Uint8Array, plain: Uint8Array): Uint8Array {
  const cipher = createCipheriv("chacha20-poly1305", key, nonce, { authTagLength: TAG_SIZE });
  const head = cipher.update(plain);
  const tail = cipher.final();
  const out = new Uint8Array(head.length + tail.length + TAG_SIZE);
  out.set(head);
  out.set(tail, head.length);
  out.set(cipher.getAuthTag(), head.length + tail.length);
  return out;
}

/** HKDF-SHA-256 (RFC 5869), 32 bytes of output, as c2sp.org/age "Conventions" fixes. */
function hkdf(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array): Uint8Array {
  return new Uint8Array(hkdfSync("sha256", ikm, salt, info, 32));
}

/** Adds one to the 11-byte big-endian counter at the front of a STREAM nonce. */
function incrementCounter(nonce: Uint8Array): void {
  for (let i = 10; i >= 0; i--) {
    nonce[i]++;
    if (nonce[i] !== 0) return;
  }
  throw new RangeError("age seal: STREAM counter overflow");
}

/** Standard base64 without padding (c2sp.org/age "Conventions"; RFC 4648 §4). */
function base64NoPad(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return btoa(s).replace(/=+$/, "");
}

/**
 * A stanza body as lines of 64 columns, ending with a line shorter than 64
 * (empty when the body fills its last line), per c2sp.org/age "Recipient stanza".
 */
function wrapBody(body: Uint8Array): string {
  let s = "";
  for (let i = 0; i < body.length; i += BODY_BYTES_PER_LINE) {
    s += base64NoPad(body.subarray(i, i + BODY_BYTES_PER_LINE)) + "\n";
  }
  if (body.length % BODY_BYTES_PER_LINE === 0) s += "\n";
  return s;
}

/** Decodes and caches an `age1…` X25519 recipient; TypeError when it is not one. */
function parseRecipient(recipient: string): { bytes: Uint8Array; key: KeyObject } {
  const cached = recipientCache.get(recipient);
  if (cached) return cached;
  const bytes = decodeRecipient(recipient);
  const spki = new Uint8Array(X25519_SPKI_PREFIX.length + bytes.length);
  spki.set(X25519_SPKI_PREFIX);
  spki.set(bytes, X25519_SPKI_PREFIX.length);
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(spki), format: "der", type: "spki" });
  } catch {
    throw new TypeError("not an age X25519 recipient (expected age1…)");
  }
  const parsed = { bytes, key };
  if (recipientCache.size >= MAX_CACHED_RECIPIENTS) {
    recipientCache.delete(recipientCache.keys().next().value!);
  }
  recipientCache.set(recipient, parsed);
  return parsed;
}

const BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
const BECH32_GENERATOR = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];

function bech32Polymod(values: number[]): number {
  let chk = 1;
  for (const v of values) {
    const top = chk >>> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ v;
    for (let i = 0; i < 5; i++) if ((top >>> i) & 1) chk ^= BECH32_GENERATOR[i];
  }
  return chk;
}

/**
 * The 32-byte X25519 public key of an `age1…` recipient: Bech32 (BIP 173, not
 * Bech32m) with HRP "age", as c2sp.org/age "The X25519 recipient type" says.
 */
export function decodeRecipient(recipient: string): Uint8Array {
  const invalid = () => new TypeError("not an age X25519 recipient (expected age1…)");
  // The library accepts only the lowercase form; so do we (and no mixed case, BIP 173).
  if (!recipient.startsWith("age1")) throw invalid();
  const data: number[] = [];
  for (let i = 4; i < recipient.length; i++) {
    const v = BECH32_CHARSET.indexOf(recipient[i]);
    if (v < 0) throw invalid();
    data.push(v);
  }
  // 32 bytes are 52 five-bit groups, plus the 6-group checksum.
  if (data.length !== 52 + 6) throw invalid();
  const hrp = "age";
  const expanded: number[] = [];
  for (const c of hrp) expanded.push(c.charCodeAt(0) >> 5);
  expanded.push(0);
  for (const c of hrp) expanded.push(c.charCodeAt(0) & 31);
  // BIP 173: a valid Bech32 checksum makes the polymod 1 (Bech32m would be 0x2bc830a3).
  if (bech32Polymod(expanded.concat(data)) !== 1) throw invalid();
  // BIP 173 convertbits(5 → 8) without padding: leftover bits must be fewer than 5 and zero.
  const bytes = new Uint8Array(32);
  let acc = 0, bits = 0, n = 0;
  for (const v of data.slice(0, -6)) {
    acc = (acc << 5) | v;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      bytes[n++] = (acc >> bits) & 0xff;
    }
  }
  if (n !== 32 || bits >= 5 || (acc & ((1 << bits) - 1)) !== 0) throw invalid();
  return bytes;
}
