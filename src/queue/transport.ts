/**
 * How queued mail leaves the box. A {@linkcode Transport} delivers one item
 * to its pending recipients and says, per recipient, what happened; the
 * queue runner decides on retries and bounces. {@linkcode DirectTransport}
 * delivers to the recipients' MX hosts; the edge issue adds a transport that
 * hands mail to the edge relay instead.
 *
 * @example
 * ```ts
 * const transport = new DirectTransport({ resolver: new SystemResolver(), hostname: "mx.example.org" });
 * const results = await transport.deliver({ from, recipients: ["a@example.net"], message });
 * ```
 */
import { Buffer } from "node:buffer";
import nodemailer from "nodemailer";
import { DnsError, type Resolver } from "../dns.ts";
import { limits } from "../limits.ts";
import { log } from "../log.ts";
import { type MtaStsSource, mxAllowed } from "./mta_sts.ts";

export type DeliveryResult =
  | { kind: "delivered"; reason?: string }
  | { kind: "transient"; reason: string }
  | { kind: "permanent"; reason: string; status?: string };

export interface OutgoingMessage {
  from: string;
  recipients: string[];
  /** CRLF-normalised, DKIM-signed message. */
  message: Uint8Array;
}

export interface Transport {
  /** Delivers to every recipient; the map has one result per recipient. */
  deliver(out: OutgoingMessage): Promise<Map<string, DeliveryResult>>;
}

export interface DirectTransportOptions {
  resolver: Resolver;
  /** Our host name, sent in EHLO. */
  hostname: string;
  /** SMTP port of a host (tests point MX hosts at loopback ports); default 25. */
  portFor?: (host: string) => number;
  connectTimeoutMs?: number;
  socketTimeoutMs?: number;
  /** MTA-STS policies (RFC 8461); without it only opportunistic TLS is used. */
  mtaSts?: MtaStsSource;
  /** Extra trusted CA certificates (PEM), for tests; production trusts the system store. */
  tlsCa?: string[];
}

function domainOf(address: string): string {
  return address.slice(address.lastIndexOf("@") + 1).toLowerCase();
}

/** Hosts to try for a domain, best first; `[]` means the domain accepts no mail. */
export async function mailHostsOf(resolver: Resolver, domain: string): Promise<string[] | null> {
  const mx = await resolver.resolveMx(domain);
  // RFC 7505 §3: a single MX of "." (a null MX) says the domain accepts no mail.
  if (mx.length === 1 && (mx[0].exchange === "" || mx[0].exchange === ".")) return [];
  if (mx.length > 0) {
    // RFC 5321 §5.1: try MX hosts in order of preference, shuffling equal ones.
    return mx.map((r) => ({ r, tie: Math.random() }))
      .sort((a, b) => a.r.preference - b.r.preference || a.tie - b.tie)
      .map(({ r }) => r.exchange);
  }
  // RFC 5321 §5.1: no MX records, so the domain itself is the implicit MX if it has an address.
  const a = [...await resolver.resolve4(domain), ...await resolver.resolve6(domain)];
  return a.length ? [domain] : null;
}

async function addressesOf(resolver: Resolver, host: string): Promise<string[]> {
  if (/^[\d.]+$/.test(host) || host.includes(":")) return [host];
  return [...await resolver.resolve4(host), ...await resolver.resolve6(host)];
}

interface SmtpError extends Error {
  code?: string;
  responseCode?: number;
  response?: string;
  rejectedErrors?: SmtpError[];
  recipient?: string;
  command?: string;
}

const sessionCommands = new Set(["CONN", "EHLO", "HELO", "LHLO", "STARTTLS", "AUTH"]);

function enhancedOf(response: string | undefined, fallback: string): string {
  return /^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})/.exec(response ?? "")?.[1] ?? fallback;
}

function resultOfReply(err: SmtpError): DeliveryResult {
  const reason = err.response ?? err.message;
  if (err.responseCode && err.responseCode >= 500) {
    return { kind: "permanent", reason, status: enhancedOf(err.response, "5.0.0") };
  }
  return { kind: "transient", reason };
}

/** Delivers straight to each recipient domain's MX hosts, with opportunistic STARTTLS. */
export class DirectTransport implements Transport {
  readonly #opts: DirectTransportOptions;

  constructor(opts: DirectTransportOptions) {
    this.#opts = opts;
  }

  async deliver(out: OutgoingMessage): Promise<Map<string, DeliveryResult>> {
    const byDomain = new Map<string, string[]>();
    for (const rcpt of out.recipients) {
      const d = domainOf(rcpt);
      byDomain.set(d, [...(byDomain.get(d) ?? []), rcpt]);
    }
    const results = new Map<string, DeliveryResult>();
    await Promise.all([...byDomain].map(async ([domain, rcpts]) => {
      const r = await this.#deliverToDomain(domain, out.from, rcpts, out.message);
      for (const [k, v] of r) results.set(k, v);
    }));
    return results;
  }

  async #deliverToDomain(
    domain: string,
    from: string,
    rcpts: string[],
    message: Uint8Array,
  ): Promise<Map<string, DeliveryResult>> {
    const all = (result: DeliveryResult) => new Map(rcpts.map((r) => [r, result]));
    let hosts: string[] | null;
    try {
      hosts = await mailHostsOf(this.#opts.resolver, domain);
    } catch (e) {
      return all({ kind: "transient", reason: (e as Error).message });
    }
    if (hosts === null) {
      return all({ kind: "permanent", reason: `${domain} has no MX or address`, status: "5.1.2" });
    }
    if (hosts.length === 0) {
      return all({
        kind: "permanent",
        reason: `${domain} accepts no mail (null MX)`,
        status: "5.1.10",
      });
    }
    const policy = await this.#opts.mtaSts?.policyFor(domain) ?? null;
    const enforce = policy?.mode === "enforce";
    if (policy) {
      const allowed = hosts.filter((h) => mxAllowed(h, policy));
      if (allowed.length < hosts.length) {
        log.warn("queue.mta-sts-mx-mismatch", { domain, mode: policy.mode });
      }
      // RFC 8461 §4.1, §5.1: under enforce, only MX hosts the policy names may receive the mail.
      if (enforce) hosts = allowed;
      if (hosts.length === 0) {
        return all({
          kind: "transient",
          reason: `no MX host of ${domain} matches its MTA-STS policy`,
        });
      }
    }
    let last = `no reachable mail host for ${domain}`;
    let lastReply: Map<string, DeliveryResult> | null = null;
    for (const host of hosts) {
      let addresses: string[];
      try {
        addresses = await addressesOf(this.#opts.resolver, host);
      } catch (e) {
        last = e instanceof DnsError ? e.message : String(e);
        continue;
      }
      for (const ip of addresses) {
        const attempt = await this.#send(host, ip, from, rcpts, message, enforce);
        if (typeof attempt === "string") {
          last = `${host} (${ip}): ${attempt}`;
          continue;
        }
        // RFC 5321 §5.1: a host that is unreachable or answers 4xx is skipped for the next one.
        if ([...attempt.values()].some((r) => r.kind !== "transient")) return attempt;
        lastReply = attempt;
      }
    }
    return lastReply ?? all({ kind: "transient", reason: last });
  }

  /** One SMTP transaction; a string says why the host could not be reached (or not securely). */
  async #send(
    host: string,
    ip: string,
    from: string,
    rcpts: string[],
    message: Uint8Array,
    enforceTls: boolean,
  ): Promise<Map<string, DeliveryResult> | string> {
    const transport = nodemailer.createTransport({
      host: ip,
      port: this.#opts.portFor?.(host) ?? 25,
      name: this.#opts.hostname,
      secure: false,
      // RFC 7435 opportunistic security: STARTTLS when offered, certificate not checked;
      // RFC 8461 §4.2: under an enforced MTA-STS policy, TLS with a valid certificate or nothing.
      requireTLS: enforceTls,
      ignoreTLS: false,
      tls: {
        servername: /^[\d.:]+$/.test(host) ? undefined : host,
        rejectUnauthorized: enforceTls,
        ...(this.#opts.tlsCa ? { ca: this.#opts.tlsCa } : {}),
      },
      connectionTimeout: this.#opts.connectTimeoutMs ?? limits.queueConnectTimeoutMs,
      greetingTimeout: this.#opts.connectTimeoutMs ?? limits.queueConnectTimeoutMs,
      socketTimeout: this.#opts.socketTimeoutMs ?? limits.queueSocketTimeoutMs,
      disableFileAccess: true,
      disableUrlAccess: true,
    });
    try {
      const info = await transport.sendMail({
        envelope: { from, to: rcpts },
        raw: Buffer.from(message),
      });
      const results = new Map<string, DeliveryResult>();
      const rejected = new Map<string, SmtpError>();
      for (const e of (info.rejectedErrors ?? []) as SmtpError[]) {
        if (e.recipient) rejected.set(e.recipient, e);
      }
      for (const r of rcpts) {
        const e = rejected.get(r);
        results.set(r, e ? resultOfReply(e) : { kind: "delivered", reason: info.response });
      }
      return results;
    } catch (e) {
      const err = e as SmtpError;
      // Replies before MAIL (greeting, EHLO, STARTTLS) concern the host, not the recipients.
      if (err.responseCode && !sessionCommands.has(err.command ?? "")) {
        // Every recipient refused, or MAIL/DATA refused: per-recipient replies where known.
        const per = new Map((err.rejectedErrors ?? []).map((x) => [x.recipient, x]));
        return new Map(rcpts.map((r) => [r, resultOfReply(per.get(r) ?? err)]));
      }
      log.info("queue.host-failed", { host, ip, error: err.message });
      return err.response ?? err.message;
    } finally {
      transport.close();
    }
  }
}
