/**
 * The DNS records a home box's domain needs, as `hearth dns` prints them.
 * This is the layout of a directly reachable home box (MX pointing at it);
 * the edge layout (MX at the edge relay) comes with the edge.
 *
 * @example
 * ```ts
 * const records = await dnsRecords(config);
 * console.log(formatBind(records));
 * ```
 */
import type { HearthConfig } from "../src/config.ts";
import { dkimRecordName, dkimTxtRecord, ensureDkimKey } from "./queue/dkim.ts";

export interface DnsRecord {
  name: string;
  type: "MX" | "TXT";
  value: string;
  /** One line on what the record is for. */
  purpose: string;
}

/** Every record to publish for the box's domain. */
export async function dnsRecords(config: HearthConfig): Promise<DnsRecord[]> {
  const domain = config.domain;
  const key = await ensureDkimKey(config.dataDir);
  return [
    {
      name: `${domain}.`,
      type: "MX",
      value: `10 ${config.hostname}.`,
      purpose: "where other servers deliver mail for the domain (RFC 5321 §5.1)",
    },
    {
      name: `${domain}.`,
      type: "TXT",
      value: "v=spf1 mx -all",
      purpose: "only the domain's MX hosts send its mail (SPF, RFC 7208)",
    },
    {
      name: `${dkimRecordName(key, domain)}.`,
      type: "TXT",
      value: dkimTxtRecord(key),
      purpose: "the key that signs outgoing mail (DKIM, RFC 6376)",
    },
    {
      name: `_dmarc.${domain}.`,
      type: "TXT",
      value: `v=DMARC1; p=quarantine; rua=mailto:postmaster@${domain}`,
      purpose: "what receivers do with mail that fails SPF and DKIM (DMARC, RFC 7489)",
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
