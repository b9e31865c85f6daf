/**
 * Limits of the MIME layer, in one place so that the parser, the section
 * fetcher and the text extractor cannot drift apart.
 *
 * @example
 * ```ts
 * import { mimeLimits } from "./mime_limits.ts";
 * if (depth >= mimeLimits.nestingDepth) treatAsOpaque();
 * ```
 */
export const mimeLimits = {
  /** Deepest multipart or message/rfc822 nesting parsed; deeper parts are opaque leaves. */
  nestingDepth: 50,
  /** Most parts in one message; later boundaries are treated as body text of the last part. */
  parts: 10_000,
  /** Most UTF-16 code units returned by searchableText() for headers and for bodies each. */
  searchableTextChars: 2 * 1024 * 1024,
} as const;
