/**
 * Delivery status notifications (RFC 3464): the bounce a sender receives
 * when some recipients failed permanently or the queue gave up on them.
 *
 * @example
 * ```ts
 * const raw = buildDsn({ reportingMta: "mx.example.org", domain: "example.org", ... });
 * ```
 */

export interface FailedRecipient {
  address: string;
  /** Enhanced status code (RFC 3463), e.g. `5.1.1`; `4.4.7` for expiry. */
  status: string;
  /** The remote reply or our reason. */
  diagnostic: string;
  /** The host that answered, if any. */
  remoteMta?: string;
}

export interface DsnInput {
  /** Our host name (Reporting-MTA). */
  reportingMta: string;
  /** Our mail domain (the bounce's From). */
  domain: string;
  /** The original sender, who receives the report. */
  to: string;
  arrival: number;
  now: number;
  failed: FailedRecipient[];
  /** The original message; its header is returned (RFC 3462 text/rfc822-headers). */
  original: Uint8Array;
}

function headerOf(raw: Uint8Array): string {
  const text = new TextDecoder().decode(raw.subarray(0, Math.min(raw.length, 256 * 1024)));
  const end = text.indexOf("\r\n\r\n");
  return end < 0 ? text : text.slice(0, end + 2);
}

/** Folds anything that could break the report's line structure. */
function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, " ").replace(/[^\x20-\x7e]/g, "?").slice(0, 900);
}

function subjectOf(header: string): string {
  const m = /^subject:[ \t]*(.*(?:\r\n[ \t].*)*)/im.exec(header);
  return m ? oneLine(m[1]) : "";
}

/** Builds the RFC 3464 `multipart/report; report-type=delivery-status` message. */
export function buildDsn(input: DsnInput): Uint8Array {
  const boundary = `hearth-dsn-${crypto.randomUUID()}`;
  const header = headerOf(input.original);
  const expired = input.failed.every((f) => f.status === "4.4.7");
  const subject = subjectOf(header);
  const human = [
    `This is the mail system at ${input.reportingMta}.`,
    "",
    expired
      ? "Your message could not be delivered for several days, and no more attempts will be made:"
      : "Your message could not be delivered to these recipients:",
    "",
    ...input.failed.map((f) => `  ${f.address}: ${oneLine(f.diagnostic)}`),
    "",
    subject ? `Subject of your message: ${subject}` : "",
    "The header of your message is attached.",
  ].join("\r\n");
  // RFC 3464 §2.2: per-message fields, then one block per recipient (§2.3).
  const perMessage = [
    `Reporting-MTA: dns; ${input.reportingMta}`,
    `Arrival-Date: ${new Date(input.arrival).toUTCString()}`,
  ];
  const perRecipient = input.failed.map((f) =>
    [
      `Final-Recipient: rfc822; ${oneLine(f.address)}`,
      "Action: failed",
      `Status: ${f.status}`,
      ...(f.remoteMta ? [`Remote-MTA: dns; ${f.remoteMta}`] : []),
      `Diagnostic-Code: smtp; ${oneLine(f.diagnostic)}`,
      `Last-Attempt-Date: ${new Date(input.now).toUTCString()}`,
    ].join("\r\n")
  );
  const status = [perMessage.join("\r\n"), ...perRecipient].join("\r\n\r\n");
  const text = [
    `From: Mail Delivery System <MAILER-DAEMON@${input.domain}>`,
    `To: <${input.to}>`,
    `Subject: Undelivered Mail Returned to Sender`,
    `Date: ${new Date(input.now).toUTCString()}`,
    `Message-ID: <${crypto.randomUUID()}@${input.domain}>`,
    "Auto-Submitted: auto-replied",
    "MIME-Version: 1.0",
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    "",
    "This is a MIME-encapsulated delivery status notification.",
    "",
    `--${boundary}`,
    "Content-Type: text/plain; charset=us-ascii",
    "",
    human,
    "",
    `--${boundary}`,
    "Content-Type: message/delivery-status",
    "",
    status,
    "",
    `--${boundary}`,
    "Content-Type: text/rfc822-headers",
    "",
    header.replace(/\r\n$/, ""),
    "",
    `--${boundary}--`,
    "",
  ].join("\r\n");
  return new TextEncoder().encode(text);
}
