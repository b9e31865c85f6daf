/**
 * The privacy scans' common part: every byte of every file under a data
 * directory, searched for known plaintext (each needle as written, lower-
 * and upper-cased).
 *
 * @example
 * ```ts
 * const { found } = await scanForPlaintext(dataDir, ["secret subject"]);
 * assertEquals(found, []);
 * ```
 */

export async function* filesUnder(dir: string): AsyncGenerator<string> {
  for await (const e of Deno.readDir(dir)) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) yield* filesUnder(path);
    else if (e.isFile) yield path;
  }
}

export function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  outer: for (
    let i = hay.indexOf(needle[0]);
    i >= 0 && i <= hay.length - needle.length;
    i = hay.indexOf(needle[0], i + 1)
  ) {
    for (let j = 1; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

/** Where any needle occurs under `dir` (`"needle" in /path`), and which files were read. */
export async function scanForPlaintext(
  dir: string,
  needles: string[],
): Promise<{ found: string[]; files: string[] }> {
  const variants = new Set<string>();
  for (const n of needles) for (const v of [n, n.toLowerCase(), n.toUpperCase()]) variants.add(v);
  const encoded = [...variants].map((v) => [v, new TextEncoder().encode(v)] as const);
  const found: string[] = [];
  const files: string[] = [];
  for await (const path of filesUnder(dir)) {
    files.push(path);
    const data = await Deno.readFile(path);
    for (const [text, bytes] of encoded) {
      if (contains(data, bytes)) found.push(`${JSON.stringify(text)} in ${path.slice(dir.length)}`);
    }
  }
  return { found, files };
}
