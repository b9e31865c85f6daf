/**
 * What a home box and a phone say to each other inside sync envelopes
 * (sync/envelope.ts), after reassembly (sync/parts.ts). One message is a
 * kind byte followed by its body:
 *
 * - `1` sync: a frame of the account document's sync (sync/peer.ts);
 * - `2` welcome (home → new phone, JSON): the account, its identity and the home's keys;
 * - `3` unlock (phone → home, JSON): the account identity, for a home box that was restarted
 *   and has not been unlocked since (docs/sync.md);
 * - `4` state (home → phone, JSON): "locked" when the home cannot open the document yet;
 * - `5` summaries (home → phone): a batch of message summaries (sync/summary.ts);
 * - `6` request (phone → home, JSON): the sealed blobs and the summaries it wants;
 * - `7` blob (home → phone): `u8 n | n-byte blob id | the age file as stored` (empty: gone);
 * - `8` append (phone → home): a copy of mail the phone sent, for the Sent folder:
 *   `u16 n | n-byte JSON {mailbox use, flags, date} | the age file, sealed to the account`;
 * - `9` lan (JSON `{nonce, date}`): opens an exchange on the home box's LAN port (phone → home),
 *   and the home's answer echoes it (sync/lan.ts).
 *
 * @example
 * ```ts
 * const bytes = encodeMessage({ kind: "sync", frame });
 * const msg = decodeMessage(bytes); // throws RangeError on anything malformed
 * ```
 */

/** What a new phone receives when pairing completes. */
export interface Welcome {
  /** The home box's id for the account (opaque). */
  account: string;
  address: string;
  /** The account's age identity (`AGE-SECRET-KEY-1…`): the phone opens sealed mail with it. */
  identity: string;
  /** The home box's envelope recipient (`age1…`) and Ed25519 key, for envelopes to it. */
  homeRecipient: string;
  homeKey: string;
  homeId: string;
  /** The home box's LAN URLs (its HTTP port), when its owner gave them at pairing. */
  lan?: string[];
}

export type SyncMessage =
  | { kind: "sync"; frame: Uint8Array }
  | { kind: "welcome"; welcome: Welcome }
  | { kind: "unlock"; account: string; identity: string }
  | { kind: "state"; state: "locked" | "unknown-device" }
  | { kind: "summaries"; batch: Uint8Array }
  | { kind: "request"; blobs: string[]; summaries: string[] }
  | { kind: "blob"; blob: string; sealed: Uint8Array }
  | { kind: "append"; use: string; flags: string[]; date: number; sealed: Uint8Array }
  | { kind: "lan"; nonce: string; date: number };

const kinds = {
  sync: 1,
  welcome: 2,
  unlock: 3,
  state: 4,
  summaries: 5,
  request: 6,
  blob: 7,
  append: 8,
  lan: 9,
} as const;

/** Blob ids and summaries one request may ask for. */
export const maxRequested = 1000;

const text = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

/** `u8|u16 length | head | rest`. */
function headed(head: Uint8Array, rest: Uint8Array, wide: boolean): Uint8Array {
  const n = wide ? 2 : 1;
  if (head.length >= 2 ** (8 * n)) throw new RangeError("sync message head is too long");
  const out = new Uint8Array(n + head.length + rest.length);
  if (wide) out.set([head.length >> 8, head.length & 0xff]);
  else out[0] = head.length;
  out.set(head, n);
  out.set(rest, n + head.length);
  return out;
}

function body(m: SyncMessage): Uint8Array {
  switch (m.kind) {
    case "sync":
      return m.frame;
    case "welcome":
      return text(m.welcome);
    case "unlock":
      return text({ account: m.account, identity: m.identity });
    case "state":
      return text({ state: m.state });
    case "summaries":
      return m.batch;
    case "request":
      return text({ blobs: m.blobs, summaries: m.summaries });
    case "blob":
      return headed(new TextEncoder().encode(m.blob), m.sealed, false);
    case "append":
      return headed(text({ use: m.use, flags: m.flags, date: m.date }), m.sealed, true);
    case "lan":
      return text({ nonce: m.nonce, date: m.date });
  }
}

export function encodeMessage(m: SyncMessage): Uint8Array {
  const b = body(m);
  const out = new Uint8Array(b.length + 1);
  out[0] = kinds[m.kind];
  out.set(b, 1);
  return out;
}

function json(body: Uint8Array): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch {
    throw new RangeError("sync message body is not JSON");
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new RangeError("sync message body is not an object");
  }
  return v as Record<string, unknown>;
}

function str(o: Record<string, unknown>, k: string): string {
  if (typeof o[k] !== "string") throw new RangeError(`sync message field ${k} is missing`);
  return o[k] as string;
}

function ids(o: Record<string, unknown>, k: string): string[] {
  const v = o[k] ?? [];
  if (!Array.isArray(v) || v.length > maxRequested || v.some((x) => typeof x !== "string")) {
    throw new RangeError(`sync message field ${k} is not a list of ids`);
  }
  return v as string[];
}

function urls(o: Record<string, unknown>, k: string): string[] {
  const v = o[k];
  if (!Array.isArray(v) || v.length > 8 || v.some((x) => typeof x !== "string")) {
    throw new RangeError(`sync message field ${k} is not a list of URLs`);
  }
  return v as string[];
}

/** Splits `u8|u16 length | head | rest`. */
function unhead(b: Uint8Array, wide: boolean): [Uint8Array, Uint8Array] {
  const n = wide ? 2 : 1;
  if (b.length < n) throw new RangeError("sync message is truncated");
  const len = wide ? (b[0] << 8) | b[1] : b[0];
  if (b.length < n + len) throw new RangeError("sync message is truncated");
  return [b.subarray(n, n + len), b.slice(n + len)];
}

/** Decodes a message; throws RangeError on anything malformed. */
export function decodeMessage(bytes: Uint8Array): SyncMessage {
  if (bytes.length === 0) throw new RangeError("empty sync message");
  const body = bytes.subarray(1);
  switch (bytes[0]) {
    case kinds.sync:
      return { kind: "sync", frame: body.slice() };
    case kinds.welcome: {
      const o = json(body);
      return {
        kind: "welcome",
        welcome: {
          account: str(o, "account"),
          address: str(o, "address"),
          identity: str(o, "identity"),
          homeRecipient: str(o, "homeRecipient"),
          homeKey: str(o, "homeKey"),
          homeId: str(o, "homeId"),
          ...(o.lan === undefined ? {} : { lan: urls(o, "lan") }),
        },
      };
    }
    case kinds.unlock: {
      const o = json(body);
      return { kind: "unlock", account: str(o, "account"), identity: str(o, "identity") };
    }
    case kinds.state: {
      const state = str(json(body), "state");
      if (state !== "locked" && state !== "unknown-device") {
        throw new RangeError("unknown sync state");
      }
      return { kind: "state", state };
    }
    case kinds.summaries:
      return { kind: "summaries", batch: body.slice() };
    case kinds.request: {
      const o = json(body);
      return { kind: "request", blobs: ids(o, "blobs"), summaries: ids(o, "summaries") };
    }
    case kinds.blob: {
      const [id, sealed] = unhead(body, false);
      let blob: string;
      try {
        blob = new TextDecoder("utf-8", { fatal: true }).decode(id);
      } catch {
        throw new RangeError("blob id is not UTF-8");
      }
      return { kind: "blob", blob, sealed };
    }
    case kinds.append: {
      const [head, sealed] = unhead(body, true);
      const o = json(head);
      const flags = o.flags;
      if (!Array.isArray(flags) || flags.some((f) => typeof f !== "string")) {
        throw new RangeError("sync message field flags is not a list");
      }
      if (typeof o.date !== "number" || !Number.isFinite(o.date)) {
        throw new RangeError("sync message field date is missing");
      }
      return { kind: "append", use: str(o, "use"), flags, date: o.date, sealed };
    }
    case kinds.lan: {
      const o = json(body);
      if (typeof o.date !== "number" || !Number.isFinite(o.date)) {
        throw new RangeError("sync message field date is missing");
      }
      return { kind: "lan", nonce: str(o, "nonce"), date: o.date };
    }
    default:
      throw new RangeError(`unknown sync message kind ${bytes[0]}`);
  }
}
