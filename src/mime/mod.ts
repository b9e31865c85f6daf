/**
 * The MIME layer's public surface: analysis at arrival, sections and binary
 * parts for FETCH, decoded text for SEARCH.
 *
 * @example
 * ```ts
 * import { analyzeMessage, fetchSection } from "./mod.ts";
 * ```
 */
export { analyzeMessage } from "./analyze.ts";
export { searchableText } from "./searchable_text.ts";
export { fetchSection } from "./fetch_section.ts";
export { binarySize, fetchBinary } from "./fetch_binary.ts";
export type { MessageInfo } from "./message_info.ts";
export type { Section } from "./section.ts";
export type { ImapValue } from "./imap_value.ts";
