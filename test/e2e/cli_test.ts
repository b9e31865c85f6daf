/**
 * The `hearth` command as a user meets it: help, init, user add/passwd,
 * deliver, and clear one-sentence errors (never a stack trace).
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { loadConfig } from "../../src/config.ts";
import { startHome } from "../../home/box.ts";
import { RawImap } from "./raw_imap.ts";

const root = new URL("../../", import.meta.url).pathname;
const address = "clitest@hearth.localhost";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function hearth(args: string[], stdin?: string): Promise<Run> {
  const env = Deno.env.toObject();
  delete env.RUST_BACKTRACE;
  delete env.HEARTH_DATA;
  delete env.HEARTH_PASSWORD;
  env.HEARTH_SCRYPT_LOG_N = "10";
  env.NO_COLOR = "1";
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", ...args],
    cwd: root,
    env,
    clearEnv: true,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

/** A failure the user can act on: exit 2, one line starting "hearth: ", no stack trace. */
function assertClearError(r: Run, pattern: RegExp) {
  assertEquals(r.code, 2, `exit code (stderr: ${r.stderr})`);
  assert(r.stderr.startsWith("hearth: "), r.stderr);
  assert(pattern.test(r.stderr), r.stderr);
  assert(!/^\s+at /m.test(r.stderr), `stack trace in: ${r.stderr}`);
  assertEquals(r.stderr.trim().split("\n").length, 1, r.stderr);
}

Deno.test("hearth --help names every command and option", async () => {
  for (const args of [["--help"], ["-h"], ["help"], []]) {
    const r = await hearth(args);
    assertEquals(r.code, 0);
    assert(r.stdout.includes("Usage: hearth <command> [options]"), r.stdout);
    for (
      const word of [
        "up",
        "home",
        "init",
        "user add",
        "user passwd",
        "deliver",
        "--data",
        "--password-stdin",
      ]
    ) {
      assert(r.stdout.includes(word), `help lacks ${word}`);
    }
    assertEquals(r.stderr, "");
  }
});

Deno.test("hearth with an unknown command says so in a sentence", async () => {
  assertClearError(await hearth(["frobnicate"]), /unknown command "frobnicate"; see hearth --help/);
  assertClearError(await hearth(["user", "remove", address]), /usage: hearth user add/);
  assertClearError(
    await hearth(["home", "--imap-port", "99999"]),
    /--imap-port must be a port number/,
  );
  assertClearError(await hearth(["init", "--data"]), /--data needs a value/);
});

Deno.test("hearth init, user add, user passwd, deliver, then login", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hearth-cli-" });
  try {
    // Before init, commands point at "hearth init".
    assertClearError(
      await hearth(
        ["user", "add", address, "--password-stdin", "--data", dir],
        "a password here\n",
      ),
      /not a Hearth data directory; run "hearth init" first/,
    );

    const init1 = await hearth(["init", "--data", dir]);
    assertEquals(init1.code, 0, init1.stderr);
    assert(init1.stdout.includes(`Initialised ${dir}`), init1.stdout);
    const before = await Promise.all(
      ["config.json", "tls/ca.pem", "tls/cert.pem", "tls/key.pem"].map((f) =>
        Deno.readFile(`${dir}/${f}`)
      ),
    );
    const init2 = await hearth(["init", "--data", dir]);
    assertEquals(init2.code, 0, init2.stderr);
    assert(init2.stdout.includes("already initialised; nothing was overwritten"), init2.stdout);
    const after = await Promise.all(
      ["config.json", "tls/ca.pem", "tls/cert.pem", "tls/key.pem"].map((f) =>
        Deno.readFile(`${dir}/${f}`)
      ),
    );
    assertEquals(after, before);

    const add = await hearth(
      ["user", "add", address, "--password-stdin", "--data", dir],
      "first password\n",
    );
    assertEquals(add.code, 0, add.stderr);
    assert(add.stdout.includes(`Created ${address}.`), add.stdout);
    const recoveryKey = add.stdout.match(/AGE-SECRET-KEY-1[0-9A-Z]+/)?.[0];
    assert(recoveryKey, `no recovery key in: ${add.stdout}`);

    assertClearError(
      await hearth(
        ["user", "add", address.toUpperCase(), "--password-stdin", "--data", dir],
        "another one\n",
      ),
      /already exists/,
    );
    assertClearError(
      await hearth(
        ["user", "add", "not-an-address", "--password-stdin", "--data", dir],
        "long enough pw\n",
      ),
      /is not an email address/,
    );
    assertClearError(
      await hearth(
        ["user", "passwd", address, "--password-stdin", "--data", dir],
        "wrong old secret\nnew password 2\n",
      ),
      /does not open this account/,
    );

    const passwd = await hearth(
      ["user", "passwd", address, "--password-stdin", "--data", dir],
      `${recoveryKey}\nsecond password\n`,
    );
    assertEquals(passwd.code, 0, passwd.stderr);
    assert(passwd.stdout.includes(`The password of ${address} is changed.`), passwd.stdout);

    const eml =
      `From: someone@example.org\nTo: ${address}\nSubject: via cli\n\nDelivered by hearth deliver.\n`;
    const deliver = await hearth(["deliver", "--to", address, "--data", dir], eml);
    assertEquals(deliver.code, 0, deliver.stderr);
    assert(deliver.stdout.startsWith("Delivered "), deliver.stdout);
    const unknown = await hearth(
      ["deliver", "--to", "nobody@hearth.localhost", "--data", dir],
      eml,
    );
    assert(unknown.code !== 0);
    assert(unknown.stderr.startsWith("hearth: "), unknown.stderr);
    assert(/no mailbox here for nobody@hearth\.localhost/.test(unknown.stderr), unknown.stderr);
    assert(!/^\s+at /m.test(unknown.stderr), unknown.stderr);
    assertClearError(
      await hearth(["deliver", "--to", address, "--data", dir], ""),
      /standard input is empty/,
    );

    const box = await startHome(
      await loadConfig(dir, {
        imapPort: 0,
        imapsPort: 0,
        mxPort: null,
        submissionPort: null,
        submissionsPort: null,
      }),
      {
        allowPlaintextAuth: true,
      },
    );
    const c = await RawImap.connect(box.imap.port!);
    try {
      assertEquals((await c.command(`LOGIN ${address} "first password"`)).status, "NO");
      await c.ok(`LOGIN ${address} "second password"`);
      await c.ok("SELECT INBOX");
      const bodies = await c.fetchAllBodies();
      assertEquals(bodies.size, 1);
      // Delivered with CRLF line endings (RFC 5322 §2.1).
      assertEquals(new TextDecoder().decode([...bodies.values()][0]), eml.replace(/\n/g, "\r\n"));
      await c.ok("LOGOUT");
    } finally {
      c.close();
      await box.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
