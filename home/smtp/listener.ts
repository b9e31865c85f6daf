/**
 * The home box's recipient rules and local delivery, shared by the MX and
 * submission listeners (the generic SMTP server is `src/smtp/server.ts`).
 *
 * @example
 * ```ts
 * const kind = await classifyRecipient(deps, "me@example.org");
 * ```
 */
import { accountExists, deliverLocally } from "../store/deliver.ts";
import { domainOf, recipientSyntaxProblem } from "../../src/smtp/addresses.ts";
import { smtpError } from "../../src/smtp/server.ts";
import type { SmtpDeps } from "./types.ts";

/** Where an RCPT address goes. */
export type RecipientKind = "local" | "remote";

/**
 * Classifies a recipient, or throws the refusal: routing forms (`554 5.7.1`),
 * an unknown user in our domain (`550 5.1.1`, RFC 5321 §3.3). A remote
 * recipient is for the caller to allow (submission) or refuse (MX).
 */
export async function classifyRecipient(
  deps: SmtpDeps,
  address: string,
  rawPath?: string,
): Promise<RecipientKind> {
  const problem = recipientSyntaxProblem(address, rawPath);
  if (problem) throw smtpError(554, "5.7.1", `${problem}; relay access denied`);
  if (await accountExists(deps.kv, address)) return "local";
  // Other account domains are matched by the exact address above: account addresses are
  // stored encrypted, so the box cannot list its domains without unlocking accounts.
  if (domainOf(address) === deps.domain.toLowerCase()) {
    throw smtpError(550, "5.1.1", `no mailbox here for ${address}`);
  }
  return "remote";
}

/**
 * Delivers to every local recipient; resolves only once all are durable, so
 * the caller may answer `250` (the store's durability promise).
 */
export async function deliverAll(
  deps: SmtpDeps,
  recipients: string[],
  messageFor: (recipient: string) => Uint8Array,
): Promise<void> {
  await Promise.all(
    recipients.map((r) => deliverLocally(deps.kv, deps.blobs, r, messageFor(r), deps.registry)),
  );
}
