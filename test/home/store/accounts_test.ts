import {
  deepStrictEqual as assertEquals,
  ok as assert,
  rejects as assertRejects,
} from "node:assert/strict";
import {
  AccountRegistry,
  createAccount,
  identityFor,
  setPassword,
} from "../../../home/store/accounts.ts";
import { AccountStore } from "../../../home/store/account_store.ts";
import { limits } from "../../../src/limits.ts";
import { UsageError } from "../../../src/errors.ts";
import { address, password, withFixture } from "./fixture.ts";

function storeOf(r: { store: AccountStore } | { failure: string }): AccountStore {
  if (!("store" in r)) throw new Error(`login failed: ${r.failure}`);
  return r.store;
}

Deno.test("createAccount() refuses duplicates, bad addresses and short passwords", () =>
  withFixture(async (f) => {
    await assertRejects(
      () => createAccount(f.kv, f.blobs, address.toUpperCase(), password, 10),
      (e: Error) => e instanceof UsageError && /already exists/.test(e.message),
    );
    await assertRejects(
      () => createAccount(f.kv, f.blobs, "not an address", password, 10),
      UsageError,
    );
    await assertRejects(
      () => createAccount(f.kv, f.blobs, "x@store.test", "short", 10),
      UsageError,
    );
  }));

Deno.test("the address is stored only hashed and encrypted", () =>
  withFixture(async (f) => {
    for await (const e of f.kv.list({ prefix: [] })) {
      const text = JSON.stringify(e.key) + new TextDecoder().decode(
        e.value instanceof Uint8Array ? e.value : new TextEncoder().encode(JSON.stringify(e.value)),
      );
      assert(!text.toLowerCase().includes("owner@"), `address visible in ${JSON.stringify(e.key)}`);
    }
  }));

Deno.test("identityFor() and setPassword(): the recovery key resets a lost password", () =>
  withFixture(async (f) => {
    assertEquals(await identityFor(f.kv, address, password), f.keys.identity);
    assertEquals(await identityFor(f.kv, address, f.keys.identity), f.keys.identity);
    assertEquals(await identityFor(f.kv, address, "wrong password"), null);
    assertEquals(await identityFor(f.kv, "nobody@store.test", password), null);
    assertEquals(await identityFor(f.kv, address, "AGE-SECRET-KEY-1BOGUS"), null);
    await setPassword(f.kv, address, f.keys.identity, "a brand new password", 10);
    assertEquals(await identityFor(f.kv, address, password), null);
    assertEquals(await identityFor(f.kv, address, "a brand new password"), f.keys.identity);
  }));

Deno.test("AccountRegistry.login() counts wrong passwords and throttles per account", () =>
  withFixture(async (f) => {
    const registry = new AccountRegistry(f.kv, f.blobs);
    try {
      for (let i = 0; i < limits.authFailuresPerWindow; i++) {
        // A new client address each time: the per-account limit is what trips.
        assertEquals(await registry.login(address, `wrong ${i}`, `10.0.0.${i}`), {
          failure: "invalid",
        });
      }
      assertEquals(await registry.login(address, password, "10.0.1.1"), { failure: "throttled" });
      // Unknown addresses count too, but against their own key and the client address.
      assertEquals(await registry.login("nobody@store.test", password, "10.0.2.1"), {
        failure: "invalid",
      });
    } finally {
      await registry.close();
    }
  }));

Deno.test("AccountRegistry.login() throttles a client address that guesses across accounts", () =>
  withFixture(async (f) => {
    const registry = new AccountRegistry(f.kv, f.blobs);
    try {
      for (let i = 0; i < limits.authFailuresPerWindow; i++) {
        assertEquals(await registry.login(`user${i}@store.test`, "guess", "192.0.2.7"), {
          failure: "invalid",
        });
      }
      assertEquals(await registry.login(address, password, "192.0.2.7"), { failure: "throttled" });
      storeOf(await registry.login(address, password, "192.0.2.8"));
    } finally {
      await registry.close();
    }
  }));

Deno.test("AccountRegistry.login() shares one unlock between concurrent logins", () =>
  withFixture(async (f) => {
    const registry = new AccountRegistry(f.kv, f.blobs);
    try {
      const results = await Promise.all(
        Array.from({ length: 5 }, () => registry.login(address, password, "127.0.0.1")),
      );
      const stores = results.map(storeOf);
      assert(stores.every((s) => s === stores[0]));
      assert(registry.unlocked(f.id) === stores[0]);
      // While unlocked, a wrong password is still refused.
      assertEquals(await registry.login(address, "not it at all", "127.0.0.1"), {
        failure: "invalid",
      });
    } finally {
      await registry.close();
    }
  }));

Deno.test("AccountRegistry.login() with the right password succeeds beside a concurrent wrong one", () =>
  withFixture(async (f) => {
    const registry = new AccountRegistry(f.kv, f.blobs);
    try {
      const [bad, good] = await Promise.all([
        registry.login(address, "a wrong password", "127.0.0.1"),
        registry.login(address, password, "127.0.0.1"),
      ]);
      assertEquals(bad, { failure: "invalid" });
      storeOf(good);
    } finally {
      await registry.close();
    }
  }));

Deno.test("AccountRegistry locks an account after its idle time, not before", () =>
  withFixture(async (f) => {
    const registry = new AccountRegistry(f.kv, f.blobs, { idleMs: 60 });
    try {
      const a = storeOf(await registry.login(address, password, "127.0.0.1"));
      const b = storeOf(await registry.login(address, password, "127.0.0.1"));
      registry.release(a);
      await new Promise((r) => setTimeout(r, 120));
      assert(registry.unlocked(f.id) === a, "a session still holds it");
      registry.release(b);
      // A login within the idle time reuses the unlocked store.
      const c = storeOf(await registry.login(address, password, "127.0.0.1"));
      assert(c === a);
      registry.release(c);
      await new Promise((r) => setTimeout(r, 150));
      assertEquals(registry.unlocked(f.id), undefined);
      await assertRejects(() => a.mutate(() => {}), /closed/);
      // Logging in again opens a fresh store with the same state.
      const d = storeOf(await registry.login(address, password, "127.0.0.1"));
      assert(d !== a);
      assertEquals(d.state.mailboxes.size, a.state.mailboxes.size);
    } finally {
      await registry.close();
    }
  }));

Deno.test("AccountRegistry.login() refuses the old password at once after a password change", () =>
  withFixture(async (f) => {
    const registry = new AccountRegistry(f.kv, f.blobs);
    try {
      const store = storeOf(await registry.login(address, password, "127.0.0.1"));
      // What `hearth user passwd` does from another process while the box runs.
      await setPassword(f.kv, address, f.keys.identity, "the new password", 10);
      assertEquals(await registry.login(address, password, "127.0.0.1"), { failure: "invalid" });
      // The new password opens the same unlocked store.
      assert(storeOf(await registry.login(address, "the new password", "127.0.0.1")) === store);
    } finally {
      await registry.close();
    }
  }));
