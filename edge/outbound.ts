/**
 * The edge's outbound relay: a linked home hands over its DKIM-signed mail
 * (`POST /v1/outbound`, signed) and the edge delivers it from its own,
 * well-reputed address with retries for days (src/queue/). Recipients the
 * edge itself serves are sealed into their home's items instead of sent by
 * SMTP, and bounces (RFC 3464) go back to the sender's home sealed like any
 * other message: the edge never keeps a readable copy past delivery.
 *
 * @example
 * ```ts
 * const id = await acceptOutbound({ store, queue }, homeId, from, to, raw);
 * startQueueRunner({ queue, local: edgeDelivery(deps), transport, domain, hostname });
 * ```
 */
import { sealToRecipient } from "../src/crypto/age.ts";
import { ProtocolError } from "../src/errors.ts";
import { limits } from "../src/limits.ts";
import type { OutboundQueue } from "../src/queue/queue.ts";
import type { LocalDelivery } from "../src/queue/runner.ts";
import { domainOf } from "../src/smtp/addresses.ts";
import type { InboundDeps } from "./inbound.ts";
import type { EdgeStore } from "./store.ts";

export interface OutboundDeps {
  store: EdgeStore;
  queue: OutboundQueue;
}

/**
 * Takes one message from a home into the relay queue; resolves with the
 * queue id once the item is durable. A home may send only from its own
 * domains, and only `edgeOutboundPerHour` recipients an hour (shared by all
 * edge processes on the KV).
 */
export async function acceptOutbound(
  deps: OutboundDeps,
  home: string,
  from: string,
  to: string[],
  raw: Uint8Array,
): Promise<string> {
  const record = await deps.store.home(home);
  if (!record) throw new ProtocolError("NO", "unknown home", { http: 401 });
  // The null sender (a bounce made at home) is allowed; any other must be one of the home's.
  if (from && !record.domains.includes(domainOf(from))) {
    throw new ProtocolError("NO", `this home may not send as ${from}`, { http: 403 });
  }
  if (!to.length) throw new ProtocolError("BAD", "no recipients");
  if (to.length > limits.smtpRecipients) {
    throw new ProtocolError("BAD", `more than ${limits.smtpRecipients} recipients`);
  }
  if (!(await deps.store.takeRate(home, to.length, limits.edgeOutboundPerHour))) {
    throw new ProtocolError(
      "NO",
      `the hourly sending limit of ${limits.edgeOutboundPerHour} recipients is reached`,
      { http: 429 },
    );
  }
  return await deps.queue.add(from, to, raw);
}

/** The edge's "local" recipients: those of a linked home, sealed into that home's items. */
export function edgeDelivery(deps: InboundDeps): LocalDelivery {
  const sealFor = async (address: string, message: Uint8Array): Promise<boolean> => {
    const route = await deps.store.route(address);
    if (route.kind !== "account") return false;
    const sealed = await sealToRecipient(message, route.recipient);
    await deps.store.commitSealed(route.home, route.account, sealed, message.length);
    deps.onArrival?.(route.home, route.account);
    return true;
  };
  return {
    isLocal: async (address) => (await deps.store.route(address)).kind === "account",
    async deliver(address, message) {
      if (!(await sealFor(address, message))) {
        throw new ProtocolError("NO", `no mailbox here for ${address}`, {
          smtp: { code: 550, enhanced: "5.1.1" },
        });
      }
    },
    bounce: (sender, dsn) => sealFor(sender, dsn),
  };
}
