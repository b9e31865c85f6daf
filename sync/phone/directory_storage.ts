/**
 * A phone's state in files of one directory, for `hearth phone` in Deno (a
 * browser build uses IndexedDB behind the same interface). Each value is
 * written to a temporary file and renamed, so a crash leaves the old value
 * or the new one.
 *
 * @example
 * ```ts
 * const phone = await Phone.open(new DirectoryStorage("phone-data"));
 * ```
 */
import type { PhoneStorage } from "./client.ts";

export class DirectoryStorage implements PhoneStorage {
  readonly #dir: string;
  constructor(dir: string) {
    this.#dir = dir;
  }
  async get(key: string): Promise<Uint8Array | null> {
    try {
      return await Deno.readFile(`${this.#dir}/${key}`);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      throw e;
    }
  }
  async set(key: string, value: Uint8Array): Promise<void> {
    await Deno.mkdir(this.#dir, { recursive: true, mode: 0o700 });
    const tmp = `${this.#dir}/.${key}.tmp`;
    await Deno.writeFile(tmp, value, { mode: 0o600 });
    await Deno.rename(tmp, `${this.#dir}/${key}`);
  }
}
