/**
 * How the change log stores ops: JSON lines, mailbox names (already
 * encrypted) as base64url, and long change lists split so that one log entry
 * stays within Deno KV's limits on one commit.
 */
import { fromBase64Url, toBase64Url } from "../../src/encoding.ts";
import type { MailboxRecord, Op } from "./state.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** Changes per flags op in the log; longer ones are split. */
const maxChangesPerOp = 2000;

type StoredOp = Op | { op: "mbox"; rec: Omit<MailboxRecord, "nameEnc"> & { nameEnc: string } };

export function encodeOps(ops: Op[]): Uint8Array {
  const lines = ops.map((op) =>
    op.op === "mbox"
      ? JSON.stringify({ op: "mbox", rec: { ...op.rec, nameEnc: toBase64Url(op.rec.nameEnc) } })
      : JSON.stringify(op)
  );
  return encoder.encode(lines.join("\n"));
}

export function decodeOps(data: Uint8Array): Op[] {
  if (data.length === 0) return [];
  return decoder.decode(data).split("\n").map((line) => {
    const op = JSON.parse(line) as StoredOp;
    if (op.op === "mbox" && typeof op.rec.nameEnc === "string") {
      return { op: "mbox", rec: { ...op.rec, nameEnc: fromBase64Url(op.rec.nameEnc) } } as Op;
    }
    return op as Op;
  });
}

/** Splits ops whose change lists are long, so one log entry stays within KV limits. */
export function* boundedOps(ops: Op[]): Generator<Op> {
  for (const op of ops) {
    if (op.op === "flags" && op.changes.length > maxChangesPerOp) {
      for (let i = 0; i < op.changes.length; i += maxChangesPerOp) {
        yield { ...op, changes: op.changes.slice(i, i + maxChangesPerOp) };
      }
    } else if (op.op === "expunge" && op.uids.length > maxChangesPerOp * 5) {
      for (let i = 0; i < op.uids.length; i += maxChangesPerOp * 5) {
        yield { ...op, uids: op.uids.slice(i, i + maxChangesPerOp * 5) };
      }
    } else yield op;
  }
}
