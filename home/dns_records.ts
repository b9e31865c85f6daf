/**
 * The DNS records a domain served by Hearth needs, as `hearth dns` prints
 * them: mail routing (MX at the edge), sender authentication (SPF, DKIM,
 * DMARC), transport security (MTA-STS, TLS-RPT) and client discovery (SRV
 * records, autoconfig and autodiscover host names). docs/setup.md explains
 * every value.
 *
 * @example
 * ```ts
 * const records = await dnsRecords(config);
 * console.log(formatBind(records));
 * ```
 */
import type { HearthConfig } from "../src/config.ts";
import { mtaStsPolicyId, mtaStsPolicyText } from "../src/mail/mta_sts_policy.ts";
import { dkimRecordName, dkimTxtRecord, ensureDkimKey } from "./queue/dkim.ts";

export interface DnsRecord {
  name: string;
  type: "MX" | "TXT" | "SRV" | "CNAME";
  /** The record data as a zone file writes it (TXT: the unquoted text). */
  value: string;
  /** One line on what the record is for. */
  purpose: string;
}

/** The ports clients meet on the Internet; a box on other ports sits behind a forward. */
export const publicPorts = { submissions: 465, submission: 587, imaps: 993, imap: 143 };

/** The policy file the edge serves for a domain whose MX is `edgeHostname`. */
export function policyFor(config: Pick<HearthConfig, "edgeHostname" | "mtaStsMode">): string {
  return mtaStsPolicyText({ mode: config.mtaStsMode, mx: [config.edgeHostname] });
}

/** Every record to publish for the box's domain. */
export async function dnsRecords(config: HearthConfig): Promise<DnsRecord[]> {
  const domain = config.domain;
  const edge = `${config.edgeHostname}.`;
  const mail = `${config.mailHostname}.`;
  const key = await ensureDkimKey(config.dataDir);
  const srv = (service: string, priority: number, port: number, target: string, why: string) => ({
    name: `_${service}._tcp.${domain}.`,
    type: "SRV" as const,
    value: `${priority} ${target === "." ? 0 : 1} ${port} ${target}`,
    purpose: why,
  });
  return [
    {
      name: `${domain}.`,
      type: "MX",
      value: `10 ${edge}`,
      purpose: "the edge relay takes the domain's mail (RFC 5321 §5.1)",
    },
    {
      name: `${domain}.`,
      type: "TXT",
      // All outbound mail leaves through the edge, which is the MX.
      value: "v=spf1 mx -all",
      purpose: "only the domain's MX hosts send its mail (SPF, RFC 7208)",
    },
    {
      name: `${dkimRecordName(key, domain)}.`,
      type: "TXT",
      value: dkimTxtRecord(key),
      purpose: `the key that signs outgoing mail, selector "${key.selector}" (DKIM, RFC 6376)`,
    },
    {
      name: `_dmarc.${domain}.`,
      type: "TXT",
      value: `v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@${domain}`,
      purpose: "mail failing SPF and DKIM goes to spam; daily reports (DMARC, RFC 7489)",
    },
    {
      name: `_mta-sts.${domain}.`,
      type: "TXT",
      // RFC 8461 §3.1: the id changes whenever the policy file changes.
      value: `v=STSv1; id=${await mtaStsPolicyId(policyFor(config))}`,
      purpose: "senders fetch the MTA-STS policy and require TLS to the MX (RFC 8461 §3.1)",
    },
    {
      name: `mta-sts.${domain}.`,
      type: "CNAME",
      value: edge,
      purpose: "the edge serves https://mta-sts.DOMAIN/.well-known/mta-sts.txt (RFC 8461 §3.2)",
    },
    {
      name: `_smtp._tls.${domain}.`,
      type: "TXT",
      value: `v=TLSRPTv1; rua=mailto:tls-reports@${domain}`,
      purpose: "senders report TLS failures reaching the MX (TLS-RPT, RFC 8460 §3)",
    },
    // RFC 8314 §5.1 and RFC 6186 §3.4: implicit TLS first (lower priority value), STARTTLS after.
    srv(
      "submissions",
      0,
      publicPorts.submissions,
      mail,
      "mail clients send on port 465 (RFC 8314 §5.1)",
    ),
    srv(
      "submission",
      10,
      publicPorts.submission,
      mail,
      "STARTTLS submission on 587, less preferred (RFC 6186)",
    ),
    srv("imaps", 0, publicPorts.imaps, mail, "mail clients read on port 993 (RFC 6186 §3.2)"),
    srv("imap", 10, publicPorts.imap, mail, "STARTTLS IMAP on 143, less preferred (RFC 6186)"),
    // RFC 6186 §4 (after RFC 2782): a target of "." says the service is not offered.
    srv("pop3s", 0, 0, ".", "no POP3 here (RFC 6186 §4)"),
    srv("pop3", 0, 0, ".", "no POP3 here (RFC 6186 §4)"),
    {
      name: `autoconfig.${domain}.`,
      type: "CNAME",
      value: edge,
      purpose: "Thunderbird's autoconfig, served by the edge over HTTPS",
    },
    {
      name: `autodiscover.${domain}.`,
      type: "CNAME",
      value: edge,
      purpose: "Outlook's autodiscover, served by the edge over HTTPS",
    },
  ];
}

/** Zone-file lines, long TXT values split into 255-byte strings (RFC 1035 §3.3.14). */
export function formatBind(records: DnsRecord[]): string {
  const lines: string[] = [];
  for (const r of records) {
    lines.push(`; ${r.purpose}`);
    let value = r.value;
    if (r.type === "TXT") {
      const parts: string[] = [];
      for (let i = 0; i < value.length; i += 255) parts.push(`"${value.slice(i, i + 255)}"`);
      value = parts.length > 1 ? `( ${parts.join(" ")} )` : parts[0];
    }
    lines.push(`${r.name}\t3600\tIN\t${r.type}\t${value}`);
  }
  return lines.join("\n");
}
