// `hearth import` from a private Dovecot (Debian's dovecot-imapd) over TLS: 1,000 messages in five
// folders, the import SIGKILLed halfway and run again, then both sides compared over IMAP (per
// folder, the multiset of Message-ID, flags, internal date and size); and a dry run.
import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { startHome } from "../../home/box.ts";
import { TestResolver } from "../../src/dns.ts";
import { log } from "../../src/log.ts";
import {
  fillSource,
  hearthDataDir,
  hearthFolderOf,
  mailboxContents,
  sourceFolders,
  sourceMessages,
  spawnImport,
  startSource,
} from "../../bench/import_bench.ts";
import { testAddress, testPassword, testScryptLogN } from "./harness.ts";
import { parseSourceUrl, targetName } from "../../home/import/source.ts";
import { importedFlags } from "../../home/import/import.ts";
import { UsageError } from "../../src/errors.ts";

const count = 1000;

Deno.test("targetName() maps INBOX, drops the namespace prefix and translates the delimiter", () => {
  assertEquals(targetName("inbox", "/", ""), "INBOX");
  assertEquals(targetName("INBOX.Lists.deno", ".", "INBOX."), "Lists/deno");
  assertEquals(targetName("Work.a/b", ".", ""), "Work/a_b");
  assertEquals(targetName("Projects/2024", "/", ""), "Projects/2024");
});

Deno.test("importedFlags() keeps system flags and keywords, drops \\Recent", () => {
  assertEquals(
    importedFlags(["\\seen", "\\Recent", "\\FLAGGED", "$Forwarded", "\\Unknown", "bad(kw"]),
    ["\\Seen", "\\Flagged", "$Forwarded"],
  );
});

Deno.test("parseSourceUrl() reads imaps:// and imap:// and explains anything else", () => {
  const u = parseSourceUrl("imaps://me%40example.org@imap.example.org");
  assertEquals([u.tls, u.host, u.port, u.user], [
    "implicit",
    "imap.example.org",
    993,
    "me@example.org",
  ]);
  assertEquals(parseSourceUrl("imap://me@[::1]:1143").port, 1143);
  assertEquals(parseSourceUrl("imap://me@host").tls, "starttls");
  throws(() => parseSourceUrl("https://me@host"), UsageError);
  throws(() => parseSourceUrl("imaps://host"), /needs a user name/);
});

async function setup() {
  const hearth = await hearthDataDir(testAddress, testPassword, testScryptLogN);
  const source = await startSource({
    certFile: `${hearth.dataDir}/tls/cert.pem`,
    keyFile: `${hearth.dataDir}/tls/key.pem`,
  });
  await fillSource(source.target, sourceMessages(count));
  const caFile = `${hearth.dataDir}/tls/ca.pem`;
  const url = `imaps://${source.target.user}@127.0.0.1:${source.imapsPort}`;
  return {
    ...hearth,
    source,
    caFile,
    url,
    stdin: `${source.target.password}\n${testPassword}\n`,
    async cleanup() {
      await source.stop();
      await Deno.remove(hearth.dataDir, { recursive: true }).catch(() => {});
    },
  };
}

/** Reads a stream to the end, calling `onText` with everything read so far. */
async function collect(stream: ReadableStream<Uint8Array>, onText?: (all: string) => void) {
  let all = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    all += chunk;
    onText?.(all);
  }
  return all;
}

Deno.test({
  name: "hearth import survives a SIGKILL halfway and copies exactly the source",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const env = await setup();
    try {
      const args = [
        env.url,
        "--to",
        testAddress,
        "--data",
        env.dataDir,
        "--ca",
        env.caFile,
        "--password-stdin",
        "--progress-every",
        "0",
      ];
      // First run: killed once the progress shows at least 300 messages durable.
      const first = spawnImport(args, env.stdin);
      let seen = 0;
      let killed = false;
      const [out1, err1] = await Promise.all([
        collect(first.child.stdout),
        collect(first.child.stderr, (all) => {
          const counts = [...all.matchAll(/import: (\d+)\/(\d+) messages/g)].map((m) =>
            Number(m[1])
          );
          seen = Math.max(0, ...counts);
          if (!killed && seen >= 300) {
            killed = true;
            first.child.kill("SIGKILL");
          }
        }),
      ]);
      const status1 = await first.done;
      assert(killed, `the first import was not interrupted:\n${out1}\n${err1}`);
      assertEquals(status1.signal, "SIGKILL", `${out1}\n${err1}`);
      assert(seen < count, `the first import finished before the kill:\n${err1}`);

      // Second run: resumes, copies the rest.
      const second = spawnImport(args, env.stdin);
      const [out2, err2] = await Promise.all([
        collect(second.child.stdout),
        collect(second.child.stderr),
      ]);
      assertEquals((await second.done).code, 0, `${out2}\n${err2}`);
      const m = out2.match(
        /Imported (\d+) messages .*; (\d+) copied by an earlier run, (\d+) skipped/,
      );
      assert(m, out2);
      const [imported, already] = [Number(m[1]), Number(m[2])];
      assert(already >= seen, `the resumed run re-copied messages: ${out2}`);
      assertEquals(imported + already, count, out2);
      assert(out2.includes("Sent Items -> Sent (\\Sent)"), out2);

      // As if the provider had rebuilt every folder (new UIDVALIDITY): a third run reads them
      // all again and skips what is already there, by internal date and size.
      const kv = await Deno.openKv(`${env.dataDir}/home.kv`);
      try {
        const records = await Array.fromAsync(
          kv.list<{ uidValidity: number }>({ prefix: ["import"] }),
        );
        assertEquals(records.length, sourceFolders.length);
        for (const r of records) await kv.set(r.key, { ...r.value, uidValidity: 1 });
      } finally {
        kv.close();
      }
      const third = spawnImport(args, env.stdin);
      const [out3, err3] = await Promise.all([
        collect(third.child.stdout),
        collect(third.child.stderr),
      ]);
      assertEquals((await third.done).code, 0, `${out3}\n${err3}`);
      assert(out3.includes(`Imported 0 messages`), out3);
      assert(out3.includes(`${count} skipped`), out3);

      // Both sides over IMAP.
      const sourceSide = await mailboxContents({
        host: "127.0.0.1",
        port: env.source.imapsPort,
        secure: true,
        tls: { ca: [await Deno.readTextFile(env.caFile)] },
        auth: { user: env.source.target.user, pass: env.source.target.password },
      }, sourceFolders.map(([name]) => name));
      if (!Deno.env.get("HEARTH_LOG")) log.setLevel("warn");
      const box = await startHome(env.config, {
        allowPlaintextAuth: true,
        queue: null,
        resolver: new TestResolver(),
      });
      let hearthSide: Map<string, string[]>;
      try {
        hearthSide = await mailboxContents({
          host: "127.0.0.1",
          port: box.imap.tlsPort!,
          secure: true,
          tls: { ca: [await Deno.readTextFile(env.caFile)] },
          auth: { user: testAddress, pass: testPassword },
        }, sourceFolders.map(([name]) => hearthFolderOf(name)));
      } finally {
        await box.close();
      }
      let total = 0;
      for (const [name] of sourceFolders) {
        const want = sourceSide.get(name)!;
        const got = hearthSide.get(hearthFolderOf(name))!;
        total += want.length;
        assertEquals(got.length, want.length, `${name}: message count`);
        assertEquals(got, want, `${name}: messages, flags, internal dates and sizes`);
      }
      assertEquals(total, count);
    } finally {
      await env.cleanup();
    }
  },
});

Deno.test({
  name: "hearth import --dry-run counts every folder and writes nothing",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const env = await setup();
    try {
      const run = spawnImport(
        [env.url, "--dry-run", "--data", env.dataDir, "--ca", env.caFile, "--password-stdin"],
        env.stdin,
      );
      const [out, err] = await Promise.all([collect(run.child.stdout), collect(run.child.stderr)]);
      assertEquals((await run.done).code, 0, `${out}\n${err}`);
      assert(out.includes(`Dry run: ${count} messages`), out);
      assert(out.includes("  Sent Items -> Sent (\\Sent): "), out);
      for (const [name, share] of sourceFolders.slice(0, 4)) {
        const line = out.split("\n").find((l) => l.startsWith(`  ${name} -> `));
        assert(line && line.startsWith(`  ${name} -> ${hearthFolderOf(name)}`), out);
        assert(line.includes(`: ${Math.round(count * share)} messages`), out);
      }
      // Nothing was written: the Hearth account still has only its empty default folders.
      const kv = await Deno.openKv(`${env.dataDir}/home.kv`);
      try {
        const blobs = await Array.fromAsync(kv.list({ prefix: ["meta"] }));
        assertEquals(blobs.length, 0);
        assertEquals((await Array.fromAsync(kv.list({ prefix: ["import"] }))).length, 0);
      } finally {
        kv.close();
      }

      // And the errors a user meets read as sentences.
      const wrong = spawnImport(
        [env.url, "--dry-run", "--data", env.dataDir, "--ca", env.caFile, "--password-stdin"],
        "not-the-password\n",
      );
      const [, wrongErr] = await Promise.all([
        collect(wrong.child.stdout),
        collect(wrong.child.stderr),
      ]);
      assertEquals((await wrong.done).code, 2, wrongErr);
      assert(/refused the login of bench/.test(wrongErr), wrongErr);
      const unknown = spawnImport(
        [env.url, "--to", "nobody@hearth.localhost", "--data", env.dataDir, "--password-stdin"],
        env.stdin,
      );
      const [, unknownErr] = await Promise.all([
        collect(unknown.child.stdout),
        collect(unknown.child.stderr),
      ]);
      assertEquals((await unknown.done).code, 2, unknownErr);
      assert(/there is no account for nobody@hearth.localhost/.test(unknownErr), unknownErr);
    } finally {
      await env.cleanup();
    }
  },
});
