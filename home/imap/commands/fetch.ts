/**
 * FETCH and UID FETCH (RFC 9051 §6.4.5), with BINARY (RFC 3516), CONDSTORE
 * CHANGEDSINCE and MODSEQ (RFC 7162 §3.1.4), and QRESYNC VANISHED (RFC 7162
 * §3.2.6).
 */
import { ProtocolError } from "../../../src/errors.ts";
import { binarySize, fetchBinary, fetchSection } from "../../../src/mime/mod.ts";
import type { Command, FetchAtt, Section } from "../ast.ts";
import type { Session } from "../session.ts";
import type { MessageRecord } from "../../store/state.ts";
import { metaCacheOf } from "../meta_cache.ts";
import { formatInternalDate, resolveTargets } from "./common.ts";
import { formatSequenceSet, intervalsContain, resolveSequenceSet } from "../sequence.ts";

type FetchCommand = Extract<Command, { name: "FETCH" }>;

/** `1.2.HEADER.FIELDS (SUBJECT)` as the response names it. */
export function sectionText(section: Section): string {
  const parts: string[] = [];
  if (section.part.length) parts.push(section.part.join("."));
  if (section.text) {
    let t = section.text;
    if (section.fields) t += ` (${section.fields.join(" ")})`;
    parts.push(t);
  }
  return parts.join(".");
}

function partial(data: Uint8Array, p?: { start: number; count: number }): Uint8Array {
  if (!p) return data;
  if (p.start >= data.length) return new Uint8Array(0);
  return data.subarray(p.start, Math.min(data.length, p.start + p.count));
}

function needsBody(att: FetchAtt): boolean {
  return att.kind === "BODY[]" || att.kind === "BINARY[]" || att.kind === "BINARY.SIZE" ||
    att.kind === "RFC822" || att.kind === "RFC822.HEADER" || att.kind === "RFC822.TEXT";
}

function setsSeen(att: FetchAtt): boolean {
  return ((att.kind === "BODY[]" || att.kind === "BINARY[]") && !att.peek) ||
    att.kind === "RFC822" ||
    att.kind === "RFC822.TEXT";
}

function needsInfo(att: FetchAtt): boolean {
  return att.kind === "ENVELOPE" || att.kind === "BODY" || att.kind === "BODYSTRUCTURE";
}

export async function fetch(s: Session, _tag: string, cmd: FetchCommand) {
  const view = s.view();
  const store = s.account();
  const atts = cmd.atts.slice();
  const changedSince = cmd.modifiers.changedSince;
  if (changedSince !== undefined || atts.some((a) => a.kind === "MODSEQ")) s.condstore = true;
  if (cmd.modifiers.vanished) {
    // RFC 7162 §3.2.6: VANISHED needs QRESYNC, UID FETCH and CHANGEDSINCE.
    if (!s.qresync) throw new ProtocolError("BAD", "VANISHED needs ENABLE QRESYNC first");
    if (!cmd.uid) throw new ProtocolError("BAD", "VANISHED is only allowed with UID FETCH");
    if (changedSince === undefined) throw new ProtocolError("BAD", "VANISHED needs CHANGEDSINCE");
  }
  let targets = resolveTargets(view, cmd.set, cmd.uid);
  if (cmd.uid && !atts.some((a) => a.kind === "UID")) atts.unshift({ kind: "UID" });
  if (changedSince !== undefined && !atts.some((a) => a.kind === "MODSEQ")) {
    atts.push({ kind: "MODSEQ" });
  }
  // With CONDSTORE active, untagged FETCH for flag changes carry MODSEQ (RFC 7162 §3.1.4).
  const withModseq = atts.some((a) => a.kind === "MODSEQ");

  if (cmd.modifiers.vanished && !("saved" in cmd.set)) {
    const mb = view.mailbox;
    const maxUid = mb.rec.uidNext - 1;
    const intervals = resolveSequenceSet(cmd.set, Math.max(maxUid, 1));
    const since = Number(changedSince);
    const gone = new Set<number>();
    for (const [uid, modseq] of mb.expunged) {
      if (modseq > since && intervalsContain(intervals, uid)) gone.add(uid);
    }
    if (gone.size) {
      s.w.untagged(`VANISHED (EARLIER) ${formatSequenceSet([...gone].sort((a, b) => a - b))}`);
    }
  }

  // Messages expunged by another session meanwhile have no record: they are skipped.
  // Parallel arrays, not an object per message: FETCH 1:* on a large mailbox is common.
  const seqs: number[] = [];
  const recs: MessageRecord[] = [];
  const since = changedSince === undefined ? -1 : Number(changedSince);
  for (const t of targets) {
    const rec = view.record(t.uid);
    if (!rec || rec.modseq <= since) continue;
    seqs.push(t.seq);
    recs.push(rec);
  }
  targets = [];

  // RFC 9051 §6.4.5: BODY[] (not PEEK) sets \Seen; done in one mutation before answering.
  const seenNow = new Set<number>();
  if (!view.readOnly && atts.some(setsSeen)) {
    const unseen = recs.filter((r) => !r.flags.includes("\\Seen")).map((r) => r.uid);
    if (unseen.length) {
      const mbId = view.mailbox.id;
      await store.mutate((tx) => {
        const changes: [number, number, string[]][] = [];
        for (const uid of unseen) {
          const rec = view.mailbox.byUid.get(uid);
          if (!rec || rec.flags.includes("\\Seen")) continue;
          changes.push([uid, tx.nextModSeq(), [...rec.flags, "\\Seen"].sort()]);
          seenNow.add(uid);
        }
        if (changes.length) tx.push({ op: "flags", mb: mbId, changes }, s.id);
      });
    }
  }

  const metaCache = metaCacheOf(store);
  const wantInfo = atts.some(needsInfo);
  if (wantInfo) await metaCache.load(recs.map((r) => r.blob));
  const wantBody = atts.some(needsBody);
  const wantBinary = atts.some((a) => a.kind === "BINARY[]" || a.kind === "BINARY.SIZE");

  // Open sealed blobs a few at a time ahead of the writer, so decryption overlaps.
  const ahead = 8;
  const opened: Promise<Uint8Array>[] = [];
  const open = (i: number) => {
    if (wantBody && i < recs.length && !opened[i]) {
      opened[i] = store.message(recs[i].blob);
      opened[i].catch(() => {}); // awaited below; this only stops an early failure going unhandled
    }
  };
  for (let i = 0; i < ahead; i++) open(i);

  const w = s.w;
  for (let i = 0; i < recs.length; i++) {
    const rec = recs[i];
    let raw: Uint8Array | null = null;
    if (wantBody) {
      open(i + ahead);
      raw = await opened[i];
      delete opened[i];
    }
    const meta = wantInfo ? await metaCache.get(rec.blob) : null;
    // Decoded parts first: an unknown transfer encoding must fail before this line is begun.
    const binaries = wantBinary ? new Map<FetchAtt, Uint8Array | number>() : null;
    if (binaries) {
      for (const att of atts) {
        if (att.kind !== "BINARY[]" && att.kind !== "BINARY.SIZE") continue;
        const value = att.kind === "BINARY[]"
          ? fetchBinary(raw!, att.part)
          : binarySize(raw!, att.part);
        if (value === null) {
          throw new ProtocolError("NO", "Unknown Content-Transfer-Encoding", {
            imapCode: "UNKNOWN-CTE",
          });
        }
        binaries.set(att, value);
      }
    }
    // The response is written straight into the output buffer: at 10,000 messages per
    // command, building value trees per message costs more than the rest of FETCH.
    let line = `* ${seqs[i]} FETCH (`;
    let sep = "";
    let flagsSent = false;
    for (const att of atts) {
      switch (att.kind) {
        case "UID":
          line += `${sep}UID ${rec.uid}`;
          break;
        case "FLAGS":
          line += `${sep}FLAGS (${view.flagText(rec, s.rev2)})`;
          flagsSent = true;
          break;
        case "INTERNALDATE":
          line += `${sep}INTERNALDATE "${formatInternalDate(rec.date)}"`;
          break;
        case "RFC822.SIZE":
          line += `${sep}RFC822.SIZE ${rec.size}`;
          break;
        case "MODSEQ":
          line += `${sep}MODSEQ (${rec.modseq})`;
          break;
        case "SAVEDATE":
          line += `${sep}SAVEDATE "${formatInternalDate(rec.saved)}"`;
          break;
        case "EMAILID":
          line += `${sep}EMAILID (M${rec.blob.slice(0, 24)})`;
          break;
        case "THREADID":
          line += `${sep}THREADID NIL`;
          break;
        // ENVELOPE, BODY and BODYSTRUCTURE come pre-encoded from the metadata cache.
        case "ENVELOPE":
          w.text(line + `${sep}ENVELOPE `).bytes(meta!.envelope);
          line = "";
          break;
        case "BODY":
          w.text(line + `${sep}BODY `).bytes(meta!.body);
          line = "";
          break;
        case "BODYSTRUCTURE":
          w.text(line + `${sep}BODYSTRUCTURE `).bytes(meta!.bodyStructure);
          line = "";
          break;
        case "RFC822":
          w.text(line + `${sep}RFC822 `).literal(raw!);
          line = "";
          break;
        case "RFC822.HEADER":
          w.text(line + `${sep}RFC822.HEADER `).literal(
            fetchSection(raw!, { part: [], text: "HEADER" }),
          );
          line = "";
          break;
        case "RFC822.TEXT":
          w.text(line + `${sep}RFC822.TEXT `).literal(
            fetchSection(raw!, { part: [], text: "TEXT" }),
          );
          line = "";
          break;
        case "BODY[]": {
          const data = partial(fetchSection(raw!, att.section), att.partial);
          const origin = att.partial ? `<${att.partial.start}>` : "";
          w.text(line + `${sep}BODY[${sectionText(att.section)}]${origin} `).literal(data);
          line = "";
          break;
        }
        case "BINARY[]": {
          const data = partial(binaries!.get(att) as Uint8Array, att.partial);
          const origin = att.partial ? `<${att.partial.start}>` : "";
          // RFC 3516 §4.3: literal8 (~{n}) only when the data has NULs.
          w.text(line + `${sep}BINARY[${att.part.join(".")}]${origin} `).literal(
            data,
            data.includes(0),
          );
          line = "";
          break;
        }
        case "BINARY.SIZE":
          line += `${sep}BINARY.SIZE[${att.part.join(".")}] ${binaries!.get(att)}`;
          break;
      }
      sep = " ";
    }
    if (seenNow.has(rec.uid) && !flagsSent) {
      line += `${sep}FLAGS (${view.flagText(rec, s.rev2)})`;
      flagsSent = true;
      sep = " ";
    }
    if (withModseq && seenNow.has(rec.uid) && !atts.some((a) => a.kind === "MODSEQ")) {
      line += `${sep}MODSEQ (${rec.modseq})`;
    }
    w.text(line + ")\r\n");
    // This response already tells the current flags: no second, unsolicited FETCH for them,
    // unless a CONDSTORE client still needs the MODSEQ (RFC 7162 §3.1.4).
    if (flagsSent && (withModseq || !(s.condstore || s.qresync))) view.flagsReported(rec.uid);
    if (w.byteLength > 256 * 1024) await s.flushOutput();
  }
}
