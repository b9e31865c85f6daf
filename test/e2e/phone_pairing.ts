/**
 * Pairs a phone with a running box's account as its owner would: `hearth
 * phone pair ADDRESS --password-stdin` (the CLI) beside the box, then
 * `Phone.join` with the code it prints.
 */
import { ok as assert } from "node:assert/strict";
import {
  MemoryStorage,
  Phone,
  type PhoneOptions,
  type PhoneStorage,
} from "../../sync/phone/client.ts";

const repoRoot = new URL("../../", import.meta.url).pathname;

export async function pairPhone(
  box: { address: string; password: string; dataDir: string },
  opts: {
    storage?: PhoneStorage;
    /** More arguments for `hearth phone pair` (`--lan-url URL`). */
    pairArgs?: string[];
    join?: PhoneOptions & { waitMs?: number };
  } = {},
): Promise<Phone> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      "main.ts",
      "phone",
      "pair",
      box.address,
      "--password-stdin",
      ...opts.pairArgs ?? [],
    ],
    cwd: repoRoot,
    env: { NO_COLOR: "1", HEARTH_DATA: box.dataDir },
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
    signal: AbortSignal.timeout(60_000),
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(box.password + "\n"));
  await w.close();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!/hearth phone join (\S+)/.test(out)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`hearth phone pair ended: ${out}`);
    out += value;
  }
  const code = out.match(/hearth phone join (\S+)/)![1];
  const phone = await Phone.join(code, opts.storage ?? new MemoryStorage(), {
    waitMs: 30_000,
    ...opts.join,
  });
  while (!(await reader.read()).done) { /* drain */ }
  assert((await child.status).success, `hearth phone pair failed: ${out}`);
  return phone;
}
