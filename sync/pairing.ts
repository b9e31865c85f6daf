/**
 * Pairing a phone with its home box through the edge (docs/sync.md).
 *
 * 1. `hearth phone pair` makes a one-time secret and shows a code holding the
 *    edge's URL, the home's id and key, the new device's id and the secret.
 * 2. The phone (`hearth phone join CODE`) makes its device keys and posts a
 *    hello — its Ed25519 key and age recipient, with an HMAC under the secret —
 *    to the edge's pairing box named by the secret's hash. The edge never sees
 *    the secret, so it can neither read the code from the box's name nor swap
 *    the phone's keys for its own.
 * 3. The home box checks the HMAC, registers the device's key with the edge,
 *    and sends a welcome (the account identity, among others) sealed to the
 *    device and signed by the home.
 *
 * @example
 * ```ts
 * const code = encodePairingCode({ edge, homeId, homeKey, device, secret });
 * const hello = await makeHello(decodePairingCode(code), deviceKeys);
 * ```
 */
import { fromBase64Url, sha256, toBase64Url, toHex } from "../src/encoding.ts";

export interface PairingCode {
  edge: string;
  homeId: string;
  /** The home's Ed25519 public key (base64url): the welcome is checked against it. */
  homeKey: string;
  /** The id the new device will have. */
  device: string;
  /** 32 random bytes, base64url. */
  secret: string;
}

/** What the phone posts to the pairing box. */
export interface Hello {
  publicKey: string;
  recipient: string;
  /** HMAC-SHA256 under the secret of `publicKey \n recipient \n device`, base64url. */
  mac: string;
}

export function newPairingSecret(): string {
  return toBase64Url(crypto.getRandomValues(new Uint8Array(32)));
}

/** The name of the pairing box on the edge: the secret's hash. */
export async function pairingBoxId(secret: string): Promise<string> {
  return toHex(await sha256(new TextEncoder().encode(`hearth-pairing:${secret}`)));
}

export function encodePairingCode(code: PairingCode): string {
  return toBase64Url(new TextEncoder().encode(JSON.stringify(code)));
}

export function decodePairingCode(text: string): PairingCode {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(new TextDecoder().decode(fromBase64Url(text.trim())));
  } catch {
    throw new TypeError("that is not a Hearth pairing code");
  }
  for (const k of ["edge", "homeId", "homeKey", "device", "secret"]) {
    if (typeof v?.[k] !== "string") throw new TypeError("that is not a Hearth pairing code");
  }
  return v as unknown as PairingCode;
}

async function mac(secret: string, text: string): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    fromBase64Url(secret) as Uint8Array<ArrayBuffer>,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return toBase64Url(
    new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(text))),
  );
}

export async function makeHello(
  code: PairingCode,
  keys: { publicKey: string; recipient: string },
): Promise<Hello> {
  const text = `${keys.publicKey}\n${keys.recipient}\n${code.device}`;
  return { ...keys, mac: await mac(code.secret, text) };
}

/** True when `hello` was made by the holder of the code's secret. */
export async function checkHello(code: PairingCode, hello: Hello): Promise<boolean> {
  if (typeof hello?.publicKey !== "string" || typeof hello?.recipient !== "string") return false;
  const want = await mac(code.secret, `${hello.publicKey}\n${hello.recipient}\n${code.device}`);
  // Both are fixed-length base64url HMACs; compare without an early exit.
  if (typeof hello.mac !== "string" || hello.mac.length !== want.length) return false;
  let diff = 0;
  for (let i = 0; i < want.length; i++) diff |= want.charCodeAt(i) ^ hello.mac.charCodeAt(i);
  return diff === 0;
}
