/**
 * The edge's HTTP API, as both sides see it (DESIGN.md, Edge). Everything is
 * under `/v1`. Requests from a home box are signed (signed_request.ts);
 * inbound mail from an HTTP mail front carries a bearer token.
 *
 * | route | who | what |
 * |---|---|---|
 * | `POST /v1/homes` | new home, pairing token + signature by the key it registers | pins the home's key |
 * | `PUT /v1/home/accounts` | home (signed) | the accounts mail is sealed to, and their address keys |
 * | `GET /v1/home/mail?wait=S` | home (signed) | long-poll for sealed items |
 * | `GET /v1/home/mail/ID` | home (signed) | the sealed bytes of a large item |
 * | `POST /v1/home/ack` | home (signed) | items stored at home; the edge deletes them |
 * | `POST /v1/outbound?from=A&to=B…` | home (signed) | a DKIM-signed message for the edge to deliver |
 * | `POST /v1/inbound` | HTTP mail front (bearer) | a raw message plus its envelope |
 *
 * @example
 * ```ts
 * const body: RegisterHomeRequest = { token, publicKey: key.publicKey };
 * ```
 */

/** `POST /v1/homes`: signed with the key being registered (key id `new`). */
export interface RegisterHomeRequest {
  /** The one-time token `hearth edge add-home` printed. */
  token: string;
  /** base64url raw Ed25519 public key; every later request must verify against it. */
  publicKey: string;
}

export interface RegisterHomeResponse {
  /** The key id for signed requests from now on. */
  homeId: string;
  /** The mail domain the pairing token was made for. */
  domain: string;
}

/** One account, as the edge needs it to accept and seal mail. */
export interface EdgeAccount {
  /** The home box's account id (opaque to the edge); sealed items name it. */
  id: string;
  /** The account's age recipient (`age1…`): mail for it is sealed to this key. */
  recipient: string;
  /** {@linkcode addressKey} of each address the account receives mail at. */
  addressKeys: string[];
}

/** `PUT /v1/home/accounts`: replaces the home's whole account list. */
export interface PutAccountsRequest {
  accounts: EdgeAccount[];
}

/** One sealed item waiting at the edge. */
export interface SealedItem {
  /** Unique per item; the home box stores an item once however often it is sent. */
  id: string;
  /** The account it is sealed to. */
  account: string;
  /** Plaintext size in bytes. */
  size: number;
  /** When the edge accepted it (ms since the epoch). */
  arrived: number;
  /** The age file, base64, when small; otherwise fetch `GET /v1/home/mail/ID`. */
  sealed?: string;
  /** Size of the age file in bytes. */
  sealedSize: number;
}

/** `GET /v1/home/mail` answer: oldest first, possibly empty after the wait. */
export interface PullResponse {
  items: SealedItem[];
  /** True when more items are waiting beyond this batch. */
  more: boolean;
}

/** `POST /v1/home/ack` */
export interface AckRequest {
  ids: string[];
}

/**
 * `POST /v1/inbound`: the request body is the raw message
 * (`Content-Type: message/rfc822`); the envelope travels in these headers.
 */
export const inboundHeaders = {
  from: "hearth-mail-from",
  /** One recipient per header line, or several separated by commas. */
  to: "hearth-rcpt-to",
  clientIp: "hearth-client-ip",
  helo: "hearth-helo",
} as const;

/** The envelope of an inbound message, as read from {@linkcode inboundHeaders}. */
export interface InboundEnvelope {
  /** Envelope sender (`MAIL FROM`); empty for a bounce. */
  from: string;
  /** Envelope recipients (`RCPT TO`). */
  to: string[];
  /** The connecting client's IP address, for SPF and `Received:`. */
  clientIp?: string;
  /** The client's HELO/EHLO name. */
  helo?: string;
}

/** Per-recipient outcome of an inbound message (HTTP fronts map it to SMTP replies). */
export interface InboundResult {
  accepted: string[];
  rejected: { address: string; code: number; enhanced: string; reason: string }[];
}

/** The error body of every refused request. */
export interface ErrorBody {
  error: string;
}
