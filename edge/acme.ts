/**
 * A publicly trusted certificate for the edge's public names from an ACME CA
 * (RFC 8555; Let's Encrypt, or any CA with a directory URL), validated by
 * HTTP-01 on the edge's own HTTP listener, kept in KV and renewed before it
 * expires. Without it the edge uses the private CA of `hearth init`.
 *
 * State lives in the edge's KV so every edge process on one KV serves the same
 * certificate and only one of them orders at a time (a lease). Private keys
 * (the ACME account key, the certificate key) are sealed with AES-256-GCM
 * under the edge's queue key (`DATA/edge-queue.key`): a remote KV holds no
 * usable key.
 *
 * @example
 * ```ts
 * const certs = new AcmeCertificates({
 *   kv, sealKey, challenges: new KvAcmeChallenges(kv), names: ["mx.example.org"],
 *   directoryUrl: "https://acme-v02.api.letsencrypt.org/directory",
 *   onCertificate: (cert) => console.log("new certificate", cert.serial),
 * });
 * await certs.ensureCertificate();
 * certs.start();
 * ```
 */
import acme from "acme-client";
import https from "node:https";
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import type { AcmeChallengeStore } from "./acme_challenge.ts";
import { log } from "../src/log.ts";

x509.cryptoProvider.set(crypto);

/** A certificate chain (leaf first) with its key, both PEM, and what the leaf says. */
export interface IssuedCertificate {
  certPem: string;
  keyPem: string;
  names: string[];
  serial: string;
  notBefore: number;
  notAfter: number;
}

export interface AcmeOptions {
  kv: Deno.Kv;
  /** Seals private keys kept in KV: the edge's queue key. */
  sealKey: CryptoKey;
  challenges: AcmeChallengeStore;
  /** The CA's directory URL, e.g. Let's Encrypt's `https://acme-v02.api.letsencrypt.org/directory`. */
  directoryUrl: string;
  /** The account's contact address (the CA's expiry and policy mail). */
  email?: string;
  /** DNS names the certificate covers; the first is its subject. */
  names: string[];
  /** PEM roots trusted for the directory's own HTTPS (a private or test CA); default the system's. */
  directoryCaPem?: string;
  /** Called with each certificate this process has not installed yet. */
  onCertificate: (cert: IssuedCertificate) => void | Promise<void>;
  now?: () => number;
  /** How often KV and expiry are checked (default one hour). */
  checkMs?: number;
}

const minuteMs = 60_000;
const defaultCheckMs = 60 * minuteMs;
/** Long enough for an order's validation and finalization; a crashed holder frees it after. */
const leaseMs = 10 * minuteMs;

/**
 * Renewal is due once two thirds of the lifetime have passed, as Let's Encrypt recommends
 * (RFC 8555 sets no rule): 30 days before the end of a 90-day certificate, 2 before a 6-day one.
 */
export function renewalDue(cert: Pick<IssuedCertificate, "notBefore" | "notAfter">, now: number) {
  return now >= cert.notBefore + (cert.notAfter - cert.notBefore) * 2 / 3;
}

/** Reads the leaf's serial, validity and DNS names from a PEM chain. */
export function describeCertificate(
  chainPem: string,
): Pick<IssuedCertificate, "serial" | "notBefore" | "notAfter" | "names"> {
  const leaf = new x509.X509Certificate(acme.crypto.splitPemChain(chainPem)[0]);
  const san = leaf.getExtension(x509.SubjectAlternativeNameExtension);
  return {
    serial: leaf.serialNumber,
    notBefore: leaf.notBefore.getTime(),
    notAfter: leaf.notAfter.getTime(),
    names: san?.names.items.filter((n) => n.type === "dns").map((n) => n.value) ?? [],
  };
}

// acme-client sends every request through one axios instance; a directory given its own roots
// gets an agent trusting them, chosen by origin so other directories keep the system roots.
const directoryAgents = new Map<string, https.Agent>();
let interceptorInstalled = false;
function trustForDirectory(directoryUrl: string, caPem: string) {
  directoryAgents.set(new URL(directoryUrl).origin, new https.Agent({ ca: caPem }));
  if (interceptorInstalled) return;
  interceptorInstalled = true;
  acme.axios.interceptors.request.use((config) => {
    const agent = config.url ? directoryAgents.get(new URL(config.url).origin) : undefined;
    if (agent) config.httpsAgent = agent;
    return config;
  });
}

interface StoredAccount {
  url: string | null;
  sealedKey: Uint8Array;
}

interface StoredCertificate {
  certPem: string;
  sealedKey: Uint8Array;
}

/** Obtains, stores, installs and renews the edge's ACME certificate. */
export class AcmeCertificates {
  readonly #opts: AcmeOptions;
  readonly #now: () => number;
  readonly #names: string[];
  readonly #holder = crypto.randomUUID();
  #installed: IssuedCertificate | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running: Promise<unknown> = Promise.resolve();
  #ticking: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(opts: AcmeOptions) {
    if (!opts.names.length) throw new TypeError("ACME needs at least one name");
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#names = [...new Set(opts.names.map((n) => n.toLowerCase().replace(/\.$/, "")))];
    if (opts.directoryCaPem) trustForDirectory(opts.directoryUrl, opts.directoryCaPem);
  }

  /** The certificate installed last, if any. */
  get current(): IssuedCertificate | null {
    return this.#installed;
  }

  #key(kind: string): Deno.KvKey {
    return ["edge", "acme", kind, this.#opts.directoryUrl, [...this.#names].sort().join(" ")];
  }

  async #seal(plain: string, context: string): Promise<Uint8Array> {
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const ct = await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: new TextEncoder().encode(context) },
      this.#opts.sealKey,
      new TextEncoder().encode(plain),
    );
    const out = new Uint8Array(12 + ct.byteLength);
    out.set(iv);
    out.set(new Uint8Array(ct), 12);
    return out;
  }

  async #open(sealed: Uint8Array, context: string): Promise<string> {
    const plain = await crypto.subtle.decrypt(
      {
        name: "AES-GCM",
        iv: sealed.subarray(0, 12) as BufferSource,
        additionalData: new TextEncoder().encode(context),
      },
      this.#opts.sealKey,
      sealed.subarray(12) as BufferSource,
    );
    return new TextDecoder().decode(plain);
  }

  /** The stored certificate for these names, if any (opened with the seal key). */
  async stored(): Promise<IssuedCertificate | null> {
    const entry = await this.#opts.kv.get<StoredCertificate>(this.#key("cert"));
    if (!entry.value) return null;
    const keyPem = await this.#open(entry.value.sealedKey, "acme:cert-key").catch(() => {
      throw new Error(
        "the ACME certificate in KV was sealed under another edge-queue.key; copy the key file " +
          "from the first edge (docs/edge.md)",
      );
    });
    return { certPem: entry.value.certPem, keyPem, ...describeCertificate(entry.value.certPem) };
  }

  async #install(cert: IssuedCertificate) {
    if (this.#installed?.serial === cert.serial) return;
    this.#installed = cert;
    log.info("edge.acme-installed", {
      serial: cert.serial,
      notAfter: new Date(cert.notAfter).toISOString(),
    });
    await this.#opts.onCertificate(cert);
  }

  /** Installs the stored certificate if there is one, without talking to the CA. */
  async load(): Promise<IssuedCertificate | null> {
    const cert = await this.stored();
    if (cert) await this.#install(cert);
    return cert;
  }

  /**
   * Makes sure a certificate for the names is installed and not due for renewal: uses the one
   * in KV, else orders one (unless another edge process holds the lease and is ordering).
   * Returns the installed certificate, or null when another process is still ordering it.
   */
  ensureCertificate(): Promise<IssuedCertificate | null> {
    const run = this.#running.then(() => this.#ensure());
    this.#running = run.catch(() => {});
    return run;
  }

  async #ensure(): Promise<IssuedCertificate | null> {
    const stored = await this.stored();
    if (stored && !renewalDue(stored, this.#now())) {
      await this.#install(stored);
      return stored;
    }
    if (!(await this.#takeLease())) {
      if (stored) await this.#install(stored);
      return stored;
    }
    try {
      const cert = await this.#order();
      await this.#opts.kv.set(
        this.#key("cert"),
        {
          certPem: cert.certPem,
          sealedKey: await this.#seal(cert.keyPem, "acme:cert-key"),
        } satisfies StoredCertificate,
      );
      await this.#install(cert);
      return cert;
    } finally {
      await this.#opts.kv.delete(this.#key("lease"));
    }
  }

  /** One order at a time across every edge process on this KV. */
  async #takeLease(): Promise<boolean> {
    const key = this.#key("lease");
    const lease = await this.#opts.kv.get<{ holder: string; until: number }>(key);
    if (lease.value && lease.value.until > this.#now() && lease.value.holder !== this.#holder) {
      return false;
    }
    const res = await this.#opts.kv.atomic().check(lease).set(key, {
      holder: this.#holder,
      until: this.#now() + leaseMs,
    }, { expireIn: leaseMs }).commit();
    return res.ok;
  }

  /** The account key (made and registered once per directory), sealed in KV. */
  async #account(): Promise<{ key: string; url: string | null }> {
    const key = ["edge", "acme", "account", this.#opts.directoryUrl];
    const entry = await this.#opts.kv.get<StoredAccount>(key);
    if (entry.value) {
      return { key: await this.#open(entry.value.sealedKey, "acme:account"), url: entry.value.url };
    }
    const made = (await acme.crypto.createPrivateEcdsaKey()).toString();
    const res = await this.#opts.kv.atomic().check(entry).set(
      key,
      {
        url: null,
        sealedKey: await this.#seal(made, "acme:account"),
      } satisfies StoredAccount,
    ).commit();
    // Another process made one first: use it.
    return res.ok ? { key: made, url: null } : await this.#account();
  }

  async #order(): Promise<IssuedCertificate> {
    const account = await this.#account();
    const client = new acme.Client({
      directoryUrl: this.#opts.directoryUrl,
      accountKey: account.key,
      accountUrl: account.url ?? undefined,
    });
    const certKey = (await acme.crypto.createPrivateEcdsaKey()).toString();
    const [, csr] = await acme.crypto.createCsr(
      { commonName: this.#names[0], altNames: this.#names },
      certKey,
    );
    log.info("edge.acme-ordering", {
      names: this.#names.join(","),
      directory: this.#opts.directoryUrl,
    });
    const certPem = await client.auto({
      csr,
      email: this.#opts.email,
      termsOfServiceAgreed: true,
      challengePriority: ["http-01"],
      // The CA validates for real; acme-client's own pre-check would fetch port 80 from here.
      skipChallengeVerification: true,
      challengeCreateFn: (_authz, challenge, keyAuthorization) =>
        this.#opts.challenges.put(challenge.token, keyAuthorization),
      challengeRemoveFn: (_authz, challenge) => this.#opts.challenges.remove(challenge.token),
    });
    if (!account.url) {
      const key = ["edge", "acme", "account", this.#opts.directoryUrl];
      const entry = await this.#opts.kv.get<StoredAccount>(key);
      if (entry.value) {
        await this.#opts.kv.set(key, { ...entry.value, url: client.getAccountUrl() });
      }
    }
    return { certPem, keyPem: certKey, ...describeCertificate(certPem) };
  }

  /**
   * Checks now and then every `checkMs`: orders or renews when due, and picks up a certificate
   * another edge process stored. Failures are logged and retried at the next check.
   */
  start(): void {
    const tick = async () => {
      let failed = false;
      try {
        await this.ensureCertificate();
      } catch (e) {
        failed = true;
        log.warn("edge.acme-failed", { names: this.#names.join(","), error: e });
      }
      if (this.#closed) return;
      // With no certificate yet and no failure, another process is ordering: look again soon.
      // A failure waits the full interval (CAs limit failed validations per hour).
      const wait = this.#installed || failed ? this.#opts.checkMs ?? defaultCheckMs : minuteMs;
      this.#timer = setTimeout(() => this.#ticking = tick(), wait);
    };
    this.#ticking = tick();
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#ticking;
    await this.#running;
  }
}
