/** NAMESPACE (RFC 2342, RFC 9051 §6.3.10): one personal namespace, "/" as delimiter. */
import type { Session } from "../session.ts";

export function namespace(s: Session) {
  s.w.untagged('NAMESPACE (("" "/")) NIL NIL');
  return Promise.resolve();
}
