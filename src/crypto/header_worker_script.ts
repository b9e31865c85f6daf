/**
 * The header worker's thread (header_worker.ts): makes batches of age file
 * headers for the recipient it is asked about and hands them over.
 */
import { makeSealHeader } from "./age_seal.ts";
import type { HeaderReply, HeaderRequest } from "./header_worker.ts";

// deno-lint-ignore no-explicit-any
const scope = self as any;

scope.onmessage = (e: MessageEvent<HeaderRequest>) => {
  const { recipient, count } = e.data;
  let reply: HeaderReply;
  try {
    const headers = Array.from({ length: count }, () => makeSealHeader(recipient));
    reply = { recipient, headers };
    // Handed over, not copied: the file keys' derivatives live on in one thread only.
    scope.postMessage(
      reply,
      headers.flatMap((h) => [h.header.buffer, h.nonce.buffer, h.payloadKey.buffer]),
    );
  } catch (err) {
    reply = { recipient, error: String(err) };
    scope.postMessage(reply);
  }
};
