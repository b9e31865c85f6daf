/**
 * ACME HTTP-01 challenge responses (RFC 8555 §8.3): the CA fetches
 * `http://NAME/.well-known/acme-challenge/TOKEN` and expects the key
 * authorization as the body. Tokens live in KV, so whichever edge process the
 * CA's request reaches can answer it. No `Deno.*` calls.
 *
 * @example
 * ```ts
 * const challenges = new KvAcmeChallenges(kv);
 * await challenges.put("token", "token.thumbprint");
 * app.route("/", acmeChallengeApp(challenges));
 * ```
 */
import { Hono } from "hono";

/** Where pending HTTP-01 key authorizations are kept while the CA validates. */
export interface AcmeChallengeStore {
  put(token: string, keyAuthorization: string): Promise<void>;
  get(token: string): Promise<string | null>;
  remove(token: string): Promise<void>;
}

/** A challenge outlives no order: pending authorizations expire well before this. */
const challengeTtlMs = 60 * 60_000;
/** RFC 8555 §8.1: tokens are base64url, at least 128 bits of entropy. */
const tokenPattern = /^[A-Za-z0-9_-]{16,256}$/;

/** Challenge tokens in the edge's KV, shared by every edge process on it. */
export class KvAcmeChallenges implements AcmeChallengeStore {
  constructor(private readonly kv: Deno.Kv) {}

  async put(token: string, keyAuthorization: string): Promise<void> {
    if (!tokenPattern.test(token)) throw new TypeError("an ACME token is base64url text");
    await this.kv.set(["edge", "acme", "challenge", token], keyAuthorization, {
      expireIn: challengeTtlMs,
    });
  }

  async get(token: string): Promise<string | null> {
    if (!tokenPattern.test(token)) return null;
    return (await this.kv.get<string>(["edge", "acme", "challenge", token])).value;
  }

  async remove(token: string): Promise<void> {
    if (tokenPattern.test(token)) await this.kv.delete(["edge", "acme", "challenge", token]);
  }
}

/** Serves `/.well-known/acme-challenge/:token` from the store; 404 for anything unknown. */
export function acmeChallengeApp(store: AcmeChallengeStore): Hono {
  const app = new Hono();
  app.get("/.well-known/acme-challenge/:token", async (c) => {
    const answer = await store.get(c.req.param("token"));
    if (answer === null) return c.text("no such challenge\n", 404);
    // RFC 8555 §8.3: the body is the key authorization, nothing else.
    return c.body(answer, 200, { "content-type": "application/octet-stream" });
  });
  return app;
}
