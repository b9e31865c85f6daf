/**
 * The lookup key of a mail address: a SHA-256 of the normalised address.
 * The home box indexes logins by it and the edge checks RCPT TO against the
 * keys the home box registered, so neither stores an address in clear.
 *
 * @example
 * ```ts
 * await addressKey("Me@Example.org") === await addressKey("me@example.org"); // true
 * ```
 */
import { sha256, toHex } from "../encoding.ts";

/** Normalises an address for lookups: the domain is case-insensitive, and so (in Hearth) is the local part. */
export function normaliseAddress(address: string): string {
  return address.trim().toLowerCase();
}

export async function addressKey(address: string): Promise<string> {
  return toHex(await sha256(new TextEncoder().encode(`hearth-login:${normaliseAddress(address)}`)));
}
