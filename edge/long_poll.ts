/**
 * The edge's long-polls (a home's mail, sync relay mailboxes, backup relay
 * mailboxes): answer at once when something waits, else when something
 * arrives or the wait ends. A post in this process wakes its mailbox's polls
 * through {@linkcode Wakeups}; other edge processes' commits are not signalled,
 * so a waiting poll re-reads KV every {@linkcode limits.edgeLongPollRecheckMs}.
 *
 * @example
 * ```ts
 * const wakeups = new Wakeups();
 * // after a post to `mailbox` is durable: wakeups.wake(mailbox);
 * const { items, more } = await longPoll({
 *   waitSeconds: c.req.query("wait"),
 *   now,
 *   closing: () => store.closing,
 *   read: () => relay.list(mailbox, limits.edgePullItems),
 *   wait: (ms) => wakeups.wait(mailbox, ms),
 * });
 * ```
 */
import { limits } from "../src/limits.ts";

/** Long-polls waiting per key (a mailbox, a home), woken when something is posted there. */
export class Wakeups {
  readonly #waiters = new Map<string, Set<() => void>>();

  /** Resolves when `key` is woken, after `ms`, or when `signal` aborts. */
  wait(key: string, ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const set = this.#waiters.get(key) ?? new Set();
      this.#waiters.set(key, set);
      const done = () => {
        clearTimeout(timer);
        set.delete(done);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      set.add(done);
      signal?.addEventListener("abort", done);
    });
  }

  /** Ends every wait on `key`. */
  wake(key: string): void {
    for (const w of [...(this.#waiters.get(key) ?? [])]) w();
  }

  /** Ends every wait (the edge is stopping). */
  wakeAll(): void {
    for (const set of this.#waiters.values()) for (const w of [...set]) w();
  }
}

export interface LongPollOptions<T> {
  /** The request's `?wait=` in seconds; absent or not a number waits not at all. */
  waitSeconds: string | undefined;
  now: () => number;
  /** True when the edge is stopping: answer at once with what there is. */
  closing: () => boolean;
  /** One read of the mailbox. */
  read: () => Promise<T>;
  /** Resolves when something may have been posted, or after `ms`. */
  wait: (ms: number) => Promise<void>;
}

/**
 * Reads until the answer has items, the wait (at most {@linkcode limits.edgeLongPollMs})
 * is over or the edge is closing; returns that last read.
 */
export async function longPoll<T extends { items: readonly unknown[] }>(
  opts: LongPollOptions<T>,
): Promise<T> {
  const { now } = opts;
  const waitMs = Math.min(Number(opts.waitSeconds ?? 0) * 1000 || 0, limits.edgeLongPollMs);
  const deadline = now() + waitMs;
  for (;;) {
    const read = await opts.read();
    // A client that went away is not detected here (Deno's request.signal also fires on
    // success); its poll ends at the deadline, at most edgeLongPollMs.
    if (read.items.length || now() >= deadline || opts.closing()) return read;
    await opts.wait(Math.min(limits.edgeLongPollRecheckMs, deadline - now()));
  }
}
