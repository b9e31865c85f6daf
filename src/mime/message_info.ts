import type { ImapValue } from "./imap_value.ts";

/**
 * What Hearth keeps about a message besides its sealed blob: computed once
 * when the message arrives, stored encrypted with the account's index key,
 * and enough to answer FETCH ENVELOPE/BODYSTRUCTURE, SEARCH on headers, SORT
 * and THREAD without opening the blob.
 */
export interface MessageInfo {
  /** ENVELOPE (RFC 9051 §7.5.2), ready for the encoder. */
  envelope: ImapValue;
  /** BODY: the non-extensible BODYSTRUCTURE. */
  body: ImapValue;
  /** BODYSTRUCTURE with extension data. */
  bodyStructure: ImapValue;
  /** Header values decoded to Unicode (RFC 2047, charsets), for SEARCH, SORT and THREAD. */
  headers: {
    /** Every header field as [name as written, decoded unfolded value], in order. */
    fields: [string, string][];
    /** Date: header in ms since the epoch, or null when absent or unparseable. */
    date: number | null;
    /** First mailbox of From/To/Cc as `{ name, mailbox, host }` (for SORT FROM/TO/CC/DISPLAYFROM/DISPLAYTO). */
    from: AddressInfo | null;
    to: AddressInfo | null;
    cc: AddressInfo | null;
    /** Decoded Subject, and the base subject of RFC 5256 §2.1 for SORT SUBJECT and THREAD. */
    subject: string;
    baseSubject: string;
    /** Message-ID, In-Reply-To and References message ids, without angle brackets. */
    messageId: string | null;
    inReplyTo: string | null;
    references: string[];
  };
  /** RFC822.SIZE: octets of the message as stored. */
  size: number;
}

export interface AddressInfo {
  name: string | null;
  mailbox: string | null;
  host: string | null;
}
