/**
 * Test helper: reads a fixture from test/fixtures/mime/.
 *
 * @example
 * ```ts
 * const raw = await fixture("simple_text.eml");
 * ```
 */
export function fixture(name: string): Promise<Uint8Array> {
  return Deno.readFile(new URL(`../../fixtures/mime/${name}`, import.meta.url));
}

/**
 * Test helper: a message from lines joined with CRLF.
 *
 * @example
 * ```ts
 * message("Subject: x", "", "body"); // "Subject: x\r\n\r\nbody" as octets
 * ```
 */
export function message(...lines: string[]): Uint8Array {
  return new TextEncoder().encode(lines.join("\r\n"));
}

/**
 * Test helper: octets as UTF-8 text, for readable assertions.
 *
 * @example
 * ```ts
 * text(new Uint8Array([0x41])); // "A"
 * ```
 */
export function text(bytes: Uint8Array | null): string | null {
  return bytes === null ? null : new TextDecoder().decode(bytes);
}
