/**
 * A test double for the store's durable steps: a {@linkcode BlobFileSystem}
 * whose file fsync or directory fsync fails, and a wrapper around the KV
 * handle whose commits fail, each while its switch is on. A failed KV commit
 * is what SQLite reports when the fsync of its write-ahead log fails
 * (SQLITE_IOERR_FSYNC): the transaction is not applied, the caller gets an
 * error. The home box takes both through `HomeOptions.storage`.
 *
 * @example
 * ```ts
 * const faults = new FsyncFaults();
 * const box = await startHome(config, {
 *   storage: { fileSystem: faults.fileSystem(), kv: (kv) => faults.wrapKv(kv) },
 * });
 * faults.fileData = true; // every blob fsync now fails with EIO
 * ```
 */
import { type BlobFileSystem, denoFileSystem } from "./blobs.ts";

/** The errors the operating system and SQLite give for a failed fsync. */
function fsyncError(what: string): Error {
  return new Error(`Input/output error (os error 5): injected failure of ${what}`);
}

/** Switches for the durable steps that fail; every failure injected is counted. */
export class FsyncFaults {
  /** fdatasync of a blob file (after its bytes were written) or of the delivery journal. */
  fileData = false;
  /** fsync of a blob directory (after a rename into it). */
  directory = false;
  /** KV commits and writes (the fsync of SQLite's WAL). */
  kvCommit = false;
  /** Failures injected so far, by step. */
  readonly injected = { fileData: 0, directory: 0, kvCommit: 0 };

  /** True when any switch is on. */
  get armed(): boolean {
    return this.fileData || this.directory || this.kvCommit;
  }

  clear() {
    this.fileData = this.directory = this.kvCommit = false;
  }

  /** A file system that fails fsyncs while their switch is on; otherwise `base`. */
  fileSystem(base: BlobFileSystem = denoFileSystem): BlobFileSystem {
    return {
      ...base,
      writeDurably: async (path, data) => {
        if (!this.fileData) return await base.writeDurably(path, data);
        // The bytes reach the page cache; the fdatasync that should make them durable fails.
        const file = await Deno.open(path, { write: true, createNew: true, mode: 0o600 });
        try {
          let off = 0;
          while (off < data.length) off += await file.write(data.subarray(off));
          this.injected.fileData++;
          throw fsyncError("fdatasync");
        } finally {
          file.close();
        }
      },
      syncFile: async (file) => {
        if (this.fileData) {
          this.injected.fileData++;
          throw fsyncError("fdatasync");
        }
        await base.syncFile(file);
      },
      syncFileNow: (file) => {
        if (this.fileData) {
          this.injected.fileData++;
          throw fsyncError("fdatasync");
        }
        base.syncFileNow(file);
      },
      syncDirectory: async (path) => {
        if (this.directory) {
          this.injected.directory++;
          throw fsyncError("a directory fsync");
        }
        await base.syncDirectory(path);
      },
    };
  }

  /** The KV handle with commits (atomic and single writes) that fail while `kvCommit` is on. */
  wrapKv(kv: Deno.Kv): Deno.Kv {
    const fail = (): Promise<never> => {
      this.injected.kvCommit++;
      return Promise.reject(
        new Error("disk I/O error: injected failure of the KV write-ahead log fsync"),
      );
    };
    const wrapOp = (op: Deno.AtomicOperation): Deno.AtomicOperation => {
      const proxy: Deno.AtomicOperation = new Proxy(op, {
        get: (target, prop) => {
          if (prop === "commit") return () => this.kvCommit ? fail() : target.commit();
          const value = Reflect.get(target, prop, target);
          if (typeof value !== "function") return value;
          // Chained builders (check, set, delete, …) return the operation: keep the wrapper.
          return (...args: unknown[]) => {
            const out = value.apply(target, args);
            return out === target ? proxy : out;
          };
        },
      });
      return proxy;
    };
    const writes = new Set<PropertyKey>(["set", "delete", "enqueue"]);
    return new Proxy(kv, {
      get: (target, prop) => {
        if (prop === "atomic") return () => wrapOp(target.atomic());
        const value = Reflect.get(target, prop, target);
        if (typeof value !== "function") return value;
        if (writes.has(prop)) {
          return (...args: unknown[]) => this.kvCommit ? fail() : value.apply(target, args);
        }
        return value.bind(target);
      },
    });
  }
}
