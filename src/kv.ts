/**
 * Deno KV helpers shared by the roles.
 *
 * @example
 * ```ts
 * const res = await commitRetrying(() => kv.atomic().check(entry).set(key, value));
 * ```
 */

/**
 * Commits an atomic operation built by `build`, again when SQLite answers "database is
 * locked". With several processes on one local KV file (several edges, or `hearth queue`
 * beside a running box), a commit with checks fails that way whenever another process wrote
 * between its check and its write (Deno 2.9's KV does not retry it itself;
 * test/e2e/edge_fault_test.ts). Nothing was written then, so a retry is safe.
 */
export async function commitRetrying(
  build: () => Deno.AtomicOperation,
): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
  for (let attempt = 1;; attempt++) {
    try {
      return await build().commit();
    } catch (e) {
      if (attempt >= 100 || !/database is locked/.test((e as Error)?.message)) throw e;
      await new Promise((r) => setTimeout(r, 2 + Math.random() * 10));
    }
  }
}
