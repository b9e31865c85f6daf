/**
 * SORT (RFC 5256 §3) and the DISPLAYFROM/DISPLAYTO criteria (RFC 5957) over
 * an in-memory view of a mailbox. Strings compare with i;ascii-casemap (only
 * a-z fold to A-Z; then Unicode code point order, which is UTF-8 octet order).
 *
 * @module
 */

import type { SortKey } from "./ast.ts";
import type { AddressInfo, MessageInfo } from "../../src/mime/message_info.ts";
import { loadMessageInfos, type SearchableMessage } from "./search.ts";

/**
 * Returns the messages in the order given by `keys`; messages equal on every
 * key keep mailbox order (RFC 5256 §3: ties go by sequence number).
 *
 * @example
 * ```ts
 * const sorted = await sortMessages([{ key: "DATE", reverse: true }], hits);
 * ```
 */
export async function sortMessages(
  keys: SortKey[],
  messages: readonly SearchableMessage[],
): Promise<SearchableMessage[]> {
  const needsInfo = keys.some((k) => k.key !== "ARRIVAL" && k.key !== "SIZE");
  const infos = needsInfo ? await loadMessageInfos(messages) : [];
  const columns = keys.map((k) => ({
    reverse: k.reverse,
    values: messages.map((m, i) => sortValue(k.key, m, infos[i])),
  }));
  const order = messages.map((_, i) => i);
  order.sort((a, b) => {
    for (const { reverse, values } of columns) {
      const va = values[a], vb = values[b];
      const c = typeof va === "number"
        ? (va as number) - (vb as number)
        : compareCodePoints(va as string, vb as string);
      if (c !== 0) return reverse ? -c : c;
    }
    return messages[a].seq - messages[b].seq;
  });
  return order.map((i) => messages[i]);
}

function sortValue(
  key: SortKey["key"],
  m: SearchableMessage,
  info: MessageInfo | undefined,
): number | string {
  const h = info?.headers;
  switch (key) {
    case "ARRIVAL":
      return m.internalDate;
    case "SIZE":
      return m.size;
    case "DATE":
      // RFC 5256 §3: an absent or unparseable Date: sorts by the internal date.
      return h!.date ?? m.internalDate;
    case "SUBJECT":
      return asciiCasemap(h!.baseSubject);
    case "FROM":
      return asciiCasemap(h!.from?.mailbox ?? "");
    case "TO":
      return asciiCasemap(h!.to?.mailbox ?? "");
    case "CC":
      return asciiCasemap(h!.cc?.mailbox ?? "");
    case "DISPLAYFROM":
      return asciiCasemap(displayName(h!.from));
    case "DISPLAYTO":
      return asciiCasemap(displayName(h!.to));
  }
}

/** RFC 5957 §2: the display name, or the address when it has none (or an empty one). */
function displayName(address: AddressInfo | null): string {
  if (!address) return "";
  const name = address.name?.trim();
  if (name) return name;
  if (address.mailbox && address.host) return `${address.mailbox}@${address.host}`;
  return address.mailbox ?? "";
}

/** i;ascii-casemap (RFC 4790 §9.2): fold only US-ASCII letters. */
export function asciiCasemap(text: string): string {
  return text.replace(/[a-z]+/g, (s) => s.toUpperCase());
}

/** Compares by Unicode code point (UTF-16 code unit order puts U+E000..U+FFFF after astral). */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i), y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800) x += x >= 0xe000 ? -0x800 : 0x2000;
    if (y >= 0xd800) y += y >= 0xe000 ? -0x800 : 0x2000;
    return x - y;
  }
  return a.length - b.length;
}
