/**
 * A worker thread that makes age file headers ahead of time. The X25519
 * exchange, the key derivations and the header MAC of a header cost the main
 * thread about as much as the rest of an inbound message's sealing and
 * indexing together; made here, in batches, they leave the thread that serves
 * SMTP and IMAP free. Each header is used for one file only (age_seal.ts takes
 * it out of the stock), and stocks are small: a header is 200 bytes.
 *
 * Only long-running roles start it (`hearth home`, `hearth edge`): a running
 * worker keeps the process alive until {@linkcode stopHeaderWorker}.
 *
 * @example
 * ```ts
 * startHeaderWorker();
 * sealAheadFor(recipient); // the worker stocks headers for this recipient
 * const sealed = sealX25519(raw, recipient); // takes one, if it has arrived
 * stopHeaderWorker();
 * ```
 */
import { addHeadersAhead, type SealHeader, setHeaderSource } from "./age_seal.ts";

/** Headers made per request. */
export const headerBatch = 32;
/** A recipient's stock is topped up below this many. */
const lowWater = 32;
/** Most headers kept per recipient. */
const maxStock = 64;

/** What the worker is asked. */
export interface HeaderRequest {
  recipient: string;
  count: number;
}

/** What the worker answers: the headers, or why it could not make them. */
export interface HeaderReply {
  recipient: string;
  headers?: SealHeader[];
  error?: string;
}

let worker: Worker | null = null;
/** Recipients with a request in flight: one at a time each. */
const asked = new Set<string>();

/** Starts the header worker (once; later calls do nothing). */
export function startHeaderWorker(): void {
  if (worker) return;
  const w = new Worker(new URL("./header_worker_script.ts", import.meta.url), { type: "module" });
  w.onmessage = (e: MessageEvent<HeaderReply>) => {
    const { recipient, headers } = e.data;
    asked.delete(recipient);
    // An error (a recipient that is not a valid key) is left to the caller's own sealing,
    // which throws the same TypeError on its thread.
    if (headers) addHeadersAhead(recipient, headers, maxStock);
  };
  w.onerror = (e) => {
    // A worker that failed to start or crashed: sealing goes on without it, on this thread.
    e.preventDefault();
    stopHeaderWorker();
  };
  worker = w;
  setHeaderSource({
    refill(recipient, have) {
      if (have >= lowWater || asked.has(recipient) || worker !== w) return;
      asked.add(recipient);
      w.postMessage({ recipient, count: headerBatch } satisfies HeaderRequest);
    },
  });
}

/** Stops the header worker; sealing goes on with headers made on the calling thread. */
export function stopHeaderWorker(): void {
  if (!worker) return;
  setHeaderSource(null);
  worker.terminate();
  worker = null;
  asked.clear();
}
