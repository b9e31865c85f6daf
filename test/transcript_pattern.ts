/**
 * Expected-line patterns of the protocol transcript runners (IMAP and SMTP):
 * `<*>` any text, `<n>` a number, `<name=n>` / `<name=*>` a capture kept as a
 * variable, `${name}` a variable captured earlier; or, for regex lines, a
 * regular expression in which `${name}` is substituted (escaped).
 */

/** A pattern line of a transcript. */
export interface Pattern {
  source: string;
  regex: boolean;
  lineNo: number;
}

export function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Compiles a pattern line to a regular expression, with the variables known now. */
export function compilePattern(m: Pattern, vars: Map<string, string>): RegExp {
  const subst = (s: string) =>
    s.replace(/\$\{(\w+)\}/g, (_, name: string) => {
      const v = vars.get(name);
      if (v === undefined) throw new Error(`line ${m.lineNo}: variable ${name} is not set`);
      return escapeRegex(v);
    });
  if (m.regex) return new RegExp(`^(?:${subst(m.source)})$`, "s");
  let out = "";
  const token = /<\*>|<n>|<(\w+)=([n*])>|\$\{(\w+)\}/g;
  let last = 0;
  for (const t of m.source.matchAll(token)) {
    out += escapeRegex(m.source.slice(last, t.index));
    if (t[0] === "<*>") out += ".*?";
    else if (t[0] === "<n>") out += "\\d+";
    else if (t[1]) out += `(?<${t[1]}>${t[2] === "n" ? "\\d+" : ".*?"})`;
    else out += subst(t[0]);
    last = t.index! + t[0].length;
  }
  out += escapeRegex(m.source.slice(last));
  return new RegExp(`^${out}$`, "s");
}
