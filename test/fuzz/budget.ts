/**
 * The run budget of the property-based fuzz tests (test/fuzz/*_fuzz_test.ts).
 *
 * `deno task test` runs each property with a small default number of cases, so
 * that all fuzz tests together stay well under 30 s on a slow machine;
 * `deno task fuzz` sets `HEARTH_FUZZ_RUNS` for a long run. Costly targets (a
 * live SMTP listener, age sealing) scale the budget down with `weight`.
 * `HEARTH_FUZZ_SEED` replays a run that fast-check reported as failing. The
 * bounded runs use a fixed seed ({@linkcode boundedSeed}); long runs draw new ones.
 *
 * @example
 * ```ts
 * fc.assert(fc.property(fc.string(), check), fuzzParams(200));
 * ```
 */
import fc from "fast-check";

const envRuns = Number(Deno.env.get("HEARTH_FUZZ_RUNS") ?? "");
const envSeed = Deno.env.get("HEARTH_FUZZ_SEED");

/** True for a long run (`deno task fuzz`): tests may print a summary. */
export const longRun = Number.isFinite(envRuns) && envRuns > 0;

/**
 * Number of cases for one property: `defaultRuns` by default; with
 * `HEARTH_FUZZ_RUNS=n`, `n * weight` (at least `defaultRuns`).
 */
export function fuzzRuns(defaultRuns: number, weight = 1): number {
  if (!longRun) return defaultRuns;
  return Math.max(defaultRuns, Math.round(envRuns * weight));
}

/**
 * The seed of the bounded runs in `deno task test`: fixed, so that CI sees the same cases every
 * time (a failure there is reproducible, never a coin toss). `deno task fuzz` draws new seeds.
 */
export const boundedSeed = 20261130;

/** fast-check parameters for one property: its run count, and the seed if one is replayed. */
export function fuzzParams<T>(defaultRuns: number, weight = 1): fc.Parameters<T> {
  const params: fc.Parameters<T> = { numRuns: fuzzRuns(defaultRuns, weight) };
  if (envSeed !== undefined && envSeed !== "") params.seed = Number(envSeed);
  else if (!longRun) params.seed = boundedSeed;
  return params;
}

/** Longest time one fuzz case may take before it counts as a hang. */
export const caseTimeLimitMs = 2_000;

/**
 * Runs `fn` and fails when it takes longer than `limitMs`: synchronous code
 * cannot be interrupted, so a hang shows as a case that is far too slow.
 */
export function withinTime<T>(what: string, fn: () => T, limitMs = caseTimeLimitMs): T {
  const start = performance.now();
  const out = fn();
  const took = performance.now() - start;
  if (took > limitMs) throw new Error(`${what} took ${Math.round(took)} ms (limit ${limitMs} ms)`);
  return out;
}

/** Bytes as a printable string for failure messages and fixtures (\xNN for non-ASCII). */
export function showBytes(bytes: Uint8Array, max = 400): string {
  let s = "";
  for (const b of bytes.subarray(0, max)) {
    if (b === 0x5c) s += "\\\\";
    else if (b >= 0x20 && b < 0x7f) s += String.fromCharCode(b);
    else if (b === 0x0d) s += "\\r";
    else if (b === 0x0a) s += "\\n";
    else s += `\\x${b.toString(16).padStart(2, "0")}`;
  }
  return bytes.length > max ? `${s}… (${bytes.length} bytes)` : s;
}

/** The inverse of {@linkcode showBytes}: decodes `\r`, `\n`, `\\` and `\xNN`. */
export function unshowBytes(text: string): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c !== "\\") {
      out.push(...new TextEncoder().encode(c));
      continue;
    }
    const n = text[++i];
    if (n === "r") out.push(0x0d);
    else if (n === "n") out.push(0x0a);
    else if (n === "\\") out.push(0x5c);
    else if (n === "x") {
      out.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else throw new RangeError(`unknown escape \\${n}`);
  }
  return Uint8Array.from(out);
}
