// The e2e tests drive real, independent clients installed from Debian. When one is missing they
// would fail in confusing ways; this test names the missing tool and where it should come from.

interface Tool {
  /** Command run to prove the tool works. */
  cmd: string[];
  /** Debian package that provides it (installed by .ci/run). */
  pkg: string;
  /** Optional check on the command's stdout. */
  expect?: (stdout: string) => string | undefined;
}

const TOOLS: Tool[] = [
  { cmd: ["python3", "-c", "import imaplib, smtplib, ssl"], pkg: "python3" },
  {
    cmd: ["curl", "--version"],
    pkg: "curl",
    expect: (out) => {
      const protocols = out.match(/^Protocols: (.*)$/m)?.[1].split(" ") ?? [];
      return protocols.includes("imap") && protocols.includes("imaps")
        ? undefined
        : "this curl was built without IMAP support";
    },
  },
  // Debian's interpreter: the package installs there, not for a python3 earlier on PATH.
  { cmd: ["/usr/bin/python3", "-c", "import dkim"], pkg: "python3-dkim" },
  { cmd: ["mbsync", "--version"], pkg: "isync" },
  { cmd: ["age", "--version"], pkg: "age" },
  // Net::SMTP (libnet, in Debian's perl) with BDAT: the CHUNKING client of smtp_tools_test.ts.
  { cmd: ["perl", "-MNet::SMTP", "-e", "Net::SMTP->can('bdatlast') or exit 1"], pkg: "perl" },
  {
    cmd: ["swaks", "--support"],
    pkg: "swaks libnet-ssleay-perl libio-socket-ssl-perl",
    expect: (out) => out.includes("=== TLS supported") ? undefined : "this swaks has no TLS",
  },
];

async function checkTool(tool: Tool): Promise<string | undefined> {
  const name = tool.cmd[0];
  const hint = `install Debian package "${tool.pkg}" (.ci/run installs it)`;
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(name, {
      args: tool.cmd.slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return `${name} is not on PATH: ${hint}`;
    throw err;
  }
  if (!output.success) {
    const stderr = new TextDecoder().decode(output.stderr).trim();
    return `"${tool.cmd.join(" ")}" exited with ${output.code} (${stderr}): ${hint}`;
  }
  const problem = tool.expect?.(new TextDecoder().decode(output.stdout));
  return problem ? `${name}: ${problem}: ${hint}` : undefined;
}

Deno.test("e2e tools (python3, python3-dkim, curl, mbsync, age, perl, swaks) are installed", async () => {
  const problems = (await Promise.all(TOOLS.map(checkTool))).filter((p) => p !== undefined);
  if (problems.length > 0) {
    throw new Error(
      `missing tools for the e2e tests:\n  ${problems.join("\n  ")}\n` +
        "Run .ci/run (as root on Debian) to install them.",
    );
  }
});
