/**
 * `hearth queue`: list, retry and delete the items of a home box's outbound
 * queue. Safe while `hearth home` runs on the same data directory: both
 * open `DATA/home.kv` (SQLite in WAL mode, shared by processes) and this
 * command takes no lock. A running box notices a retry within a second
 * (it polls the key {@linkcode OutboundQueue.retryNow} bumps).
 *
 * @example
 * ```ts
 * await runQueueCommand(config, { action: "list", format: "json" });
 * await runQueueCommand(config, { action: "retry", all: true });
 * ```
 */
import type { HearthConfig } from "../../src/config.ts";
import { UsageError } from "../../src/errors.ts";
import { OutboundQueue, type QueueItem } from "../../src/queue/queue.ts";
import { openStore } from "../box.ts";

export interface QueueCommand {
  /** `list` (also when absent), `retry` or `delete`. */
  action?: string;
  /** The item id of `retry` and `delete`. */
  id?: string;
  /** `retry --all`. */
  all?: boolean;
  /** `list --format text|json`; default text. */
  format?: string;
}

export interface QueueCommandIo {
  /** Where lines go; default console.log. */
  print?: (text: string) => void;
  /** Current time in ms, for ages (tests). */
  now?: () => number;
}

/** An item as `hearth queue list --format json` prints it. */
export interface QueueListEntry {
  id: string;
  from: string;
  created: string;
  ageSeconds: number;
  size: number;
  attempts: number;
  nextAttempt: string;
  recipients: { address: string; state: string; reason: string | null; status: string | null }[];
}

/** The JSON view of items (times as ISO 8601 UTC). */
export function queueListEntries(items: QueueItem[], now: number): QueueListEntry[] {
  return items.map((i) => ({
    id: i.id,
    from: i.envelope.from,
    created: new Date(i.created).toISOString(),
    ageSeconds: Math.max(0, Math.floor((now - i.created) / 1000)),
    size: i.size,
    attempts: i.attempts,
    nextAttempt: new Date(i.nextAttempt).toISOString(),
    recipients: i.envelope.recipients.map((r) => ({
      address: r.address,
      state: r.state,
      reason: r.reason ?? null,
      status: r.status ?? null,
    })),
  }));
}

/** `90061000` → `1d1h`: the two largest units, as an operator reads an age. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const units: [string, number][] = [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]];
  const first = units.findIndex(([, n]) => s >= n);
  if (first < 0) return "0s";
  const [u1, n1] = units[first];
  const out = `${Math.floor(s / n1)}${u1}`;
  const next = units[first + 1];
  if (!next) return out;
  const rest = Math.floor((s % n1) / next[1]);
  return rest ? `${out}${rest}${next[0]}` : out;
}

/** Bytes as `812 B`, `12.3 KiB`, `1.2 MiB`. */
export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

/** The text view: one line per item, then one indented line per recipient. */
export function formatQueueText(items: QueueItem[], now: number): string {
  if (!items.length) return "The outbound queue is empty.";
  const lines = [`${items.length} item${items.length === 1 ? "" : "s"} in the outbound queue:`];
  for (const i of items) {
    const next = i.nextAttempt <= now
      ? "due now"
      : `next attempt ${new Date(i.nextAttempt).toISOString()} (in ${
        formatDuration(i.nextAttempt - now)
      })`;
    lines.push("");
    lines.push(
      `${i.id}  age ${formatDuration(now - i.created)}, ${formatSize(i.size)}, ` +
        `${i.attempts} attempt${i.attempts === 1 ? "" : "s"}, ${next}`,
    );
    lines.push(`  from <${i.envelope.from}>`);
    for (const r of i.envelope.recipients) {
      const why = [r.status, r.reason].filter(Boolean).join(" ");
      lines.push(`  ${r.state.padEnd(9)} <${r.address}>${why ? `  ${why}` : ""}`);
    }
  }
  return lines.join("\n");
}

function unknownItem(id: string): Error {
  // Exit code 1, not 2: the command line was right, the item is not there.
  return new Error(`no queue item ${id}; \`hearth queue\` lists them`);
}

/** Opens the box's queue and runs one `hearth queue` command. */
export async function runQueueCommand(
  config: HearthConfig,
  cmd: QueueCommand,
  io: QueueCommandIo = {},
): Promise<void> {
  const print = io.print ?? ((text: string) => console.log(text));
  const now = io.now ?? Date.now;
  const action = cmd.action ?? "list";
  if (action === "list") {
    const format = cmd.format ?? "text";
    if (format !== "text" && format !== "json") {
      throw new UsageError(`unknown --format "${format}"; use text or json`);
    }
  } else if (action === "retry") {
    if (!cmd.id === !cmd.all) throw new UsageError("usage: hearth queue retry ID | --all");
  } else if (action === "delete") {
    if (!cmd.id) throw new UsageError("usage: hearth queue delete ID");
  } else {
    throw new UsageError(
      `unknown queue command "${action}"; use hearth queue [list], retry ID|--all or delete ID`,
    );
  }
  const { kv } = await openStore(config);
  try {
    const queue = await OutboundQueue.open(kv, config.dataDir, { now });
    if (action === "list") {
      const items = await listItems(queue, config.dataDir);
      print(
        cmd.format === "json"
          ? JSON.stringify(queueListEntries(items, now()), null, 2)
          : formatQueueText(items, now()),
      );
    } else if (action === "retry") {
      const ids = cmd.all ? (await listItems(queue, config.dataDir)).map((i) => i.id) : [cmd.id!];
      for (const id of ids) {
        if (!(await queue.retryNow(id))) throw unknownItem(id);
      }
      print(
        cmd.all
          ? `${ids.length} item${ids.length === 1 ? " is" : "s are"} due now.`
          : `Queue item ${cmd.id} is due now.`,
      );
    } else {
      const id = cmd.id!;
      if (!(await queue.get(id))) throw unknownItem(id);
      await queue.remove(id);
      // No DSN: the operator chose to drop it (docs/queue.md).
      print(`Deleted queue item ${id}; no bounce was sent.`);
    }
  } finally {
    kv.close();
  }
}

async function listItems(queue: OutboundQueue, dataDir: string): Promise<QueueItem[]> {
  try {
    return await queue.list();
  } catch (e) {
    if (e instanceof DOMException && e.name === "OperationError") {
      throw new Error(
        `the queue cannot be decrypted with ${dataDir}/queue.key; is it the key of this data directory?`,
      );
    }
    throw e;
  }
}
