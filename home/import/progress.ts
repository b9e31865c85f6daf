/**
 * The progress of `hearth import`: on a terminal, one line redrawn in place
 * (messages, MB, msg/s, MB/s, time left); otherwise a plain line every few
 * seconds, for logs.
 *
 * @example
 * ```ts
 * const progress = new ImportProgress({ messages: 1000, bytes: 5e6 }, { tty: false, everyMs: 2000 });
 * progress.add(250, 1.2e6);
 * progress.finish();
 * ```
 */

export interface ProgressOptions {
  /** Redraw one line in place (a terminal) instead of printing lines. */
  tty: boolean;
  /** Minimum time between two lines (or redraws); 0 prints after every batch. */
  everyMs: number;
  /** Where lines go (default standard error, so standard output keeps only the summary). */
  write?: (text: string) => void;
}

const encoder = new TextEncoder();

export class ImportProgress {
  readonly total: { messages: number; bytes: number };
  messages = 0;
  bytes = 0;
  readonly started = performance.now();
  #last = 0;
  readonly #opts: ProgressOptions;
  readonly #write: (text: string) => void;

  constructor(total: { messages: number; bytes: number }, opts: ProgressOptions) {
    this.total = total;
    this.#opts = opts;
    this.#write = opts.write ?? ((t) => Deno.stderr.writeSync(encoder.encode(t)));
  }

  /** Seconds since the start. */
  get seconds(): number {
    return (performance.now() - this.started) / 1000;
  }

  /** Counts messages that are now durable in the store. */
  add(messages: number, bytes: number) {
    this.messages += messages;
    this.bytes += bytes;
    const now = performance.now();
    if (now - this.#last < this.#opts.everyMs) return;
    this.#last = now;
    this.#print();
  }

  /** Ends the bar (a terminal line is finished with a newline). */
  finish() {
    if (this.#opts.tty) {
      this.#print();
      this.#write("\n");
    }
  }

  #print() {
    const line = this.line();
    this.#write(
      this.#opts.tty
        ? `\r\x1b[2K${bar(this.messages, this.total.messages)} ${line}`
        : `import: ${line}\n`,
    );
  }

  /** "512/1000 messages, 2.1/4.0 MB, 340 msg/s, 1.4 MB/s, 2s left". */
  line(): string {
    const s = Math.max(this.seconds, 0.001);
    const rate = this.messages / s;
    const byteRate = this.bytes / s;
    const leftBytes = this.total.bytes - this.bytes;
    const eta = byteRate > 0 ? leftBytes / byteRate : NaN;
    return `${this.messages}/${this.total.messages} messages, ${mb(this.bytes)}/${
      mb(this.total.bytes)
    } MB, ${Math.round(rate)} msg/s, ${mb(byteRate)} MB/s, ${duration(eta)} left`;
  }
}

function bar(done: number, total: number): string {
  const width = 20;
  const filled = total ? Math.min(width, Math.round((done / total) * width)) : width;
  return `[${"#".repeat(filled)}${".".repeat(width - filled)}]`;
}

/** Bytes as megabytes with one decimal. */
export function mb(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}

/** Seconds as "42s", "3m05s" or "1h02m". */
export function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}
