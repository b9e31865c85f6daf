/**
 * Mail client autoconfiguration documents: Thunderbird's autoconfig
 * (config-v1.1.xml), Microsoft's autodiscover POX response (the Outlook
 * `responseschema/2006a`), and an Apple configuration profile
 * (com.apple.mail.managed payload). Pure functions: the routes in
 * edge/wellknown.ts decide who gets which. Every value placed in XML is
 * escaped.
 *
 * @example
 * ```ts
 * const xml = thunderbirdConfig("example.org", servers);
 * const profile = await appleProfile("me@example.org", servers);
 * ```
 */
import { sha256, toHex } from "../src/encoding.ts";

/** Where a mail client reads and sends; `starttlsPort` null or absent: none offered. */
export interface ClientServers {
  imap: { host: string; tlsPort: number; starttlsPort?: number | null };
  submission: { host: string; tlsPort: number; starttlsPort?: number | null };
}

/** Escapes text for XML content and attribute values (XML 1.0 §2.4, §3.1). */
export function escapeXml(text: string): string {
  return text
    // Characters XML 1.0 cannot carry at all (§2.2) are dropped, not escaped.
    // deno-lint-ignore no-control-regex
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, "")
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&apos;");
}

const x = escapeXml;

/**
 * Thunderbird's autoconfig file (the "clientConfig" v1.1 format). `%EMAILADDRESS%`
 * is Thunderbird's own placeholder: the login is the whole address.
 */
export function thunderbirdConfig(domain: string, servers: ClientServers): string {
  const server = (
    tag: "incomingServer" | "outgoingServer",
    type: string,
    host: string,
    port: number,
    socketType: "SSL" | "STARTTLS",
  ) =>
    `    <${tag} type="${type}">
      <hostname>${x(host)}</hostname>
      <port>${port}</port>
      <socketType>${socketType}</socketType>
      <authentication>password-cleartext</authentication>
      <username>%EMAILADDRESS%</username>
    </${tag}>
`;
  const { imap, submission } = servers;
  // Implicit TLS first (RFC 8314 §3.3): clients take the first server that works.
  return `<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="${x(domain)}">
    <domain>${x(domain)}</domain>
    <displayName>Hearth (${x(domain)})</displayName>
    <displayShortName>Hearth</displayShortName>
${server("incomingServer", "imap", imap.host, imap.tlsPort, "SSL")}${
    imap.starttlsPort
      ? server("incomingServer", "imap", imap.host, imap.starttlsPort, "STARTTLS")
      : ""
  }${server("outgoingServer", "smtp", submission.host, submission.tlsPort, "SSL")}${
    submission.starttlsPort
      ? server("outgoingServer", "smtp", submission.host, submission.starttlsPort, "STARTTLS")
      : ""
  }  </emailProvider>
</clientConfig>
`;
}

/**
 * The Outlook autodiscover (POX) answer for `address`: IMAP and SMTP over
 * implicit TLS, the address as the login.
 */
export function autodiscoverResponse(address: string, servers: ClientServers): string {
  const protocol = (type: string, host: string, port: number) =>
    `      <Protocol>
        <Type>${type}</Type>
        <Server>${x(host)}</Server>
        <Port>${port}</Port>
        <DomainRequired>off</DomainRequired>
        <LoginName>${x(address)}</LoginName>
        <SPA>off</SPA>
        <SSL>on</SSL>
        <AuthRequired>on</AuthRequired>
      </Protocol>
`;
  return `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">
  <Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a">
    <Account>
      <AccountType>email</AccountType>
      <Action>settings</Action>
${protocol("IMAP", servers.imap.host, servers.imap.tlsPort)}${
    protocol("SMTP", servers.submission.host, servers.submission.tlsPort)
  }    </Account>
  </Response>
</Autodiscover>
`;
}

/** The address in an autodiscover POX request (`<EMailAddress>`, any namespace prefix). */
export function autodiscoverRequestAddress(xml: string): string | null {
  const m = /<(?:[\w.-]+:)?EMailAddress\s*>([^<]*)<\/(?:[\w.-]+:)?EMailAddress\s*>/.exec(xml);
  if (!m) return null;
  return m[1]
    .replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&apos;/g, "'")
    .replace(/&amp;/g, "&").trim();
}

type PlistValue = string | number | boolean | PlistValue[] | { [key: string]: PlistValue };

function plist(value: PlistValue, indent: string): string {
  if (typeof value === "string") return `${indent}<string>${x(value)}</string>\n`;
  if (typeof value === "number") return `${indent}<integer>${Math.trunc(value)}</integer>\n`;
  if (typeof value === "boolean") return `${indent}<${value}/>\n`;
  if (Array.isArray(value)) {
    return `${indent}<array>\n${
      value.map((v) => plist(v, indent + "  ")).join("")
    }${indent}</array>\n`;
  }
  const entries = Object.entries(value).map(([k, v]) =>
    `${indent}  <key>${x(k)}</key>\n${plist(v, indent + "  ")}`
  );
  return `${indent}<dict>\n${entries.join("")}${indent}</dict>\n`;
}

/** A stable UUID from a name, so reinstalling a profile replaces it instead of adding one. */
async function nameUuid(name: string): Promise<string> {
  const h = (await sha256(new TextEncoder().encode(name))).slice(0, 16);
  h[6] = (h[6] & 0x0f) | 0x50; // version 5 layout (RFC 9562 §5.5), SHA-256 instead of SHA-1
  h[8] = (h[8] & 0x3f) | 0x80;
  const s = toHex(h).toUpperCase();
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`;
}

/**
 * An Apple configuration profile (`.mobileconfig`) with one IMAP account.
 * Unsigned: iOS and macOS show it as "Not Verified" but install it.
 */
export async function appleProfile(address: string, servers: ClientServers): Promise<string> {
  const domain = address.slice(address.lastIndexOf("@") + 1);
  const id = `hearth.mail.${domain.split(".").reverse().join(".")}`;
  const account = {
    EmailAccountDescription: `${address} (Hearth)`,
    EmailAccountType: "EmailTypeIMAP",
    EmailAddress: address,
    IncomingMailServerAuthentication: "EmailAuthPassword",
    IncomingMailServerHostName: servers.imap.host,
    IncomingMailServerPortNumber: servers.imap.tlsPort,
    IncomingMailServerUseSSL: true,
    IncomingMailServerUsername: address,
    OutgoingMailServerAuthentication: "EmailAuthPassword",
    OutgoingMailServerHostName: servers.submission.host,
    OutgoingMailServerPortNumber: servers.submission.tlsPort,
    OutgoingMailServerUseSSL: true,
    OutgoingMailServerUsername: address,
    OutgoingPasswordSameAsIncomingPassword: true,
    PayloadDescription: `Mail account ${address}`,
    PayloadDisplayName: address,
    PayloadIdentifier: `${id}.account.${await nameUuid(address)}`,
    PayloadType: "com.apple.mail.managed",
    PayloadUUID: await nameUuid(`account ${address}`),
    PayloadVersion: 1,
  };
  const profile = {
    PayloadContent: [account],
    PayloadDescription: `Sets up ${address} to read and send mail through Hearth.`,
    PayloadDisplayName: `Hearth mail: ${address}`,
    PayloadIdentifier: `${id}.${await nameUuid(address)}`,
    PayloadRemovalDisallowed: false,
    PayloadType: "Configuration",
    PayloadUUID: await nameUuid(`profile ${address}`),
    PayloadVersion: 1,
  };
  return `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
${plist(profile, "")}</plist>
`;
}
