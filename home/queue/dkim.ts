/**
 * DKIM for outgoing mail (RFC 6376): the box's signing key, the TXT record to
 * publish for it, and signing with mailauth.
 *
 * The key is RSA-2048 (RFC 8301 §3.2 requires at least 1024 bits; 2048 is
 * what receivers expect). Ed25519 (RFC 8463) is not yet accepted by every
 * receiver, so it would only ever be a second signature.
 *
 * @example
 * ```ts
 * const key = await ensureDkimKey("hearth-data");
 * dkimTxtRecord(key); // "v=DKIM1; k=rsa; p=MIIB…"
 * const signed = await signMessage(raw, { domain: "example.org", key });
 * ```
 */
import { Buffer } from "node:buffer";
import { dkimSign } from "mailauth/lib/dkim/sign.js";
import { normaliseLineEndings } from "../../src/mail/line_endings.ts";

export const defaultSelector = "hearth";

export interface DkimKey {
  selector: string;
  /** PKCS#8 PEM private key. */
  privateKeyPem: string;
  /** Base64 SubjectPublicKeyInfo (the `p=` tag). */
  publicKeyBase64: string;
}

function pem(label: string, der: Uint8Array): string {
  const b64 = btoa(String.fromCharCode(...der));
  return `-----BEGIN ${label}-----\n${b64.match(/.{1,64}/g)!.join("\n")}\n-----END ${label}-----\n`;
}

function derOf(pemText: string): Uint8Array {
  const b64 = pemText.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

async function publicKeyOf(privateKeyPem: string): Promise<string> {
  const priv = await crypto.subtle.importKey(
    "pkcs8",
    derOf(privateKeyPem) as BufferSource,
    { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
    true,
    ["sign"],
  );
  // The public key is n and e of the private key's JWK.
  const { n, e } = await crypto.subtle.exportKey("jwk", priv);
  const pub = await crypto.subtle.importKey(
    "jwk",
    { kty: "RSA", n, e, alg: "RS256", ext: true },
    { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
    true,
    ["verify"],
  );
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", pub));
  return btoa(String.fromCharCode(...spki));
}

/**
 * Returns the box's DKIM key, creating `DATA/dkim/<selector>.key` (0600) on
 * first use. Safe to call again: an existing key is never replaced.
 */
export async function ensureDkimKey(dataDir: string, selector = defaultSelector): Promise<DkimKey> {
  if (!/^[a-z0-9][a-z0-9-]*$/i.test(selector)) throw new TypeError(`bad selector ${selector}`);
  const path = `${dataDir}/dkim/${selector}.key`;
  let privateKeyPem: string;
  try {
    privateKeyPem = await Deno.readTextFile(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    await Deno.mkdir(`${dataDir}/dkim`, { recursive: true, mode: 0o700 });
    const pair = await crypto.subtle.generateKey(
      {
        name: "RSASSA-PKCS1-v1_5",
        modulusLength: 2048,
        publicExponent: new Uint8Array([1, 0, 1]),
        hash: "SHA-256",
      },
      true,
      ["sign", "verify"],
    );
    const der = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
    privateKeyPem = pem("PRIVATE KEY", der);
    // createNew: two processes racing here keep the first key, not a mix.
    try {
      await Deno.writeTextFile(path, privateKeyPem, { mode: 0o600, createNew: true });
    } catch (err) {
      if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
      privateKeyPem = await Deno.readTextFile(path);
    }
  }
  return { selector, privateKeyPem, publicKeyBase64: await publicKeyOf(privateKeyPem) };
}

/** The TXT record text to publish at `<selector>._domainkey.<domain>` (RFC 6376 §3.6.1). */
export function dkimTxtRecord(key: DkimKey): string {
  return `v=DKIM1; k=rsa; p=${key.publicKeyBase64}`;
}

/** The DNS name of the key record (RFC 6376 §3.6.2.1). */
export function dkimRecordName(key: DkimKey, domain: string): string {
  return `${key.selector}._domainkey.${domain}`;
}

/** Headers signed (RFC 6376 §5.4.1); From is required, the rest are what a reader sees. */
const signedHeaders = [
  "From",
  "Sender",
  "Reply-To",
  "Subject",
  "Date",
  "Message-ID",
  "To",
  "Cc",
  "MIME-Version",
  "Content-Type",
  "Content-Transfer-Encoding",
  "In-Reply-To",
  "References",
  "List-Unsubscribe",
  "List-Unsubscribe-Post",
];

/**
 * Prepends a DKIM-Signature (relaxed/relaxed, rsa-sha256, d=`domain`) to a
 * message whose line endings are already CRLF.
 */
export async function signMessage(
  raw: Uint8Array,
  opts: { domain: string; key: DkimKey; now?: number },
): Promise<Uint8Array> {
  const result = await dkimSign(
    Buffer.from(raw),
    {
      canonicalization: "relaxed/relaxed",
      algorithm: "rsa-sha256",
      signTime: new Date(opts.now ?? Date.now()),
      headerList: signedHeaders,
      signatureData: [{
        signingDomain: opts.domain,
        selector: opts.key.selector,
        privateKey: opts.key.privateKeyPem,
      }],
    } as unknown as Parameters<typeof dkimSign>[1],
  );
  if (result.errors?.length || !result.signatures) {
    const why = result.errors?.map((e: { err?: Error }) => e.err?.message ?? String(e)).join("; ");
    throw new Error(`DKIM signing failed: ${why || "no signature made"}`);
  }
  const header = new TextEncoder().encode(result.signatures);
  const out = new Uint8Array(header.length + raw.length);
  out.set(header);
  out.set(raw, header.length);
  return out;
}

/**
 * What the queue stores for a submitted message: line endings normalised to
 * CRLF (so the signature and the SMTP dot-stuffing see the same lines), then
 * signed. Pass it as `prepare` to `OutboundQueue.open`.
 */
export function signingPreparer(domain: string, key: DkimKey) {
  return (raw: Uint8Array) => signMessage(normaliseLineEndings(raw), { domain, key });
}
