/**
 * The messages every e2e test starts with, delivered to INBOX in this order
 * (so UID 1 is {@linkcode lunchMessage}). Each has words that appear in no
 * other message, so searches have exactly one answer.
 */

function crlf(text: string): string {
  return text.replace(/\r?\n/g, "\r\n");
}

/** UID 1: a plain text message. */
export const lunchMessage = crlf(`From: Alice Example <alice@example.org>
To: Me <me@hearth.localhost>
Subject: Lunch on Friday
Date: Mon, 03 Mar 2025 10:00:00 +0000
Message-ID: <lunch-1@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Shall we meet at the quayside bistro at noon?
Alice
`);

/** UID 2: text plus a base64 attachment whose decoded bytes are {@linkcode reportCsv}. */
export const reportCsv = "quarter,revenue\nQ1,1200\nQ2,1850\n";
export const reportMessage = crlf(`From: Bob Builder <bob@example.net>
To: me@hearth.localhost
Subject: Quarterly report
Date: Tue, 04 Mar 2025 11:30:00 +0000
Message-ID: <report-2@example.net>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"

--b1
Content-Type: text/plain; charset=utf-8

The spreadsheet with the zeppelin figures is attached.
--b1
Content-Type: text/csv; name="report.csv"
Content-Disposition: attachment; filename="report.csv"
Content-Transfer-Encoding: base64

${btoa(reportCsv)}
--b1--
`);

/** UID 3: multipart/alternative (text and HTML). */
export const hikeMessage = crlf(`From: Carol Walker <carol@example.com>
To: me@hearth.localhost
Cc: Bob Builder <bob@example.net>
Subject: Hiking trip to the glacier
Date: Wed, 05 Mar 2025 08:15:00 +0000
Message-ID: <hike-3@example.com>
In-Reply-To: <lunch-1@example.org>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: text/plain; charset=utf-8

Bring crampons and a thermos.
--alt
Content-Type: text/html; charset=utf-8

<p>Bring <b>crampons</b> and a thermos.</p>
--alt--
`);

export const fixtureMessages = [lunchMessage, reportMessage, hikeMessage];

/** A message a client appends during a test. */
export function appendedMessage(subject: string, body: string): string {
  return crlf(`From: Dave Sender <dave@example.org>
To: me@hearth.localhost
Subject: ${subject}
Date: Thu, 06 Mar 2025 09:00:00 +0000
Message-ID: <${crypto.randomUUID()}@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

${body}
`);
}
