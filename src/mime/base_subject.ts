import { decodeEncodedWords } from "./encoded_words.ts";

/**
 * The base subject of RFC 5256 §2.1, used by SORT SUBJECT and THREAD:
 * reply and forward markers, "[blob]" prefixes and "(fwd)" trailers removed,
 * blanks collapsed. Case is kept: callers compare with i;unicode-casemap.
 *
 * @example
 * ```ts
 * baseSubject("Re: [list] Fwd: Hello (fwd)"); // "Hello"
 * baseSubject("[Fwd: Re: Lunch]"); // "Lunch"
 * ```
 */
export function baseSubject(subject: string): string {
  // §2.1 (1): decode encoded words, turn tabs and continuations into spaces, collapse blanks.
  let s = decodeEncodedWords(subject).replace(/[\t\r\n ]+/g, " ").trim();
  for (;;) {
    // (2): remove trailing "(fwd)" and blanks.
    for (;;) {
      const t = s.replace(/\s*\(fwd\)\s*$/i, "").replace(/\s+$/, "");
      if (t === s) break;
      s = t;
    }
    // (3)-(5): remove subj-leader and subj-blob prefixes until none remains.
    for (;;) {
      let t = s.replace(/^(?:\s|(?:\[[^[\]]*\]\s*)*(?:re|fwd?)\s*(?:\[[^[\]]*\]\s*)?:)+/i, "");
      const blob = /^\[[^[\]]*\]\s*/.exec(t);
      // (4): a leading blob goes only if something is left after it.
      if (blob && blob[0].length < t.length) t = t.slice(blob[0].length);
      if (t === s) break;
      s = t;
    }
    // (6): "[fwd: ... ]" wraps a forwarded subject; unwrap and start again.
    const fwd = /^\[fwd:\s*(.*)\]$/i.exec(s);
    if (!fwd) return s.trim();
    s = fwd[1];
  }
}
