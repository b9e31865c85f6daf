import type { MimePart } from "./parse.ts";

/**
 * Finds the part an IMAP part number names (RFC 9051 §6.4.5): children of a
 * multipart are numbered from 1; a message/rfc822 part's subparts are those
 * of its embedded message; a message that is not multipart has only part 1,
 * its body. `[]` is the message itself. Returns null when there is no such part.
 *
 * @example
 * ```ts
 * const root = parseMime(raw);
 * resolvePart(root, [2, 1]); // first part of the message attached as part 2
 * ```
 */
export function resolvePart(root: MimePart, path: number[]): MimePart | null {
  let node = root;
  for (let i = 0; i < path.length; i++) {
    const n = path[i];
    if (!Number.isInteger(n) || n < 1) return null;
    // The top level behaves as the embedded message of an implicit message/rfc822 part.
    let container: MimePart | null = node;
    if (i > 0) {
      if (node.kind === "message") container = node.children[0] ?? null;
      else if (node.kind !== "multipart") return null;
    }
    if (!container) return null;
    if (container.kind === "multipart") {
      const child = container.children[n - 1];
      if (!child) return null;
      node = child;
    } else if (n === 1) {
      node = container;
    } else return null;
  }
  return node;
}
