/**
 * The `Received:` trace header (RFC 5321 §4.4) that Hearth prepends to every
 * message it accepts.
 *
 * @example
 * ```ts
 * const header = receivedHeader({
 *   helo: "mx.example.org", clientName: "[192.0.2.1]", clientIp: "192.0.2.1",
 *   by: "localhost", protocol: "ESMTPS", tls: "TLSv1.3 TLS_AES_256_GCM_SHA384",
 *   id: "abc", recipient: "me@hearth.localhost", date: new Date(),
 * });
 * ```
 */

export interface ReceivedInfo {
  /** The name the client gave in EHLO/HELO. */
  helo: string;
  /** Its reverse-DNS name, or `[ip]` when it has none. */
  clientName: string;
  clientIp: string;
  /** Our host name. */
  by: string;
  /** RFC 3848 protocol type: ESMTP, ESMTPS, ESMTPA, ESMTPSA. */
  protocol: string;
  /** TLS version and cipher, when the session used TLS. */
  tls?: string;
  /** Transaction id, also in our logs. */
  id: string;
  /**
   * The single recipient this copy is for. Omitted when a copy serves
   * several recipients, so that no Bcc recipient is revealed to the others.
   */
  recipient?: string;
  date: Date;
}

/** Keeps client-supplied text to visible ASCII without the characters that end a comment or field. */
function clean(text: string): string {
  return text.replace(/[^\x21-\x7e]|[()\\<>;]/g, "?").slice(0, 255) || "unknown";
}

/** RFC 5322 §3.3 date-time in UTC, e.g. `Mon, 30 Nov 2026 11:00:00 +0000`. */
export function rfc5322Date(date: Date): string {
  return date.toUTCString().replace(/GMT$/, "+0000");
}

/** RFC 3848: the `with` keyword from whether TLS and AUTH were used. */
export function protocolType(tls: boolean, authenticated: boolean): string {
  return `ESMTP${tls ? "S" : ""}${authenticated ? "A" : ""}`;
}

/** Builds the header field, folded, ending in CRLF. */
export function receivedHeader(info: ReceivedInfo): string {
  // RFC 5321 §4.4: "from" domain (TCP-info), "by", "with", "id", "for", then "; date-time".
  const ip = info.clientIp.includes(":") ? `IPv6:${info.clientIp}` : info.clientIp;
  const name = info.clientName.startsWith("[") ? "" : `${clean(info.clientName)} `;
  const lines = [
    `Received: from ${clean(info.helo)} (${name}[${clean(ip)}])`,
    `\tby ${clean(info.by)} (Hearth) with ${info.protocol}` +
    (info.tls ? ` (${info.tls.split(" ").map(clean).join(" ")})` : ""),
    `\tid ${clean(info.id)}` + (info.recipient ? ` for <${clean(info.recipient)}>` : "") + ";",
    `\t${rfc5322Date(info.date)}`,
  ];
  return lines.join("\r\n") + "\r\n";
}

/** Prepends a header field (already CRLF-terminated) to a raw message. */
export function prependHeader(header: string, raw: Uint8Array): Uint8Array {
  const head = new TextEncoder().encode(header);
  const out = new Uint8Array(head.length + raw.length);
  out.set(head);
  out.set(raw, head.length);
  return out;
}
