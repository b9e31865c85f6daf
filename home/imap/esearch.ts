/**
 * The ESEARCH result syntax (RFC 4731 §3.1, RFC 5267 §3.2 for ESORT) and what
 * SEARCHRES saves (RFC 5182).
 *
 * @module
 */

import type { SearchReturn } from "./ast.ts";

/**
 * Formats an ESEARCH result (RFC 4731 §3.1): the text after
 * `* ESEARCH (TAG "x") [UID] `. `numbers` are in mailbox order unless
 * `sorted` is set (ESORT, RFC 5267 §3.2: MIN and MAX are then the first and
 * last in sort order, and ALL keeps that order). An empty return list means
 * ALL. Returns null when only SAVE was asked for: RFC 5182 §2.4 sends no
 * ESEARCH then.
 *
 * @example
 * ```ts
 * formatEsearch([1, 2, 3, 7], ["MIN", "COUNT", "ALL"]); // "MIN 1 ALL 1:3,7 COUNT 4"
 * ```
 */
export function formatEsearch(
  numbers: readonly number[],
  options: readonly SearchReturn[],
  extra: { sorted?: boolean; modseq?: bigint } = {},
): string | null {
  const asked = new Set<SearchReturn>(options.length === 0 ? ["ALL"] : options);
  asked.delete("SAVE");
  if (asked.size === 0) return null;
  const list = extra.sorted ? numbers : [...numbers].sort((a, b) => a - b);
  const parts: string[] = [];
  if (list.length > 0) {
    if (asked.has("MIN")) parts.push(`MIN ${list[0]}`);
    if (asked.has("MAX")) parts.push(`MAX ${list[list.length - 1]}`);
    if (asked.has("ALL")) parts.push(`ALL ${formatSequenceSet(list, !extra.sorted)}`);
  }
  if (asked.has("COUNT")) parts.push(`COUNT ${list.length}`);
  // RFC 7162 §3.1.5: the highest mod-sequence of the found messages.
  if (extra.modseq !== undefined && list.length > 0) parts.push(`MODSEQ ${extra.modseq}`);
  return parts.join(" ");
}

/**
 * The numbers RFC 5182 §2.1 saves as `$`: just MIN and/or MAX when only those
 * were asked for alongside SAVE, every match otherwise.
 */
export function numbersToSave(
  numbers: readonly number[],
  options: readonly SearchReturn[],
): number[] {
  const minMaxOnly = options.every((o) => o === "SAVE" || o === "MIN" || o === "MAX") &&
    options.some((o) => o === "MIN" || o === "MAX");
  if (!minMaxOnly || numbers.length === 0) return [...numbers];
  const sorted = [...numbers].sort((a, b) => a - b);
  const out = new Set<number>();
  if (options.includes("MIN")) out.add(sorted[0]);
  if (options.includes("MAX")) out.add(sorted[sorted.length - 1]);
  return [...out];
}

/**
 * A compact sequence set such as `1:5,7`. With `sortFirst`, numbers are
 * sorted and deduplicated; otherwise runs are taken in the order given.
 */
export function formatSequenceSet(numbers: readonly number[], sortFirst = true): string {
  const list = sortFirst ? [...new Set(numbers)].sort((a, b) => a - b) : numbers;
  const out: string[] = [];
  let i = 0;
  while (i < list.length) {
    let j = i;
    while (j + 1 < list.length && list[j + 1] === list[j] + 1) j++;
    out.push(j === i ? `${list[i]}` : `${list[i]}:${list[j]}`);
    i = j + 1;
  }
  return out.join(",");
}
