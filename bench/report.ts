/** What the benchmarks print besides their tables: progress lines and usage. */

/** A progress line on stderr, so the tables on stdout stay clean. */
export function log(message: string): void {
  console.error(`bench: ${message}`);
}

/** Prints the usage text and exits: 2 with the problem on stderr, else 0. */
export function exitWithUsage(text: string, problem?: string): never {
  if (problem) {
    console.error(`bench: ${problem}\n${text}`);
    Deno.exit(2);
  }
  console.log(text);
  Deno.exit(0);
}
