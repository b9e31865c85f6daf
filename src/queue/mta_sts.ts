/**
 * MTA-STS (RFC 8461): a recipient domain's published promise that its MX
 * hosts accept mail over TLS with valid certificates. Under an `enforce`
 * policy, delivery goes only to MX hosts the policy names (§4.1), only over
 * TLS with a certificate valid for that host (§4.2); otherwise it is deferred
 * (§5.1), never sent in clear.
 *
 * Policies are cached in memory only: a cache on disk would name the domains
 * our users write to, which the box must not keep in clear.
 *
 * @example
 * ```ts
 * const sts = new MailauthMtaSts(new SystemResolver());
 * const policy = await sts.policyFor("example.net"); // null when none is published
 * ```
 */
import { getPolicy, validateMx } from "mailauth/lib/mta-sts.js";
import { mailauthResolver, type Resolver } from "../dns.ts";
import { log } from "../log.ts";

export interface MtaStsPolicy {
  mode: "enforce" | "testing" | "none";
  /** MX patterns, `mx.example.net` or `*.example.net`. */
  mx: string[];
  /** Absolute expiry time in ms. */
  expires?: number;
}

/** Where policies come from: mailauth over DNS and HTTPS, or a table in tests. */
export interface MtaStsSource {
  /** The domain's policy, or null when it publishes none (or only `none`). */
  policyFor(domain: string): Promise<MtaStsPolicy | null>;
}

/** True when `host` is allowed by the policy's `mx` patterns (RFC 8461 §4.1, mailauth's matcher). */
export function mxAllowed(host: string, policy: MtaStsPolicy): boolean {
  return validateMx(host, { mode: policy.mode, mx: policy.mx } as never).valid;
}

interface MailauthPolicy {
  id?: string | false;
  mode: "enforce" | "testing" | "none";
  mx?: string[];
  expires?: string;
}

/** Policies fetched with mailauth (TXT at `_mta-sts.<domain>`, then HTTPS), cached in memory. */
export class MailauthMtaSts implements MtaStsSource {
  readonly #resolver: Resolver;
  readonly #cache = new Map<string, MailauthPolicy>();

  constructor(resolver: Resolver) {
    this.#resolver = resolver;
  }

  async policyFor(domain: string): Promise<MtaStsPolicy | null> {
    const known = this.#cache.get(domain) ?? null;
    try {
      const result = await getPolicy(domain, known as never, {
        resolver: mailauthResolver(this.#resolver),
        timeout: 30_000,
      });
      const policy = result.policy as unknown as MailauthPolicy;
      this.#cache.set(domain, policy);
      if (result.status === "errored") log.warn("queue.mta-sts-fetch-failed", { domain });
      if (!policy || policy.mode === "none" || !policy.id) return null;
      return {
        mode: policy.mode,
        mx: policy.mx ?? [],
        expires: policy.expires ? Date.parse(policy.expires) : undefined,
      };
    } catch (e) {
      // RFC 8461 §5: a policy that cannot be discovered is as no policy, unless one is cached.
      log.warn("queue.mta-sts-failed", { domain, error: e });
      return null;
    }
  }
}

/** A fixed table of policies for tests. */
export class TestMtaSts implements MtaStsSource {
  readonly #policies = new Map<string, MtaStsPolicy>();

  set(domain: string, policy: MtaStsPolicy): this {
    this.#policies.set(domain.toLowerCase(), policy);
    return this;
  }

  policyFor(domain: string): Promise<MtaStsPolicy | null> {
    return Promise.resolve(this.#policies.get(domain.toLowerCase()) ?? null);
  }
}
