/**
 * `hearth status` and `hearth doctor --format json` as a user runs them, on a fresh data
 * directory (a `.localhost` domain: no DNS lookups leave the machine).
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { freeLowPort } from "../free_low_port.ts";

const root = new URL("../../", import.meta.url).pathname;

async function hearth(args: string[]) {
  const env = Deno.env.toObject();
  delete env.RUST_BACKTRACE;
  delete env.HEARTH_DATA;
  env.HEARTH_SCRYPT_LOG_N = "10";
  env.NO_COLOR = "1";
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", ...args],
    cwd: root,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

Deno.test("hearth status and hearth doctor --format json on a fresh data directory", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hearth-doctor-cli-" });
  try {
    // Free ports, so that a box another test runs on the defaults is not taken for this one; below
    // the kernel's ephemeral range (32768 and up), where the other tests' port-0 listeners never
    // land, so none of them can take one while the doctor looks (it did once, under CI's load).
    const ports = ["imap", "imaps", "mx", "submission", "submissions"].flatMap((p) => [
      `--${p}-port`,
      String(freeLowPort()),
    ]);
    const init = await hearth(["init", "--data", dir, ...ports]);
    assertEquals(init.code, 0, init.stderr);

    const status = await hearth(["status", "--data", dir]);
    assertEquals(status.code, 0, status.stderr);
    for (const label of ["box", "accounts", "storage", "queue", "edge", "backups", "last errors"]) {
      assert(
        new RegExp(`^  ${label} `, "m").test(status.stdout),
        `no ${label} in ${status.stdout}`,
      );
    }
    assert(status.stdout.includes("accounts    0"), status.stdout);

    const doctor = await hearth(["doctor", "--format", "json", "--data", dir]);
    assertEquals(doctor.code, 0, doctor.stderr + doctor.stdout);
    const results = JSON.parse(doctor.stdout) as { name: string; status: string; fix?: string }[];
    assertEquals(
      results.map((r) => r.name),
      [
        "dns",
        "certificate",
        "listeners",
        "edge link",
        "outbound queue",
        "backups",
        "disk space",
        "clock",
      ],
    );
    assert(results.every((r) => ["ok", "warn", "fail"].includes(r.status)));
    assertEquals(results.find((r) => r.name === "certificate")?.status, "ok");
    assert(results.filter((r) => r.status !== "ok").every((r) => r.fix), doctor.stdout);

    const bad = await hearth(["doctor", "--format", "xml", "--data", dir]);
    assertEquals(bad.code, 2);
    assert(bad.stderr.startsWith('hearth: unknown --format "xml"'), bad.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("hearth doctor outside a data directory says to run hearth init", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hearth-doctor-cli-" });
  try {
    for (const command of ["doctor", "status"]) {
      const r = await hearth([command, "--data", `${dir}/none`]);
      assertEquals(r.code, 2, r.stderr);
      assert(/not a Hearth data directory; run "hearth init" first/.test(r.stderr), r.stderr);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
