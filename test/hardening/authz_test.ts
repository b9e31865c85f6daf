/**
 * Authentication and authorisation on a running home box (own process, so
 * its log can be read): guessing passwords is throttled per account and per
 * client address, and logged; one account can never list, select, read,
 * append to, copy into or otherwise reach another account's mailboxes.
 *
 * That one home can never read or ack another home's edge queue is checked in
 * test/edge/app_test.ts ("HTTP inbound seals to the account; only that home
 * pulls and acks it", and "unsigned, badly signed, replayed and stale
 * requests are refused").
 */
import { ok as assert } from "node:assert/strict";
import { limits } from "../../src/limits.ts";
import { LineClient } from "./line_client.ts";
import { spawnBox, type SpawnedBox } from "./box_process.ts";

const other = "other@hearth.localhost";
const otherPassword = "the other account's password";
const repoRoot = new URL("../../", import.meta.url).pathname;

async function addAccount(dataDir: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", "user", "add", other, "--password-stdin", "--data", dataDir],
    cwd: repoRoot,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(otherPassword + "\n"));
  await w.close();
  const out = await child.output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
}

class Imap {
  #n = 0;
  constructor(readonly c: LineClient) {}
  static async open(box: SpawnedBox, from = "127.0.0.1") {
    const c = await LineClient.connect(box.ports.port, from);
    assert((await c.line())!.startsWith("* OK"));
    return new Imap(c);
  }
  /** Sends a command; returns its untagged lines and the tagged line. */
  async run(cmd: string): Promise<{ lines: string[]; tagged: string }> {
    const tag = `Z${++this.#n}`;
    await this.c.write(`${tag} ${cmd}\r\n`);
    const lines: string[] = [];
    for (;;) {
      const l = await this.c.line();
      if (l === null) return { lines, tagged: "(closed)" };
      if (l.startsWith(`${tag} `)) return { lines, tagged: l.slice(tag.length + 1) };
      lines.push(l);
    }
  }
  async append(mailbox: string, text: string) {
    const tag = `Z${++this.#n}`;
    await this.c.write(`${tag} APPEND ${mailbox} {${text.length}+}\r\n${text}\r\n`);
    return (await this.c.until(new RegExp(`^${tag} `)))!.slice(tag.length + 1);
  }
  close() {
    this.c.close();
  }
}

Deno.test({
  name: "accounts are walled off from each other, and password guessing is throttled and logged",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const box = await spawnBox();
    try {
      await addAccount(box.ports.dataDir);

      await t.step("one account never reaches another's mailboxes", async () => {
        const b = await Imap.open(box);
        assert((await b.run(`LOGIN ${other} "${otherPassword}"`)).tagged.startsWith("OK"));
        assert((await b.run("CREATE Secret")).tagged.startsWith("OK"));
        assert(
          (await b.append("Secret", "Subject: for other only\r\n\r\nsecret\r\n")).startsWith("OK"),
        );
        assert(
          (await b.append("INBOX", "Subject: other inbox\r\n\r\nsecret too\r\n")).startsWith("OK"),
        );

        const a = await Imap.open(box);
        assert(
          (await a.run(`LOGIN ${box.ports.address} "${box.ports.password}"`)).tagged.startsWith(
            "OK",
          ),
        );
        const list = await a.run('LIST "" "*"');
        assert(list.tagged.startsWith("OK"));
        assert(!list.lines.some((l) => /Secret|other/i.test(l)), list.lines.join("\n"));
        const namespace = await a.run("NAMESPACE");
        assert(/^\* NAMESPACE \(\(.*\)\) NIL NIL$/.test(namespace.lines[0]), namespace.lines[0]);
        for (
          const name of [
            "Secret",
            `"${other}/Secret"`,
            `"${other}"`,
            '"Other Users/other/INBOX"',
            '"#shared/Secret"',
            '"../other/INBOX"',
            '"~other/INBOX"',
          ]
        ) {
          assert((await a.run(`SELECT ${name}`)).tagged.startsWith("NO"), `SELECT ${name}`);
          assert(
            (await a.run(`STATUS ${name} (MESSAGES)`)).tagged.startsWith("NO"),
            `STATUS ${name}`,
          );
          assert((await a.run(`LIST "" ${name}`)).lines.length === 0, `LIST ${name}`);
          const app = await a.append(name, "Subject: intruder\r\n\r\nhi\r\n");
          assert(app.startsWith("NO"), `APPEND ${name}: ${app}`);
        }
        // Own INBOX: only own messages, whatever UIDs are asked for.
        assert((await a.run("SELECT INBOX")).tagged.startsWith("OK"));
        const all = await a.run("UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])");
        assert(!all.lines.some((l) => /for other only|other inbox/.test(l)));
        assert((await a.run("UID COPY 1:* Secret")).tagged.startsWith("NO"));
        assert((await a.run(`UID MOVE 1:* "${other}/INBOX"`)).tagged.startsWith("NO"));
        assert((await a.run(`SUBSCRIBE "${other}/INBOX"`)).tagged.match(/^(OK|NO)/));
        const lsub = await a.run('LSUB "" "*"');
        assert(!lsub.lines.some((l) => /Secret/.test(l)));

        // The other account still has exactly its own two messages, untouched.
        assert((await b.run("SELECT Secret")).lines.some((l) => l === "* 1 EXISTS"));
        assert((await b.run("SELECT INBOX")).lines.some((l) => l === "* 1 EXISTS"));
        a.close();
        b.close();
      });

      await t.step(
        "guessing is throttled per account and per client address, and logged",
        async () => {
          // Per account: wrong passwords from many connections of one address...
          let attempts = 0;
          while (attempts < limits.authFailuresPerWindow) {
            const c = await Imap.open(box);
            for (let i = 0; i < limits.imapAuthFailuresPerConnection - 1; i++) {
              if (attempts++ >= limits.authFailuresPerWindow) break;
              const r = await c.run(`LOGIN ${box.ports.address} "guess ${attempts}"`);
              assert(r.tagged.startsWith("NO [AUTHENTICATIONFAILED]"), r.tagged);
            }
            c.close();
          }
          // ...then even the right password is refused, from this address and from another.
          for (const from of ["127.0.0.1", "127.0.0.2"]) {
            const c = await Imap.open(box, from);
            const r = await c.run(`LOGIN ${box.ports.address} "${box.ports.password}"`);
            assert(r.tagged.startsWith("NO [UNAVAILABLE]"), `${from}: ${r.tagged}`);
            c.close();
          }
          // Per address: 127.0.0.1 has used up its guesses, for every account; 127.0.0.2 has not.
          const c1 = await Imap.open(box, "127.0.0.1");
          assert(
            (await c1.run(`LOGIN ${other} "${otherPassword}"`)).tagged.startsWith(
              "NO [UNAVAILABLE]",
            ),
          );
          c1.close();
          const c2 = await Imap.open(box, "127.0.0.2");
          assert((await c2.run(`LOGIN ${other} "${otherPassword}"`)).tagged.startsWith("OK"));
          c2.close();
          await new Promise((r) => setTimeout(r, 200));
          const log = box.stderr();
          assert(/imap\.login-failed .*reason=invalid/.test(log), log);
          assert(/imap\.login-failed .*ip=127\.0\.0\.2 reason=throttled/.test(log), log);
          assert(!log.includes("guess "), "no password in the log");
        },
      );
    } catch (e) {
      console.error(box.stderr());
      throw e;
    } finally {
      await box.stop();
    }
  },
});
