/**
 * Sealed sync envelopes (DESIGN.md, Sync and the phone): what a home box and
 * a phone send each other through the edge's relay mailboxes, or directly on
 * the LAN. The payload is signed by the sender's Ed25519 key, then the signed
 * bytes are sealed with age to the receiving device's X25519 recipient. The
 * edge sees the recipient's mailbox and a ciphertext size, nothing else: not
 * even who sent it.
 *
 * The signature covers a domain string, the sender and recipient ids and the
 * payload, so an envelope cannot be replayed to another device or passed off
 * as someone else's. Freshness (replays to the same device) is the job of the
 * sync layer: it carries a sequence number inside the payload.
 *
 * Inner layout (before sealing): `u8 version=1 | u16 len | sender id | u16 len
 * | recipient id | 64-byte signature | payload`.
 *
 * @example
 * ```ts
 * const sealed = await sealEnvelope(payload, { id: "home-1", key }, { id: "dev-1", recipient });
 * const { sender, payload } = await openEnvelope(sealed, { id: "dev-1", identity }, keyOf);
 * ```
 */
import { openSealed, sealToRecipient } from "../src/crypto/age.ts";
import { sign, type SigningKey, verify } from "../src/crypto/device.ts";
import { ProtocolError } from "../src/errors.ts";

const version = 1;
const domain = new TextEncoder().encode("hearth-sync-envelope-v1\n");

export interface EnvelopeSender {
  id: string;
  key: SigningKey;
}

export interface EnvelopeRecipient {
  id: string;
  /** The device's age recipient (`age1…`). */
  recipient: string;
}

function signedBytes(sender: string, recipient: string, payload: Uint8Array): Uint8Array {
  const head = new TextEncoder().encode(`${sender}\n${recipient}\n`);
  const out = new Uint8Array(domain.length + head.length + payload.length);
  out.set(domain);
  out.set(head, domain.length);
  out.set(payload, domain.length + head.length);
  return out;
}

function writeString(out: number[], s: string) {
  const b = new TextEncoder().encode(s);
  if (b.length > 0xffff) throw new RangeError("id too long");
  out.push(b.length >> 8, b.length & 0xff, ...b);
}

/** Signs and seals `payload` from `sender` to `to`. */
export async function sealEnvelope(
  payload: Uint8Array,
  sender: EnvelopeSender,
  to: EnvelopeRecipient,
): Promise<Uint8Array> {
  const signature = await sign(sender.key.privateKey, signedBytes(sender.id, to.id, payload));
  const head: number[] = [version];
  writeString(head, sender.id);
  writeString(head, to.id);
  const inner = new Uint8Array(head.length + signature.length + payload.length);
  inner.set(head);
  inner.set(signature, head.length);
  inner.set(payload, head.length + signature.length);
  return await sealToRecipient(inner, to.recipient);
}

function bad(text: string): never {
  throw new ProtocolError("BAD", `sync envelope refused: ${text}`, { http: 400 });
}

/**
 * Opens an envelope addressed to `me`; checks the signature against the
 * sender's pinned key (`publicKeyOf`). Throws a ProtocolError naming what is
 * wrong: not for us, unknown sender, bad signature, malformed.
 */
export async function openEnvelope(
  sealed: Uint8Array,
  me: { id: string; identity: string },
  publicKeyOf: (id: string) => Promise<string | null>,
): Promise<{ sender: string; payload: Uint8Array }> {
  let inner: Uint8Array;
  try {
    inner = await openSealed(sealed, me.identity);
  } catch {
    bad("it is not sealed to this device, or it is damaged");
  }
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let at = 0;
  const readString = (): string => {
    if (at + 2 > inner.length) bad("truncated");
    const n = (inner[at] << 8) | inner[at + 1];
    at += 2;
    if (at + n > inner.length) bad("truncated");
    try {
      return decoder.decode(inner.subarray(at, at += n));
    } catch {
      bad("an id is not UTF-8");
    }
  };
  if (inner[at++] !== version) bad("unknown version");
  const sender = readString();
  const recipient = readString();
  if (recipient !== me.id) bad("it is addressed to another device");
  if (at + 64 > inner.length) bad("truncated");
  const signature = inner.subarray(at, at + 64);
  const payload = inner.slice(at + 64);
  const key = await publicKeyOf(sender);
  if (!key) bad(`the sender ${sender} is not paired`);
  if (!(await verify(key, signature, signedBytes(sender, recipient, payload)).catch(() => false))) {
    bad("the signature does not verify");
  }
  return { sender, payload };
}
