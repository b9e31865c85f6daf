// DESIGN.md: imports point one way. `src` imports no role; `edge` imports only `src`.
import { deepStrictEqual as assertEquals } from "node:assert/strict";

const root = new URL("..", import.meta.url).pathname;

async function* tsFiles(dir: string): AsyncGenerator<string> {
  try {
    for await (const e of Deno.readDir(dir)) {
      const path = `${dir}/${e.name}`;
      if (e.isDirectory) yield* tsFiles(path);
      else if (e.name.endsWith(".ts")) yield path;
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}

/** Files of `layer` that import from any of `forbidden` (top-level directories). */
async function violations(layer: string, forbidden: string[]): Promise<string[]> {
  const out: string[] = [];
  for await (const file of tsFiles(`${root}${layer}`)) {
    const text = await Deno.readTextFile(file);
    for (const m of text.matchAll(/(?:import|export)[^"']*?from\s*["']([^"']+)["']/g)) {
      if (!m[1].startsWith(".")) continue;
      const target = new URL(m[1], `file://${file}`).pathname.slice(root.length);
      if (forbidden.some((f) => target.startsWith(`${f}/`) || target === `${f}.ts`)) {
        out.push(`${file.slice(root.length)} imports ${target}`);
      }
    }
  }
  return out;
}

Deno.test("src imports no role", async () => {
  assertEquals(await violations("src", ["home", "edge", "sync", "main"]), []);
});

Deno.test("edge imports only src", async () => {
  assertEquals(await violations("edge", ["home", "sync", "main"]), []);
});
