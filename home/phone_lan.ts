/**
 * Phone sync on the LAN (docs/sync.md, "On the LAN"): `POST /v1/lan/exchange`
 * on the home box's HTTP port takes the sealed envelopes a paired phone would
 * post to its home's relay mailbox and answers, in the same response, with
 * the home's envelopes for it (sync/lan.ts has the framing). The envelopes
 * are signed and sealed, so this layer needs no secret of its own: it bounds
 * the body, limits how often an address may ask (and be refused), and how
 * many exchanges run at once. A Hono app with no Deno calls.
 *
 * The answer's headers go out as soon as the request is checked, and the
 * envelopes follow once the home has handled the phone's: a phone can tell a
 * home that is not there (no headers within 1.5 s) from one that is working.
 * What the answer advanced (sync state, summary marks) is kept once the
 * server took its last byte, and dropped if the phone went away before.
 *
 * @example
 * ```ts
 * app.route("/", createPhoneLanApp({ phones: service }));
 * ```
 */
import { type Context, Hono } from "hono";
import { ProtocolError } from "../src/errors.ts";
import { limits } from "../src/limits.ts";
import { log } from "../src/log.ts";
import { lanExchangePath } from "../sync/lan.ts";
import type { PhoneService } from "./phones.ts";

export interface PhoneLanDeps {
  phones: Pick<PhoneService, "openLanExchange">;
  /** Clock of the rate limits (tests). */
  now?: () => number;
}

/** `Deno.serve` passes the connection info as Hono's env. */
type Env = { Bindings: { remoteAddr?: { hostname?: string } } | undefined };

/** Counts events per client address in one-minute windows. */
class PerMinute {
  readonly #windows = new Map<string, { start: number; n: number }>();
  constructor(readonly max: number, readonly now: () => number) {}

  #window(address: string) {
    const t = this.now();
    let w = this.#windows.get(address);
    if (!w || t - w.start >= 60_000) {
      if (this.#windows.size > 10_000) this.#prune(t);
      this.#windows.set(address, w = { start: t, n: 0 });
    }
    return w;
  }

  #prune(t: number) {
    for (const [a, w] of this.#windows) if (t - w.start >= 60_000) this.#windows.delete(a);
  }

  count(address: string) {
    this.#window(address).n++;
  }

  over(address: string): boolean {
    return this.#window(address).n >= this.max;
  }
}

function tooMany(text: string, status: 429 | 503): never {
  throw new ProtocolError("NO", text, { http: status });
}

async function boundedBody(c: Context<Env>, max: number): Promise<Uint8Array> {
  const declared = Number(c.req.header("content-length") ?? "0");
  const tooLarge = () => {
    throw new ProtocolError("NO", `a LAN exchange is at most ${max} bytes`, { http: 413 });
  };
  if (declared > max) tooLarge();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of c.req.raw.body ?? []) {
    size += chunk.length;
    if (size > max) tooLarge();
    chunks.push(chunk);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

export function createPhoneLanApp(deps: PhoneLanDeps): Hono<Env> {
  const now = deps.now ?? Date.now;
  const requests = new PerMinute(limits.lanExchangesPerMinute, now);
  const refusals = new PerMinute(limits.lanRefusalsPerMinute, now);
  let inFlight = 0;
  const app = new Hono<Env>();
  const addressOf = (c: Context<Env>) => c.env?.remoteAddr?.hostname ?? "unknown";

  app.onError((err, c) => {
    const status = err instanceof ProtocolError ? err.http ?? 400 : 500;
    if (status === 500) log.error("phone.lan-error", { error: err });
    else if (status !== 429 && status !== 503) refusals.count(addressOf(c));
    const res = c.json(
      { error: status === 500 ? "internal error; try again later" : err.message },
      status as 400,
    );
    if (status === 429 || status === 503) res.headers.set("retry-after", "60");
    return res;
  });

  app.post(lanExchangePath, async (c) => {
    const address = addressOf(c);
    if (refusals.over(address)) {
      tooMany("too many refused LAN exchanges from this address; wait a minute", 429);
    }
    if (requests.over(address)) tooMany("too many LAN exchanges; wait a minute", 429);
    requests.count(address);
    if (inFlight >= limits.lanExchangesInFlight) tooMany("the home box is busy", 503);
    inFlight++;
    let running: Promise<Uint8Array[]>;
    try {
      const body = await boundedBody(c, limits.lanExchangeBytes);
      const exchange = await deps.phones.openLanExchange(body);
      running = exchange.run();
      running.catch((e) => log.warn("phone.lan-failed", { error: (e as Error).message }))
        .finally(() => inFlight--);
      return answer(running, exchange);
    } catch (e) {
      inFlight--;
      throw e;
    }
  });
  return app;
}

/** The answer: headers now, then each envelope as `u32 length | bytes` once they are ready. */
function answer(
  running: Promise<Uint8Array[]>,
  exchange: { delivered(): Promise<void>; failed(): void },
): Response {
  let envelopes: Uint8Array[] | null = null;
  let next = 0;
  let finished = false;
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        envelopes ??= await running;
      } catch (e) {
        finished = true; // run() has undone what it advanced
        controller.error(e);
        return;
      }
      if (next < envelopes.length) {
        const e = envelopes[next++];
        const chunk = new Uint8Array(4 + e.length);
        new DataView(chunk.buffer).setUint32(0, e.length);
        chunk.set(e, 4);
        controller.enqueue(chunk);
        return;
      }
      // Asked past the last envelope: the server took the whole answer.
      finished = true;
      controller.close();
      await exchange.delivered();
    },
    cancel() {
      if (finished) return;
      finished = true;
      exchange.failed();
    },
  }, { highWaterMark: 0 });
  return new Response(stream, {
    headers: { "content-type": "application/octet-stream", "cache-control": "no-store" },
  });
}
