/**
 * The private certificate authority that `hearth init` makes for local use:
 * an ECDSA P-256 CA (never used as a server certificate: Deno rejects a CA as
 * an end-entity certificate) and a leaf for the box's host names.
 *
 * @example
 * ```ts
 * const ca = await makeCertificateAuthority("Hearth local CA");
 * const leaf = await issueServerCertificate(ca, ["localhost", "127.0.0.1"]);
 * Deno.listenTls({ port: 0, cert: leaf.certPem, key: leaf.keyPem });
 * ```
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(crypto);

const algorithm = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
const dayMs = 24 * 60 * 60 * 1000;

export interface CertificateAuthority {
  certPem: string;
  keyPem: string;
}

export interface ServerCertificate {
  certPem: string;
  keyPem: string;
}

function randomSerial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  bytes[0] &= 0x7f; // a positive INTEGER (RFC 5280 §4.1.2.2)
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function exportKeyPem(key: CryptoKey): Promise<string> {
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", key);
  return x509.PemConverter.encode(pkcs8, "PRIVATE KEY");
}

/** Makes a self-signed CA valid for ten years. */
export async function makeCertificateAuthority(name: string): Promise<CertificateAuthority> {
  const keys = await crypto.subtle.generateKey(algorithm, true, ["sign", "verify"]);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: `CN=${name.replace(/[,=+<>#;\\"]/g, " ")}`,
    notBefore: new Date(Date.now() - dayMs),
    notAfter: new Date(Date.now() + 3650 * dayMs),
    keys,
    signingAlgorithm: algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
    ],
  });
  return { certPem: cert.toString("pem"), keyPem: await exportKeyPem(keys.privateKey) };
}

/** When a certificate is valid; {@linkcode issueServerCertificate} defaults to about two years. */
export interface Validity {
  notBefore: Date;
  notAfter: Date;
}

/**
 * Issues a server certificate for host names and IP addresses, valid for about two years
 * (from a day ago) unless `validity` says otherwise (tests make expired ones).
 */
export async function issueServerCertificate(
  ca: CertificateAuthority,
  names: string[],
  validity?: Validity,
): Promise<ServerCertificate> {
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = await crypto.subtle.importKey(
    "pkcs8",
    x509.PemConverter.decodeFirst(ca.keyPem),
    algorithm,
    false,
    ["sign"],
  );
  const keys = await crypto.subtle.generateKey(algorithm, true, ["sign", "verify"]);
  const isIp = (n: string) => /^[0-9.]+$/.test(n) || n.includes(":");
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `CN=${names[0]}`,
    issuer: caCert.subject,
    notBefore: validity?.notBefore ?? new Date(Date.now() - dayMs),
    notAfter: validity?.notAfter ?? new Date(Date.now() + 800 * dayMs),
    signingKey: caKey,
    publicKey: keys.publicKey,
    signingAlgorithm: algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(
        names.map((n) => ({ type: isIp(n) ? "ip" as const : "dns" as const, value: n })),
      ),
    ],
  });
  return { certPem: cert.toString("pem"), keyPem: await exportKeyPem(keys.privateKey) };
}

/** What `hearth doctor` checks of a certificate: its validity and the names it covers. */
export interface CertificateInfo extends Validity {
  subject: string;
  /** Subject alternative names: DNS names and IP addresses. */
  names: string[];
}

/** Reads the first certificate of a PEM file. Throws on anything that is not one. */
export function certificateInfo(pem: string): CertificateInfo {
  const cert = new x509.X509Certificate(pem);
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const names = (san?.names.items ?? []).filter((n) => n.type === "dns" || n.type === "ip")
    .map((n) => n.value);
  return { subject: cert.subject, notBefore: cert.notBefore, notAfter: cert.notAfter, names };
}

/** Whether a path exists (other errors, such as permission, are thrown). */
export async function fileExists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/**
 * Makes `DIR/tls/` hold a private CA and a server certificate for `names`
 * unless they exist (local use; issue 7 brings ACME). Returns the server
 * certificate. Nothing that exists is overwritten.
 */
export async function ensureLocalCertificate(
  dir: string,
  caName: string,
  names: string[],
): Promise<ServerCertificate> {
  await Deno.mkdir(`${dir}/tls`, { recursive: true, mode: 0o700 });
  if (!(await fileExists(`${dir}/tls/ca.pem`))) {
    const ca = await makeCertificateAuthority(caName);
    await Deno.writeTextFile(`${dir}/tls/ca-key.pem`, ca.keyPem, { mode: 0o600 });
    await Deno.writeTextFile(`${dir}/tls/ca.pem`, ca.certPem);
  }
  if (!(await fileExists(`${dir}/tls/cert.pem`))) {
    const ca = {
      certPem: await Deno.readTextFile(`${dir}/tls/ca.pem`),
      keyPem: await Deno.readTextFile(`${dir}/tls/ca-key.pem`),
    };
    const leaf = await issueServerCertificate(ca, [...new Set(names)]);
    await Deno.writeTextFile(`${dir}/tls/key.pem`, leaf.keyPem, { mode: 0o600 });
    await Deno.writeTextFile(`${dir}/tls/cert.pem`, leaf.certPem);
  }
  return {
    certPem: await Deno.readTextFile(`${dir}/tls/cert.pem`),
    keyPem: await Deno.readTextFile(`${dir}/tls/key.pem`),
  };
}
