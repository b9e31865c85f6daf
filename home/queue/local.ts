/**
 * The home box's side of the queue runner: recipients with an account here
 * are delivered into their INBOX without SMTP, and bounces go to the
 * sender's INBOX.
 *
 * @example
 * ```ts
 * startQueueRunner({ queue, local: homeDelivery(kv, blobs, registry), transport, domain, hostname });
 * ```
 */
import type { LocalDelivery } from "../../src/queue/runner.ts";
import type { BlobStore } from "../store/blobs.ts";
import type { AccountRegistry } from "../store/accounts.ts";
import { accountExists, deliverLocally } from "../store/deliver.ts";

export function homeDelivery(
  kv: Deno.Kv,
  blobs: BlobStore,
  registry?: AccountRegistry,
): LocalDelivery {
  return {
    isLocal: (address) => accountExists(kv, address),
    deliver: (address, message) => deliverLocally(kv, blobs, address, message, registry),
    async bounce(sender, dsn) {
      if (!(await accountExists(kv, sender))) return false;
      await deliverLocally(kv, blobs, sender, dsn, registry);
      return true;
    },
  };
}
