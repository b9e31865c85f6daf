/**
 * Delivery through the edge relay (`POST /v1/outbound`, signed): the home box
 * needs no port 25 of its own and no residential IP reputation. Once the edge
 * has queued the message it owns it (retries, DSN back to us sealed), so a
 * `202` counts as delivered for the home queue.
 *
 * @example
 * ```ts
 * const transport = new EdgeTransport(link, await homeSigningKey(dataDir));
 * startQueueRunner({ queue, local, transport, domain, hostname });
 * ```
 */
import type { SigningKey } from "../../src/crypto/device.ts";
import type { DeliveryResult, OutgoingMessage, Transport } from "../../src/queue/transport.ts";
import { signRequest } from "../../src/wire/signed_request.ts";
import type { EdgeLinkConfig } from "../edge_link.ts";

export class EdgeTransport implements Transport {
  readonly #link: EdgeLinkConfig;
  readonly #key: SigningKey;
  readonly #timeoutMs: number;

  constructor(link: EdgeLinkConfig, key: SigningKey, opts: { timeoutMs?: number } = {}) {
    this.#link = link;
    this.#key = key;
    this.#timeoutMs = opts.timeoutMs ?? 60_000;
  }

  async deliver(out: OutgoingMessage): Promise<Map<string, DeliveryResult>> {
    const query = new URLSearchParams({ from: out.from });
    for (const r of out.recipients) query.append("to", r);
    const path = `/v1/outbound?${query}`;
    const each = (result: DeliveryResult) => new Map(out.recipients.map((r) => [r, result]));
    let res: Response;
    try {
      const headers = await signRequest(this.#key, this.#link.homeId, "POST", path, out.message);
      res = await fetch(new URL(path, this.#link.url), {
        method: "POST",
        headers: { ...headers, "content-type": "message/rfc822" },
        body: out.message as Uint8Array<ArrayBuffer>,
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (e) {
      return each({
        kind: "transient",
        reason: `the edge is unreachable: ${(e as Error).message}`,
      });
    }
    const body = await res.json().catch(() => ({})) as { id?: string; error?: string };
    if (res.status === 202) {
      return each({ kind: "delivered", reason: `relayed by the edge as ${body.id}` });
    }
    const reason = `the edge answered ${res.status}: ${body.error ?? res.statusText}`;
    // Refusals about this message (sender not ours, too large, malformed) will not change
    // on retry; rate limits, auth clock skew and server trouble may.
    if ([400, 403, 413].includes(res.status)) {
      return each({ kind: "permanent", reason, status: res.status === 413 ? "5.3.4" : "5.7.1" });
    }
    return each({ kind: "transient", reason });
  }
}
