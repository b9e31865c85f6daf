/**
 * What the edge serves over HTTPS for the domains of its homes, outside the
 * `/v1` API: the MTA-STS policy (RFC 8461 §3.2) at
 * `https://mta-sts.DOMAIN/.well-known/mta-sts.txt`, and mail client
 * autoconfiguration (Thunderbird autoconfig, Outlook autodiscover, an Apple
 * profile). A domain no home serves gets 404. No `Deno.*` calls.
 *
 * @example
 * ```ts
 * app.route("/", wellKnownApp({ store, hostname: "mx.example.org" }));
 * ```
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { type MtaStsMode, mtaStsPolicyText } from "../src/mail/mta_sts_policy.ts";
import {
  appleProfile,
  autodiscoverRequestAddress,
  autodiscoverResponse,
  type ClientServers,
  thunderbirdConfig,
} from "./client_config.ts";
import type { EdgeStore } from "./store.ts";

export type { ClientServers } from "./client_config.ts";

export interface WellKnownDeps {
  store: EdgeStore;
  /** The edge's public host name: the MX named in the MTA-STS policy. */
  hostname: string;
  /**
   * The servers mail clients are told to use (the home box's public names).
   * Default: `hostname`, IMAP 993/143 and submission 465/587.
   */
  mailClients?: ClientServers;
  /** The MTA-STS policy: mode (default `testing`, docs/setup.md) and max_age. */
  mtaSts?: { mode: MtaStsMode; maxAgeSeconds?: number };
}

/** Autodiscover requests are a few hundred bytes; refuse anything much larger unread. */
const maxAutodiscoverBytes = 16 * 1024;
const domainPattern =
  /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$/;
const addressPattern = /^[^\s@<>"()\[\]\\,;:]{1,64}@[^\s@]+$/;

/** The request's host name: the Host header without port, lower case, no final dot. */
function hostOf(c: Context): string {
  const host = (c.req.header("host") ?? new URL(c.req.url).host).toLowerCase();
  return host.replace(/:\d+$/, "").replace(/^\[|\]$/g, "").replace(/\.$/, "");
}

/** The domain part of an address we will answer for, or null. */
function addressDomain(address: string): string | null {
  if (address.length > 254 || !addressPattern.test(address)) return null;
  const domain = address.slice(address.lastIndexOf("@") + 1).toLowerCase();
  return domainPattern.test(domain) ? domain : null;
}

export function wellKnownApp(deps: WellKnownDeps): Hono {
  const app = new Hono();
  const servers: ClientServers = deps.mailClients ?? {
    imap: { host: deps.hostname, tlsPort: 993, starttlsPort: 143 },
    submission: { host: deps.hostname, tlsPort: 465, starttlsPort: 587 },
  };

  // A domain is ours when a home serves it; the route lookup of any address says so.
  const serves = async (domain: string | null): Promise<boolean> =>
    domain !== null && domainPattern.test(domain) &&
    (await deps.store.route(`postmaster@${domain}`)).kind !== "not-ours";

  const notServed = (c: Context) =>
    c.text("this edge serves no such domain\n", 404, { "cache-control": "no-store" });

  // RFC 8461 §3.2: the policy host is mta-sts.DOMAIN, the body text/plain.
  app.get("/.well-known/mta-sts.txt", async (c) => {
    const host = hostOf(c);
    const domain = host.startsWith("mta-sts.") ? host.slice("mta-sts.".length) : null;
    if (!(await serves(domain))) return notServed(c);
    const text = mtaStsPolicyText({
      mode: deps.mtaSts?.mode ?? "testing",
      mx: [deps.hostname],
      maxAgeSeconds: deps.mtaSts?.maxAgeSeconds,
    });
    return c.text(text, 200, { "content-type": "text/plain; charset=utf-8" });
  });

  // Thunderbird asks autoconfig.DOMAIN/mail/config-v1.1.xml, then DOMAIN/.well-known/…,
  // both with ?emailaddress=; the address, when given, names the domain.
  const autoconfig = async (c: Context) => {
    const address = c.req.query("emailaddress");
    const host = hostOf(c);
    const domain = address !== undefined
      ? addressDomain(address)
      : host.startsWith("autoconfig.")
      ? host.slice("autoconfig.".length)
      : host;
    if (!(await serves(domain))) return notServed(c);
    return c.body(thunderbirdConfig(domain!, servers), 200, {
      "content-type": "text/xml; charset=utf-8",
    });
  };
  app.get("/mail/config-v1.1.xml", autoconfig);
  app.get("/.well-known/autoconfig/mail/config-v1.1.xml", autoconfig);

  // Outlook's POX autodiscover: the request body names the address.
  const autodiscover = async (c: Context) => {
    if (Number(c.req.header("content-length") ?? 0) > maxAutodiscoverBytes) {
      return c.text("the request is too large\n", 413);
    }
    const body = await c.req.text();
    if (body.length > maxAutodiscoverBytes) return c.text("the request is too large\n", 413);
    const address = autodiscoverRequestAddress(body);
    if (address === null) return c.text("the request names no EMailAddress\n", 400);
    const domain = addressDomain(address);
    if (!(await serves(domain))) return notServed(c);
    return c.body(autodiscoverResponse(address, servers), 200, {
      "content-type": "text/xml; charset=utf-8",
    });
  };
  app.post("/autodiscover/autodiscover.xml", autodiscover);
  app.post("/Autodiscover/Autodiscover.xml", autodiscover);

  app.get("/apple/hearth.mobileconfig", async (c) => {
    const address = c.req.query("email") ?? "";
    const domain = addressDomain(address);
    if (domain === null) return c.text("give the address: ?email=you@example.org\n", 400);
    if (!(await serves(domain))) return notServed(c);
    return c.body(await appleProfile(address, servers), 200, {
      "content-type": "application/x-apple-aspen-config",
      "content-disposition": 'attachment; filename="hearth.mobileconfig"',
    });
  });

  return app;
}
