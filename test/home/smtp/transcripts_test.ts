// Replays every SMTP protocol transcript in test/fixtures/smtp/ against a fresh home box
// (see transcript.ts for the format).
import { log } from "../../../src/log.ts";
import { fixtureDir, runTranscript } from "./transcript.ts";

log.setLevel("warn");

const names: string[] = [];
for (const e of Deno.readDirSync(fixtureDir)) if (e.name.endsWith(".txt")) names.push(e.name);
names.sort();

for (const name of names) {
  Deno.test(`SMTP transcript ${name}`, async () => {
    const text = await Deno.readTextFile(new URL(name, fixtureDir));
    await runTranscript(text, { name: `test/fixtures/smtp/${name}` });
  });
}
