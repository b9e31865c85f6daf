/**
 * The queue runner: takes due items, delivers local recipients through the
 * role's {@linkcode LocalDelivery} (the home box's INBOXes; the edge has none)
 * and the rest through a {@linkcode Transport}, schedules retries with
 * exponential backoff, and bounces (RFC 3464) what failed for good.
 *
 * @example
 * ```ts
 * const runner = startQueueRunner({ queue, local, transport, domain, hostname });
 * // … later
 * await runner.stop();
 * ```
 */
import { ProtocolError } from "../errors.ts";
import { limits } from "../limits.ts";
import { log } from "../log.ts";
import type { OutboundQueue, QueueItem } from "./queue.ts";
import type { DeliveryResult, Transport } from "./transport.ts";
import { buildDsn, type FailedRecipient } from "./dsn.ts";

/**
 * Where this role delivers without SMTP, and where bounces go. The home box
 * delivers into its accounts' INBOXes; the edge relays bounces home sealed.
 */
export interface LocalDelivery {
  /** Whether `address` is delivered here rather than through the transport. */
  isLocal(address: string): Promise<boolean>;
  /** Stores `message` for `address`; resolves once durable. A ProtocolError 5xx is permanent. */
  deliver(address: string, message: Uint8Array): Promise<void>;
  /** Hands a DSN to the sender, if the sender is ours; false if it is not. */
  bounce(sender: string, dsn: Uint8Array): Promise<boolean>;
}

export interface QueueRunnerOptions {
  queue: OutboundQueue;
  local: LocalDelivery;
  transport: Transport;
  /** Our mail domain (bounces come from MAILER-DAEMON@domain). */
  domain: string;
  /** Our host name (Reporting-MTA of bounces). */
  hostname: string;
  /** How often due items are looked for when nothing wakes the runner; default 30 s. */
  pollMs?: number;
  concurrency?: number;
  /** Start the polling loop; false lets tests drive {@linkcode QueueRunner.runOnce} alone. */
  loop?: boolean;
}

export interface QueueRunner {
  /** Delivers every due item once; resolves when they are all attempted. */
  runOnce(): Promise<void>;
  /** Wakes the loop now (called after each enqueue). */
  kick(): void;
  stop(): Promise<void>;
}

/**
 * Delay before attempt `attempts + 1`: doubling from the base up to the cap.
 * RFC 5321 §4.5.4.1 asks for at least 30 minutes between retries to one
 * destination; we start lower for the first retries, which mostly meet
 * greylisting, and cap at 4 hours.
 */
export function retryDelayMs(attempts: number): number {
  const exp = Math.min(attempts - 1, 20);
  return Math.min(limits.queueRetryBaseMs * 2 ** Math.max(exp, 0), limits.queueRetryMaxMs);
}

async function deliverLocal(
  opts: QueueRunnerOptions,
  address: string,
  message: Uint8Array,
): Promise<DeliveryResult> {
  try {
    await opts.local.deliver(address, message);
    return { kind: "delivered" };
  } catch (e) {
    if (e instanceof ProtocolError && e.smtp && e.smtp.code >= 500) {
      return { kind: "permanent", reason: e.message, status: e.smtp.enhanced };
    }
    return { kind: "transient", reason: (e as Error).message };
  }
}

/** Attempts one item and records the outcome. */
export async function attemptItem(opts: QueueRunnerOptions, item: QueueItem): Promise<void> {
  const { queue } = opts;
  const now = queue.now();
  const message = await queue.message(item.id);
  const pending = item.envelope.recipients.filter((r) => r.state === "pending");
  const results = new Map<string, DeliveryResult>();
  const remote: string[] = [];
  for (const r of pending) {
    // Local recipients go straight into their INBOX, never through SMTP.
    if (await opts.local.isLocal(r.address)) {
      results.set(r.address, await deliverLocal(opts, r.address, message));
    } else remote.push(r.address);
  }
  if (remote.length) {
    try {
      const got = await opts.transport.deliver({
        from: item.envelope.from,
        recipients: remote,
        message,
      });
      for (const r of remote) {
        results.set(r, got.get(r) ?? { kind: "transient", reason: "no result from transport" });
      }
    } catch (e) {
      for (const r of remote) results.set(r, { kind: "transient", reason: (e as Error).message });
    }
  }
  const failed: FailedRecipient[] = [];
  const expired = now - item.created >= limits.queueMaxAgeMs;
  for (const r of pending) {
    const res = results.get(r.address)!;
    if (res.kind === "delivered") {
      r.state = "delivered";
      r.reason = res.reason;
    } else if (res.kind === "permanent" || expired) {
      r.state = "failed";
      r.reason = res.reason;
      // RFC 3463 §3.5: 4.4.7 is "delivery time expired".
      r.status = res.kind === "permanent" ? res.status ?? "5.0.0" : "4.4.7";
      failed.push({ address: r.address, status: r.status, diagnostic: res.reason });
    } else r.reason = res.reason;
  }
  item.attempts++;
  item.nextAttempt = now + retryDelayMs(item.attempts);
  if (failed.length) await bounce(opts, item, failed, message, now);
  if (item.envelope.recipients.some((r) => r.state === "pending")) {
    await queue.update(item);
    log.info("queue.deferred", { id: item.id, attempts: item.attempts, next: item.nextAttempt });
  } else {
    await queue.remove(item.id);
    log.info("queue.done", { id: item.id, attempts: item.attempts, failed: failed.length });
  }
}

/** Sends a DSN to the sender when the sender is ours. */
async function bounce(
  opts: QueueRunnerOptions,
  item: QueueItem,
  failed: FailedRecipient[],
  original: Uint8Array,
  now: number,
): Promise<void> {
  const sender = item.envelope.from;
  // RFC 5321 §4.5.5: a message with a null reverse-path (itself a bounce) is never bounced.
  if (!sender) return;
  const dsn = buildDsn({
    reportingMta: opts.hostname,
    domain: opts.domain,
    to: sender,
    arrival: item.created,
    now,
    failed,
    original,
  });
  try {
    if (!(await opts.local.bounce(sender, dsn))) {
      log.warn("queue.bounce-not-local", { id: item.id });
    }
  } catch (e) {
    log.error("queue.bounce-failed", { id: item.id, error: e });
  }
}

/** Starts delivering the queue; enqueues wake it at once. */
export function startQueueRunner(opts: QueueRunnerOptions): QueueRunner {
  const concurrency = opts.concurrency ?? limits.queueConcurrency;
  const running = new Set<string>();
  let stopped = false;
  let wake: (() => void) | null = null;
  let kicked = false;

  async function runOnce(): Promise<void> {
    const due = (await opts.queue.due()).filter((i) => !running.has(i.id));
    let next = 0;
    // Bounded concurrency: `concurrency` workers take items from one list.
    const worker = async () => {
      while (next < due.length && !stopped) {
        const item = due[next++];
        running.add(item.id);
        try {
          await attemptItem(opts, item);
        } catch (e) {
          log.error("queue.attempt-failed", { id: item.id, error: e });
        } finally {
          running.delete(item.id);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, due.length) }, worker));
  }

  const kick = () => {
    kicked = true;
    wake?.();
  };
  const unsubscribe = opts.queue.onEnqueue(kick);

  const loop = (async () => {
    if (opts.loop === false) return;
    while (!stopped) {
      kicked = false;
      try {
        await runOnce();
      } catch (e) {
        log.error("queue.run-failed", { error: e });
      }
      if (stopped || kicked) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, opts.pollMs ?? 30_000);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = null;
    }
  })();

  return {
    runOnce,
    kick,
    async stop() {
      stopped = true;
      unsubscribe();
      wake?.();
      await loop;
    },
  };
}
