/**
 * A small filesystem for disk-full tests: a tmpfs the test mounts on a fresh
 * directory and removes again, and a filler that takes every free byte of it.
 * Mounting needs Linux and root; {@linkcode smallFilesystemSkipReason} says
 * why a test is skipped otherwise.
 *
 * @example
 * ```ts
 * const fsys = await mountSmallFilesystem("16m");
 * try {
 *   const filler = await fillFilesystem(fsys.dir);
 *   // … every write on fsys.dir now fails with ENOSPC
 *   await Deno.remove(filler);
 * } finally {
 *   await fsys.unmount();
 * }
 * ```
 */

/** Why a tmpfs cannot be mounted here, or null when it can. */
export function smallFilesystemSkipReason(): string | null {
  if (Deno.build.os !== "linux") return "tmpfs mounts need Linux";
  if (Deno.uid() !== 0) return "mounting a tmpfs needs root (CI runs as root)";
  return null;
}

async function run(cmd: string, args: string[]) {
  const out = await new Deno.Command(cmd, {
    args,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

export interface SmallFilesystem {
  dir: string;
  /** Unmounts (lazily, should a process still hold a file) and removes the directory. */
  unmount(): Promise<void>;
}

/** Mounts a tmpfs of `size` (`mount -o size=`, e.g. "16m") on a new temporary directory. */
export async function mountSmallFilesystem(size: string): Promise<SmallFilesystem> {
  const dir = await Deno.makeTempDir({ prefix: "hearth-smallfs-" });
  try {
    await run("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir]);
  } catch (e) {
    await Deno.remove(dir).catch(() => {});
    throw e;
  }
  return {
    dir,
    async unmount() {
      await run("umount", ["-l", dir]).catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** Fills the filesystem at `dir` with one file until ENOSPC; returns its path. */
export async function fillFilesystem(dir: string): Promise<string> {
  const path = `${dir}/filler-${crypto.randomUUID()}`;
  const f = await Deno.open(path, { write: true, create: true });
  const chunk = new Uint8Array(64 * 1024);
  try {
    for (;;) {
      try {
        await f.write(chunk);
      } catch {
        break;
      }
    }
    // The last partial pages, down to single bytes.
    for (let n = 4096; n >= 1; n >>= 1) {
      try {
        while (true) await f.write(chunk.subarray(0, n));
      } catch { /* next size */ }
    }
  } finally {
    f.close();
  }
  return path;
}
