/**
 * Structured logging: one line per event on stderr, `level event key=value…`.
 * Never log message content, addresses or folder names (the trust model keeps
 * them off disk, and logs are on disk).
 *
 * @example
 * ```ts
 * log.info("imap.listen", { port: 2143 });
 * ```
 */
export type Level = "debug" | "info" | "warn" | "error";
const order: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };
let threshold: Level = (Deno.env.get("HEARTH_LOG") as Level | undefined) ?? "info";
if (!(threshold in order)) threshold = "info";

function emit(level: Level, event: string, fields?: Record<string, unknown>) {
  if (order[level] < order[threshold]) return;
  let line = `${new Date().toISOString()} ${level} ${event}`;
  for (const [k, v] of Object.entries(fields ?? {})) {
    const text = v instanceof Error ? v.message : typeof v === "string" ? v : JSON.stringify(v);
    line += ` ${k}=${/\s/.test(text ?? "") ? JSON.stringify(text) : text}`;
  }
  console.error(line);
}

export const log = {
  setLevel(level: Level) {
    threshold = level;
  },
  debug: (event: string, fields?: Record<string, unknown>) => emit("debug", event, fields),
  info: (event: string, fields?: Record<string, unknown>) => emit("info", event, fields),
  warn: (event: string, fields?: Record<string, unknown>) => emit("warn", event, fields),
  error: (event: string, fields?: Record<string, unknown>) => emit("error", event, fields),
};
