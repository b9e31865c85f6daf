/**
 * Sequence sets (RFC 9051 §9 `sequence-set`): parsing, resolving against the
 * largest number in use, membership without expanding huge ranges, and
 * compact formatting for COPYUID, VANISHED and ESEARCH.
 *
 * @example
 * ```ts
 * const set = parseSequenceSet("1:3,7:*");
 * resolveSequenceSet(set, 9); // [[1, 3], [7, 9]]
 * formatSequenceSet([1, 2, 3, 4, 5, 7]); // "1:5,7"
 * ```
 * @module
 */

import { ProtocolError } from "../../src/errors.ts";
import type { SeqRange, SequenceSet } from "./ast.ts";

/** A closed interval `[from, to]` with `from <= to`. */
export type Interval = [number, number];

/** Largest sequence number or UID (RFC 9051 §9 `nz-number` is 32-bit). */
export const MAX_SEQ_NUMBER = 0xffffffff;

function badSet(text: string, why: string): ProtocolError {
  return new ProtocolError("BAD", `Invalid sequence set ${JSON.stringify(text)}: ${why}`);
}

function parseSeqNumber(text: string, part: string): number | "*" {
  if (part === "*") return "*";
  // RFC 9051 §9: nz-number = digit-nz *DIGIT, at most 4294967295.
  if (!/^[1-9][0-9]{0,9}$/.test(part)) {
    throw badSet(
      text,
      part === "" ? "empty number" : `${JSON.stringify(part)} is not a number > 0`,
    );
  }
  const n = Number(part);
  if (n > MAX_SEQ_NUMBER) throw badSet(text, `${part} is larger than 4294967295`);
  return n;
}

/**
 * Parse a sequence set such as `1:4,7,9:*`, or `$` (RFC 5182).
 *
 * @throws {ProtocolError} status `BAD` when the text is not a sequence set.
 */
export function parseSequenceSet(text: string): SequenceSet {
  if (text === "$") return { saved: true };
  if (text === "") throw badSet(text, "it is empty");
  const ranges: SeqRange[] = [];
  for (const item of text.split(",")) {
    const colon = item.indexOf(":");
    if (colon < 0) {
      ranges.push({ from: parseSeqNumber(text, item) });
    } else {
      const from = parseSeqNumber(text, item.slice(0, colon));
      const to = parseSeqNumber(text, item.slice(colon + 1));
      ranges.push({ from, to });
    }
  }
  return { ranges };
}

/**
 * Resolve a sequence set against `max`, the largest number in use (the
 * message count, or the highest UID): `*` becomes `max`, reversed ranges
 * such as `5:2` are turned round (RFC 9051 §9), numbers outside `1..max` are
 * dropped, and the result is sorted and merged. `$` must be replaced by the
 * caller first.
 *
 * @example
 * ```ts
 * resolveSequenceSet(parseSequenceSet("5:2,4,9:*"), 7); // [[2, 5], [7, 7]]
 * ```
 */
export function resolveSequenceSet(set: SequenceSet, max: number): Interval[] {
  if ("saved" in set) throw new TypeError("resolve '$' to the saved search result first");
  const raw: Interval[] = [];
  for (const r of set.ranges) {
    const a = r.from === "*" ? max : r.from;
    const b = r.to === undefined ? a : r.to === "*" ? max : r.to;
    let lo = Math.min(a, b);
    const hi = Math.min(Math.max(a, b), max);
    if (lo < 1) lo = 1;
    if (lo <= hi) raw.push([lo, hi]);
  }
  return mergeIntervals(raw);
}

/** Sort and merge overlapping or adjacent intervals. */
export function mergeIntervals(intervals: Interval[]): Interval[] {
  const sorted = intervals.slice().sort((x, y) => x[0] - y[0]);
  const out: Interval[] = [];
  for (const [lo, hi] of sorted) {
    const last = out[out.length - 1];
    if (last && lo <= last[1] + 1) {
      if (hi > last[1]) last[1] = hi;
    } else {
      out.push([lo, hi]);
    }
  }
  return out;
}

/**
 * Every number of the set in `1..max`, ascending, without duplicates. The
 * result has at most `max` entries whatever the client sent.
 */
export function expandSequenceSet(set: SequenceSet, max: number): number[] {
  const out: number[] = [];
  for (const [lo, hi] of resolveSequenceSet(set, max)) {
    for (let n = lo; n <= hi; n++) out.push(n);
  }
  return out;
}

/**
 * Whether `n` lies in resolved intervals (from {@linkcode resolveSequenceSet}),
 * by binary search: suited to sparse UIDs against a set like `1:4294967295`.
 */
export function intervalsContain(intervals: readonly Interval[], n: number): boolean {
  let lo = 0;
  let hi = intervals.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const [a, b] = intervals[mid];
    if (n < a) hi = mid - 1;
    else if (n > b) lo = mid + 1;
    else return true;
  }
  return false;
}

/**
 * Whether `n` is in `set` when `max` is the largest number in use.
 *
 * @example
 * ```ts
 * sequenceSetContains(parseSequenceSet("1:*"), 4_000_000_000, 4_000_000_000); // true
 * ```
 */
export function sequenceSetContains(set: SequenceSet, n: number, max: number): boolean {
  return intervalsContain(resolveSequenceSet(set, max), n);
}

/**
 * Format numbers compactly as a sequence set, `[1, 2, 3, 5]` as `"1:3,5"`.
 * The order is kept (COPYUID pairs source and destination UIDs by
 * position): only ascending runs are joined. Sort first for the shortest text.
 */
export function formatSequenceSet(numbers: Iterable<number>): string {
  const parts: string[] = [];
  let start = -1;
  let prev = -1;
  for (const n of numbers) {
    if (start >= 0 && n === prev + 1) {
      prev = n;
      continue;
    }
    if (start >= 0) parts.push(start === prev ? `${start}` : `${start}:${prev}`);
    start = prev = n;
  }
  if (start >= 0) parts.push(start === prev ? `${start}` : `${start}:${prev}`);
  return parts.join(",");
}

/** Format intervals as a sequence set, `[[1, 3], [5, 5]]` as `"1:3,5"`. */
export function formatIntervals(intervals: readonly Interval[]): string {
  return intervals.map(([a, b]) => (a === b ? `${a}` : `${a}:${b}`)).join(",");
}
