/**
 * What the SMTP listeners need from the rest of the home box, as injectable
 * dependencies (the store, the account registry, and the outbound queue
 * once it exists).
 *
 * @example
 * ```ts
 * const queue: OutboundQueue = { async enqueue(from, to, raw) {} };
 * await startSubmission({ ...deps, queue, port: 2587, tlsPort: 2465 });
 * ```
 */
import type { BlobStore } from "../store/blobs.ts";
import type { AccountRegistry } from "../store/accounts.ts";
import type { CertificatePem } from "../../src/smtp/server.ts";

/**
 * The outbound queue (home/queue/): takes a message for remote recipients
 * and owns it from then on. It must be durable when the promise resolves,
 * because the submission `250` follows it.
 */
export interface OutboundQueue {
  enqueue(from: string, to: string[], raw: Uint8Array): Promise<void>;
}

export type { CertificatePem } from "../../src/smtp/server.ts";

/** Dependencies shared by the MX and submission listeners. */
export interface SmtpDeps {
  kv: Deno.Kv;
  blobs: BlobStore;
  registry: AccountRegistry;
  /** The box's mail domain; recipients here (or at any account's domain) are local. */
  domain: string;
  /** Name in the greeting and in `Received:` headers. */
  hostname: string;
  /** Address the listeners bind to. */
  listen: string;
  cert: CertificatePem;
}

/** A running SMTP listener (or pair of listeners). */
export interface SmtpListener {
  /** Bound ports (useful when 0 was asked for). */
  ports: number[];
  close(): Promise<void>;
}
