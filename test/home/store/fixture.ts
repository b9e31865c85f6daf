/** Test fixtures for the store: a temporary data directory with one account, and a KV with faults. */
import { BlobStore } from "../../../home/store/blobs.ts";
import { createAccount } from "../../../home/store/accounts.ts";
import {
  type AccountKeys,
  AccountStore,
  type AccountStoreOptions,
} from "../../../home/store/account_store.ts";
import type { AccountState } from "../../../home/store/state.ts";
import { recipientOf } from "../../../src/crypto/age.ts";
import { deriveIndexKey } from "../../../src/crypto/index_key.ts";

export const address = "owner@store.test";
export const password = "correct horse battery";

export interface Fixture {
  dir: string;
  kv: Deno.Kv;
  blobs: BlobStore;
  id: string;
  keys: AccountKeys;
  open(opts?: AccountStoreOptions, kv?: Deno.Kv): Promise<AccountStore>;
  /** Closes and reopens the KV (a process restart). */
  restart(): Promise<void>;
  cleanup(): Promise<void>;
}

export async function makeFixture(): Promise<Fixture> {
  const dir = await Deno.makeTempDir({ prefix: "hearth-store-" });
  const blobs = new BlobStore(`${dir}/blobs`);
  let kv = await Deno.openKv(`${dir}/home.kv`);
  const { id, recoveryKey } = await createAccount(kv, blobs, address, password, 10);
  const keys: AccountKeys = {
    identity: recoveryKey,
    recipient: await recipientOf(recoveryKey),
    indexKey: await deriveIndexKey(recoveryKey),
  };
  const fixture: Fixture = {
    dir,
    get kv() {
      return kv;
    },
    blobs,
    id,
    keys,
    open: (opts = {}, useKv = kv) => AccountStore.open(useKv, blobs, id, keys, opts),
    async restart() {
      kv.close();
      kv = await Deno.openKv(`${dir}/home.kv`);
    },
    async cleanup() {
      try {
        kv.close();
      } catch { /* already closed */ }
      await Deno.remove(dir, { recursive: true });
    },
  };
  return fixture;
}

/** Runs `fn` with a fresh fixture, removed afterwards. */
export async function withFixture(fn: (f: Fixture) => Promise<void>) {
  const f = await makeFixture();
  try {
    await fn(f);
  } finally {
    await f.cleanup();
  }
}

/**
 * A KV whose atomic commits fail (throw) while `faults.commit` is set; with
 * `faults.only`, only commits that write a key starting with that part fail.
 */
export function faultyKv(kv: Deno.Kv) {
  const faults: { commit: boolean; commits: number; only?: string } = { commit: false, commits: 0 };
  const proxy = new Proxy(kv, {
    get(target, prop) {
      if (prop === "atomic") {
        return () => {
          const op = target.atomic();
          const real = op.commit.bind(op);
          const realSet = op.set.bind(op);
          const written: Deno.KvKey[] = [];
          op.set = (key, value, options) => {
            written.push(key);
            return realSet(key, value, options);
          };
          op.commit = () => {
            faults.commits++;
            const hit = faults.only === undefined || written.some((k) => k[0] === faults.only);
            if (faults.commit && hit) return Promise.reject(new Error("disk I/O error"));
            return real();
          };
          return op;
        };
      }
      const v = Reflect.get(target, prop);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  return { kv: proxy, faults };
}

/** Everything observable about an account's state, for comparing before and after a reopen. */
export function summary(state: AccountState) {
  const mailboxes = [...state.mailboxes.values()].map((mb) => ({
    name: mb.name,
    rec: { ...mb.rec, nameEnc: undefined },
    uids: [...mb.uids],
    messages: mb.uids.map((uid) => ({
      ...mb.byUid.get(uid)!,
      flags: [...mb.byUid.get(uid)!.flags],
    })),
    expunged: [...mb.expunged].sort((a, b) => a[1] - b[1] || a[0] - b[0]),
  })).sort((a, b) => a.name.localeCompare(b.name));
  return { modseq: state.modseq, mailboxes, blobRefs: [...state.blobRefs].sort() };
}

/** Distinct change-log entries of an account in KV. */
export async function logEntries(kv: Deno.Kv, id: string): Promise<number[]> {
  const seen = new Set<number>();
  for await (const e of kv.list({ prefix: ["st", id, "log"] })) seen.add(e.key[3] as number);
  return [...seen].sort((a, b) => a - b);
}

export function message(subject: string, body = "Hello.\r\n"): Uint8Array {
  return new TextEncoder().encode(
    `From: Alice <alice@store.test>\r\nTo: owner@store.test\r\nSubject: ${subject}\r\n` +
      `Message-ID: <${crypto.randomUUID()}@store.test>\r\n\r\n${body}`,
  );
}
