/**
 * One home box per data directory: an exclusive lock on `DATA/hearth.lock`.
 *
 * The lock is an OS advisory file lock (`flock(2)` on Unix, `LockFileEx` on
 * Windows) taken with {@linkcode Deno.FsFile.tryLock}, which never blocks.
 * The kernel drops it when the holder's file is closed or the process dies
 * in any way (SIGKILL, power loss, OOM), so a stale lock cannot block a
 * restart; a pid file checked with `kill -0` would, once the pid is reused.
 * The holder's pid is written into the file only to name it in the error.
 * The file is never deleted: unlinking a lock file lets a third process lock
 * a new file while a second still holds the old one.
 *
 * @example
 * ```ts
 * const lock = await lockDataDir("hearth-data"); // throws DataDirLockedError if taken
 * try {
 *   // … serve
 * } finally {
 *   lock.release();
 * }
 * ```
 */
import { UsageError } from "../src/errors.ts";

/** The lock of a data directory, held until {@linkcode DataDirLock.release}. */
export interface DataDirLock {
  readonly path: string;
  /** Releases the lock; calling it again does nothing. */
  release(): void;
}

/** Another process holds the data directory's lock. */
export class DataDirLockedError extends Error {
  readonly dataDir: string;
  /** The holder's pid as it wrote it, or null when it could not be read. */
  readonly pid: number | null;

  constructor(dataDir: string, pid: number | null) {
    super(
      `another Hearth is already running on ${dataDir}${
        pid === null ? "" : ` (pid ${pid})`
      }; stop it first`,
    );
    this.name = "DataDirLockedError";
    this.dataDir = dataDir;
    this.pid = pid;
  }
}

/** The holder writes its pid just after locking: a loser may look in between, so it retries. */
async function readHolderPid(path: string): Promise<number | null> {
  for (let i = 0; i < 10; i++) {
    try {
      const text = (await Deno.readTextFile(path)).trim();
      if (/^\d+$/.test(text)) return Number(text);
    } catch { /* unreadable: only the message loses its pid */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  return null;
}

/**
 * Takes the exclusive lock of `dataDir` at once, or throws
 * {@linkcode DataDirLockedError} naming the pid of the process holding it.
 */
export async function lockDataDir(dataDir: string): Promise<DataDirLock> {
  const path = `${dataDir}/hearth.lock`;
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true, write: true, create: true, mode: 0o600 });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new UsageError(
        `${dataDir} is not a Hearth data directory; run "hearth init" first (or pass --data)`,
      );
    }
    throw e;
  }
  let locked: boolean;
  try {
    locked = await file.tryLock(true);
  } catch (e) {
    file.close();
    throw e;
  }
  if (!locked) {
    file.close();
    throw new DataDirLockedError(dataDir, await readHolderPid(path));
  }
  try {
    await file.truncate(0);
    await file.write(new TextEncoder().encode(`${Deno.pid}\n`));
  } catch (e) {
    file.close();
    throw e;
  }
  let released = false;
  return {
    path,
    release() {
      if (released) return;
      released = true;
      // Closing the only descriptor drops the flock.
      file.close();
    },
  };
}
