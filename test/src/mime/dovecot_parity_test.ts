import { strictEqual } from "node:assert/strict";
import { analyzeMessage } from "../../../src/mime/analyze.ts";
import { imapText, sameSpacing } from "./imap_text.ts";

const fixtures = new URL("../../fixtures/mime/", import.meta.url);

/** Where Hearth knowingly differs from Dovecot 2.3.19: see the reason on each entry. */
const knownDifferences: Record<string, Record<string, string>> = {
  // Dovecot counts sizes as if bare LF were CRLF; Hearth counts the octets it
  // serves for BODY[1], so the 17-octet body is 17, not 18.
  "bare_lf.eml": {
    BODY: '(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 17 1) "mixed")',
    BODYSTRUCTURE:
      '(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 17 1 NIL NIL NIL NIL) "mixed" ("boundary" "lf") NIL NIL NIL)',
  },
};

for await (const entry of Deno.readDir(fixtures)) {
  if (!entry.name.endsWith(".dovecot.txt")) continue;
  const eml = entry.name.replace(".dovecot.txt", ".eml");
  Deno.test(`analyzeMessage() matches Dovecot's ENVELOPE, BODY and BODYSTRUCTURE for ${eml}`, async () => {
    const raw = await Deno.readFile(new URL(eml, fixtures));
    const expected = await Deno.readTextFile(new URL(entry.name, fixtures));
    const info = analyzeMessage(raw);
    const actual: Record<string, string> = {
      ENVELOPE: imapText(info.envelope),
      BODY: imapText(info.body),
      BODYSTRUCTURE: imapText(info.bodyStructure),
    };
    for (const line of expected.trim().split("\n")) {
      const item = line.slice(0, line.indexOf(" "));
      const want = knownDifferences[eml]?.[item] ?? line.slice(item.length + 1);
      strictEqual(sameSpacing(actual[item]), sameSpacing(want), `${item} of ${eml}`);
    }
  });
}
