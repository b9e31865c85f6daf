/**
 * Writes the mail a phone sends: a text/plain UTF-8 message (RFC 5322,
 * RFC 2045), optionally marked as chat with `Chat-Version: 1.0` (the Delta
 * Chat convention, so any mail client still shows it).
 *
 * @example
 * ```ts
 * const raw = composeMail({ from: "me@x.test", to: ["a@y.test"], subject: "Hi", text: "Hello" });
 * ```
 */

export interface Composed {
  from: string;
  to: string[];
  subject: string;
  text: string;
  chat?: boolean;
  /** Defaults to now. */
  date?: Date;
}

/** RFC 2047 §4.1: non-ASCII header text as base64 encoded words (each under 75 characters). */
function headerWords(text: string): string {
  if (/^[\x20-\x7e]*$/.test(text)) return text;
  const words: string[] = [];
  let chunk = "";
  const flush = () => {
    if (!chunk) return;
    const bytes = new TextEncoder().encode(chunk);
    words.push(`=?utf-8?b?${btoa(String.fromCharCode(...bytes))}?=`);
    chunk = "";
  };
  // 45 UTF-8 bytes make 60 base64 characters: the word stays within 75 (§2).
  for (const ch of text) {
    if (new TextEncoder().encode(chunk + ch).length > 45) flush();
    chunk += ch;
  }
  flush();
  return words.join("\r\n ");
}

/** RFC 5322 §3.3 date-time, in UTC. */
function mailDate(d: Date): string {
  return d.toUTCString().replace(/GMT$/, "+0000");
}

/** Plain addresses only: they go into headers as `<a@b>`. */
function checkAddress(a: string): string {
  if (!/^[^\s<>@",;:()\\]+@[^\s<>@",;:()\\]+$/.test(a)) {
    throw new TypeError(`"${a}" is not a mail address`);
  }
  return a;
}

/** The message as CRLF-terminated octets. Throws TypeError on an address that is not one. */
export function composeMail(m: Composed): Uint8Array {
  const from = checkAddress(m.from);
  if (!m.to.length) throw new TypeError("name at least one recipient");
  const to = m.to.map(checkAddress);
  const domain = from.slice(from.lastIndexOf("@") + 1);
  const subject = m.subject.replace(/[\r\n]+/g, " ");
  // RFC 5322 §2.1.1: lines of at most 998 octets; 240 characters are at most 960 octets.
  const body = m.text.replace(/\r?\n/g, "\n").split("\n")
    .flatMap((line) => line.match(/[^]{1,240}/gu) ?? [""])
    .join("\r\n");
  const lines = [
    `From: <${from}>`,
    `To: ${to.map((a) => `<${a}>`).join(", ")}`,
    `Subject: ${headerWords(subject)}`,
    `Date: ${mailDate(m.date ?? new Date())}`,
    `Message-ID: <${crypto.randomUUID()}@${domain}>`,
    ...(m.chat ? ["Chat-Version: 1.0"] : []),
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: 8bit",
    "",
    body,
    "",
  ];
  return new TextEncoder().encode(lines.join("\r\n"));
}
