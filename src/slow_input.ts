/**
 * Cuts clients that hold a line open by trickling bytes ("slowloris"): the
 * idle timeout restarts with every byte, so it alone never fires. While a
 * line is incomplete and the server is waiting for the client, at least
 * `limits.slowInputMinBytes` must arrive per `limits.slowInputWindowMs`.
 *
 * @example
 * ```ts
 * const guard = new SlowInputGuard(() => socket.destroy(), () => !busy);
 * socket.on("data", (chunk) => guard.feed(chunk));
 * socket.on("close", () => guard.stop());
 * ```
 */
import { limits } from "./limits.ts";

export class SlowInputGuard {
  #timer: ReturnType<typeof setTimeout> | undefined;
  #bytes = 0;
  #partial = false;
  #stopped = false;
  readonly #onSlow: () => void;
  readonly #waitingForClient: () => boolean;

  /** `waitingForClient` is false while the server itself holds input back (a command runs). */
  constructor(onSlow: () => void, waitingForClient: () => boolean = () => true) {
    this.#onSlow = onSlow;
    this.#waitingForClient = waitingForClient;
  }

  /** Counts bytes the client sent; a chunk not ending in LF leaves a line incomplete. */
  feed(chunk: Uint8Array) {
    if (this.#stopped || chunk.length === 0) return;
    this.#partial = chunk[chunk.length - 1] !== 0x0a;
    if (this.#partial && this.#timer === undefined) this.#arm();
    this.#bytes += chunk.length;
  }

  #arm() {
    this.#bytes = 0;
    this.#timer = setTimeout(() => this.#check(), limits.slowInputWindowMs);
  }

  #check() {
    this.#timer = undefined;
    if (this.#stopped || !this.#partial) return;
    if (this.#waitingForClient() && this.#bytes < limits.slowInputMinBytes) {
      this.stop();
      this.#onSlow();
      return;
    }
    this.#arm();
  }

  stop() {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
