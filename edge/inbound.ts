/**
 * How the edge takes in one message, whichever front it came through (the
 * SMTP front or `POST /v1/inbound`): the receive rules of the home MX (size,
 * CRLF only, SPF/DKIM/DMARC/ARC verdict in `Authentication-Results`), then one
 * copy per recipient account, sealed in memory to that account's key and
 * committed. The plaintext never reaches storage.
 *
 * @example
 * ```ts
 * const route = await checkRecipient(store, "me@example.org"); // throws 550/554 otherwise
 * const ids = await sealAndCommit(deps, { raw, routes: [route], received: () => "" , context });
 * ```
 */
import { sealToRecipient } from "../src/crypto/age.ts";
import type { Resolver } from "../src/dns.ts";
import { ProtocolError } from "../src/errors.ts";
import { limits } from "../src/limits.ts";
import { normaliseLineEndings } from "../src/mail/line_endings.ts";
import { recipientSyntaxProblem } from "../src/smtp/addresses.ts";
import { removeForgedResults, verifyInbound } from "../src/smtp/authenticate.ts";
import { prependHeader } from "../src/smtp/received.ts";
import type { EdgeStore, RecipientRoute } from "./store.ts";

export type AccountRoute = Extract<RecipientRoute, { kind: "account" }>;

export interface InboundDeps {
  store: EdgeStore;
  /** Our host name: `Received: by`, the authserv-id of `Authentication-Results`. */
  hostname: string;
  /** DNS for SPF/DKIM/DMARC; without one no verdict is recorded. */
  resolver?: Resolver;
  /** Called with the home and account of every committed item (Web Push). */
  onArrival?: (home: string, account: string, kind?: "mail" | "chat") => void;
}

/** What the SMTP session knew about the client. */
export interface ClientContext {
  ip: string;
  helo: string;
  /** MAIL FROM; empty for the null sender. */
  sender: string;
}

/**
 * The RCPT TO check: an account we serve, or the refusal. RFC 5321 §3.3:
 * unknown user `550 5.1.1`; anything not ours `554 5.7.1` (never a relay).
 */
export async function checkRecipient(
  store: EdgeStore,
  address: string,
  rawPath?: string,
): Promise<AccountRoute> {
  const problem = recipientSyntaxProblem(address, rawPath);
  if (problem) {
    throw new ProtocolError("NO", `${problem}; relay access denied`, {
      smtp: { code: 554, enhanced: "5.7.1" },
    });
  }
  const route = await store.route(address);
  if (route.kind === "account") return route;
  if (route.kind === "unknown-user") {
    throw new ProtocolError("NO", `no mailbox here for ${address}`, {
      smtp: { code: 550, enhanced: "5.1.1" },
      http: 404,
    });
  }
  throw new ProtocolError("NO", `relay access denied: ${address} is not handled here`, {
    smtp: { code: 554, enhanced: "5.7.1" },
    http: 403,
  });
}

export interface SealRequest {
  /** The message as received (line endings are normalised here). */
  raw: Uint8Array;
  /** Accepted recipients with their routes. */
  recipients: { address: string; route: AccountRoute }[];
  client: ClientContext;
  /** The `Received:` field for the copy addressed to `recipient`. */
  received(recipient: string): string;
  /** A chat message (Chat-Version), which wakes phones with `Urgency: high`. */
  kind?: "mail" | "chat";
}

/**
 * Verifies, seals and commits one message: one item per recipient account.
 * Resolves with the item ids once every item is durable (the caller may
 * then answer `250`); throws a ProtocolError for a refusal (DMARC reject).
 */
export async function sealAndCommit(deps: InboundDeps, req: SealRequest): Promise<string[]> {
  if (req.raw.length > limits.messageBytes) {
    throw new ProtocolError(
      "NO",
      `message is larger than the limit of ${limits.messageBytes} bytes`,
      { smtp: { code: 552, enhanced: "5.3.4" }, http: 413 },
    );
  }
  // RFC 5321 §2.3.8: bare CR and LF are not line endings; only CRLF is stored.
  let raw = normaliseLineEndings(req.raw);
  let verdict = "";
  if (deps.resolver) {
    raw = removeForgedResults(raw, deps.hostname);
    const v = await verifyInbound(raw, {
      ...req.client,
      hostname: deps.hostname,
      resolver: deps.resolver,
    });
    // RFC 7489 §6.3: p=reject is refused at DATA.
    if (v.dmarcReject) {
      throw new ProtocolError("NO", v.dmarcReject, {
        smtp: { code: 550, enhanced: "5.7.1" },
        http: 403,
      });
    }
    verdict = v.headers;
  }
  // One copy per account, however many of its addresses were named.
  const byAccount = new Map<string, { address: string; route: AccountRoute }>();
  for (const r of req.recipients) {
    const k = `${r.route.home}/${r.route.account}`;
    if (!byAccount.has(k)) byAccount.set(k, r);
  }
  return await Promise.all(
    [...byAccount.values()].map(async ({ address, route }) => {
      // RFC 8601 §5: Authentication-Results above the other trace fields.
      const copy = prependHeader(verdict, prependHeader(req.received(address), raw));
      const sealed = await sealToRecipient(copy, route.recipient);
      const id = await deps.store.commitSealed(route.home, route.account, sealed, copy.length);
      deps.onArrival?.(route.home, route.account, req.kind);
      return id;
    }),
  );
}
