/**
 * Reading request bodies in the HTTP APIs (the edge, the backup host): a
 * size limit checked before and after reading, JSON that must be an object,
 * and the path with its query as signed requests cover it. Errors are
 * ProtocolErrors with their HTTP status; the apps turn them into responses.
 *
 * @example
 * ```ts
 * const body = await readBody(c.req.raw, limits.messageBytes);
 * const req = jsonObject<AckRequest>(body);
 * ```
 */
import { ProtocolError } from "../errors.ts";

/** The body of a request, or null for GET and HEAD; 413 past `maxBytes`. */
export async function readBody(req: Request, maxBytes: number): Promise<Uint8Array | null> {
  if (req.method === "GET" || req.method === "HEAD") return null;
  const tooLarge = () => new ProtocolError("NO", "the request body is too large", { http: 413 });
  const declared = req.headers.get("content-length");
  if (Number(declared ?? 0) > maxBytes) throw tooLarge();
  if (declared === null || !req.body) {
    const body = new Uint8Array(await req.arrayBuffer());
    if (body.length > maxBytes) throw tooLarge();
    return body;
  }
  // The length is known: one buffer of that size, filled chunk by chunk. Half the time of
  // arrayBuffer() for 8 MiB bodies, which collects the chunks and copies them again.
  const body = new Uint8Array(Number(declared));
  let got = 0;
  for await (const chunk of req.body) {
    if (got + chunk.length > body.length) {
      throw new ProtocolError("BAD", "the request body is longer than its Content-Length");
    }
    body.set(chunk, got);
    got += chunk.length;
  }
  if (got < body.length) {
    throw new ProtocolError("BAD", "the request body is shorter than its Content-Length");
  }
  return body;
}

/** Parses a JSON body that must be an object (400 otherwise). */
export function jsonObject<T>(body: Uint8Array | null): T {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(body ?? new Uint8Array()));
  } catch {
    throw new ProtocolError("BAD", "the request body is not valid JSON");
  }
  // Every request body is an object; `null` or `[]` reached the handlers and answered 500 (fuzzing).
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ProtocolError("BAD", "the request body must be a JSON object");
  }
  return value as T;
}

/** The path with its query, as the client signed it. */
export function requestPath(req: Request): string {
  const url = new URL(req.url);
  return url.pathname + url.search;
}
