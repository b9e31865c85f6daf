/**
 * The `hearth` command: parses arguments and composes the roles. Nothing else.
 */
import { dataDirFrom, type HearthConfig, loadConfig } from "./src/config.ts";
import { ProtocolError, UsageError } from "./src/errors.ts";
import { initDataDir, openStore, startHome } from "./home/box.ts";
import { createAccount, identityFor, setPassword } from "./home/store/accounts.ts";
import { deliverLocally } from "./home/store/deliver.ts";
import { normaliseLineEndings } from "./src/mail/line_endings.ts";
import { toBase64Url } from "./src/encoding.ts";
import { log } from "./src/log.ts";
import { dnsRecords, formatBind } from "./home/dns_records.ts";

const help = `hearth — mail you own

Usage: hearth <command> [options]

Commands:
  up                    run the home box with a first account (creates ./hearth-data on first run)
  home                  run the home box (IMAP 2143/2993, MX 2526, submission 2587/2465)
  init --domain D       prepare a data directory: configuration, keys, certificates
  user add ADDRESS      create an account; prints its recovery key once
  user passwd ADDRESS   set a new password (proves ownership with the old one or the recovery key)
  deliver --to ADDRESS  deliver the message on standard input to a local account
  dns [--format bind|json]  the DNS records to publish for the domain (MX, SPF, DKIM, DMARC)

Options:
  --data DIR            data directory (default ./hearth-data, or HEARTH_DATA)
  --password-stdin      read the password from standard input instead of prompting
  --imap-port N         IMAP (STARTTLS) port, default 2143
  --imaps-port N        IMAP over TLS port, default 2993
  --mx-port N           SMTP MX port (inbound mail for local accounts), default 2526
  --submission-port N   SMTP submission port (STARTTLS), default 2587
  --submissions-port N  SMTP submission over TLS port, default 2465
  --listen ADDR         address to listen on, default 127.0.0.1
  --allow-plaintext     allow IMAP LOGIN and SMTP AUTH without TLS (loopback tests only)
  -h, --help            show this help

Environment:
  HEARTH_DATA           data directory
  HEARTH_PASSWORD       password of the first account created by "hearth up"
`;

interface Args {
  positional: string[];
  flags: Map<string, string | true>;
}

const valueFlags = new Set([
  "format",
  "data",
  "domain",
  "to",
  "imap-port",
  "imaps-port",
  "mx-port",
  "submission-port",
  "submissions-port",
  "listen",
  "hostname",
]);

function parseArgs(argv: string[]): Args {
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "-h") flags.set("help", true);
    else if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
      if (eq >= 0) flags.set(name, a.slice(eq + 1));
      else if (valueFlags.has(name)) {
        if (i + 1 >= argv.length) throw new UsageError(`--${name} needs a value`);
        flags.set(name, argv[++i]);
      } else flags.set(name, true);
    } else positional.push(a);
  }
  return { positional, flags };
}

function flag(args: Args, name: string): string | undefined {
  const v = args.flags.get(name);
  return typeof v === "string" ? v : undefined;
}

function portFlag(args: Args, name: string): number | undefined {
  const v = flag(args, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw new UsageError(`--${name} must be a port number`);
  }
  return n;
}

async function configFrom(args: Args): Promise<HearthConfig> {
  return await loadConfig(dataDirFrom(flag(args, "data")), {
    domain: flag(args, "domain"),
    hostname: flag(args, "hostname"),
    listen: flag(args, "listen"),
    imapPort: portFlag(args, "imap-port"),
    imapsPort: portFlag(args, "imaps-port"),
    mxPort: portFlag(args, "mx-port"),
    submissionPort: portFlag(args, "submission-port"),
    submissionsPort: portFlag(args, "submissions-port"),
  });
}

async function readStdin(): Promise<Uint8Array> {
  return new Uint8Array(await new Response(Deno.stdin.readable).arrayBuffer());
}

async function readPassword(args: Args, prompt_: string): Promise<string> {
  if (args.flags.has("password-stdin")) {
    const text = new TextDecoder().decode(await readStdin());
    return text.replace(/\r?\n$/, "");
  }
  if (!Deno.stdin.isTerminal()) {
    throw new UsageError("no terminal to ask for a password; pass --password-stdin");
  }
  const pw = prompt(prompt_);
  if (!pw) throw new UsageError("no password given");
  return pw;
}

function randomPassword(): string {
  return toBase64Url(crypto.getRandomValues(new Uint8Array(15)));
}

function printRecoveryKey(address: string, key: string) {
  console.log(`
Recovery key for ${address} (shown once; store it offline, e.g. printed in a drawer):

  ${key}

With it you can reset a lost password ("hearth user passwd") and open any stored
message with the standard age tool: age -d -i recovery.txt message.age
`);
}

async function cmdInit(args: Args) {
  const config = await configFrom(args);
  const { created } = await initDataDir(config);
  console.log(
    created
      ? `Initialised ${config.dataDir} for ${config.domain}. Next: hearth user add you@${config.domain}`
      : `${config.dataDir} is already initialised; nothing was overwritten.`,
  );
}

async function cmdUserAdd(args: Args, address: string | undefined) {
  if (!address) throw new UsageError("usage: hearth user add ADDRESS [--password-stdin]");
  const config = await configFrom(args);
  const { kv, blobs } = await openStore(config);
  try {
    const password = await readPassword(args, `Password for ${address}:`);
    const { recoveryKey } = await createAccount(kv, blobs, address, password, config.scryptLogN);
    console.log(`Created ${address}.`);
    printRecoveryKey(address, recoveryKey);
  } finally {
    kv.close();
  }
}

async function cmdUserPasswd(args: Args, address: string | undefined) {
  if (!address) throw new UsageError("usage: hearth user passwd ADDRESS [--password-stdin]");
  const config = await configFrom(args);
  const { kv } = await openStore(config);
  try {
    let oldSecret: string, newPassword: string;
    if (args.flags.has("password-stdin")) {
      const lines = new TextDecoder().decode(await readStdin()).split(/\r?\n/);
      [oldSecret, newPassword] = [lines[0] ?? "", lines[1] ?? ""];
      if (!newPassword) {
        throw new UsageError(
          "with --password-stdin, give the old password (or the recovery key) and the new password on two lines",
        );
      }
    } else {
      oldSecret = await readPassword(args, "Current password or recovery key:");
      newPassword = await readPassword(args, "New password:");
    }
    const identity = await identityFor(kv, address, oldSecret);
    if (!identity) throw new UsageError("that password or recovery key does not open this account");
    await setPassword(kv, address, identity, newPassword, config.scryptLogN);
    console.log(`The password of ${address} is changed.`);
  } finally {
    kv.close();
  }
}

async function cmdDeliver(args: Args) {
  const to = flag(args, "to");
  if (!to) throw new UsageError("usage: hearth deliver --to ADDRESS < message.eml");
  const config = await configFrom(args);
  const { kv, blobs } = await openStore(config);
  try {
    const raw = await readStdin();
    if (raw.length === 0) throw new UsageError("the message on standard input is empty");
    try {
      await deliverLocally(kv, blobs, to, normaliseLineEndings(raw));
    } catch (e) {
      // Refusals (unknown recipient, too large) are the caller's to fix: say so plainly.
      if (e instanceof ProtocolError) throw new UsageError(e.message);
      throw e;
    }
    console.log(`Delivered ${raw.length} bytes to ${to}.`);
  } finally {
    kv.close();
  }
}

async function cmdDns(args: Args) {
  const config = await configFrom(args);
  await openStore(config).then(({ kv }) => kv.close()); // a clear error outside a data directory
  const records = await dnsRecords(config);
  const format = flag(args, "format") ?? "bind";
  if (format === "json") console.log(JSON.stringify(records, null, 2));
  else if (format === "bind") {
    console.log(`; DNS records for ${config.domain}: add them at your DNS provider.`);
    console.log(formatBind(records));
  } else throw new UsageError(`unknown --format "${format}"; use bind or json`);
}

async function runHome(config: HearthConfig, args: Args) {
  const box = await startHome(config, { allowPlaintextAuth: args.flags.has("allow-plaintext") });
  const stop = async () => {
    await box.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  return box;
}

function printConnectHelp(
  config: HearthConfig,
  address: string,
  imapPort: number | null,
  imapsPort: number | null,
  submission: { port: number | null; tlsPort: number | null } | null,
) {
  console.log(`Hearth is running. Point your mail client at it:

  IMAP server   ${config.hostname}, port ${imapsPort} (SSL/TLS) or ${imapPort} (STARTTLS)
  SMTP server   ${config.hostname}, port ${submission?.tlsPort ?? "off"} (SSL/TLS) or ${
    submission?.port ?? "off"
  } (STARTTLS), password authentication
  User name     ${address}
  Certificate   ${config.dataDir}/tls/ca.pem (a private CA: import it, or accept the warning)

Stop with Ctrl-C.`);
}

async function cmdUp(args: Args) {
  const config = await configFrom(args);
  await initDataDir(config);
  const address = `me@${config.domain}`;
  const { kv, blobs } = await openStore(config);
  try {
    const { accountExists } = await import("./home/store/deliver.ts");
    if (!(await accountExists(kv, address))) {
      const given = Deno.env.get("HEARTH_PASSWORD");
      const password = given ?? randomPassword();
      const { recoveryKey } = await createAccount(kv, blobs, address, password, config.scryptLogN);
      console.log(`Created ${address}.`);
      if (!given) console.log(`Its password (shown once): ${password}`);
      printRecoveryKey(address, recoveryKey);
    }
  } finally {
    kv.close();
  }
  const box = await runHome(config, args);
  printConnectHelp(config, address, box.imap.port, box.imap.tlsPort, box.submission);
}

async function cmdHome(args: Args) {
  const config = await configFrom(args);
  const box = await runHome(config, args);
  console.log(
    `Hearth home box running: IMAP ${box.imap.port} (STARTTLS), ${box.imap.tlsPort} (TLS); ` +
      `MX ${box.mx?.ports[0] ?? "off"}; submission ${box.submission?.port ?? "off"} (STARTTLS), ` +
      `${box.submission?.tlsPort ?? "off"} (TLS).`,
  );
}

async function main(argv: string[]) {
  const args = parseArgs(argv);
  const [command, sub, arg] = args.positional;
  if (args.flags.has("help") || !command || command === "help") {
    console.log(help);
    return;
  }
  switch (command) {
    case "init":
      return await cmdInit(args);
    case "user":
      if (sub === "add") return await cmdUserAdd(args, arg);
      if (sub === "passwd") return await cmdUserPasswd(args, arg);
      throw new UsageError("usage: hearth user add ADDRESS | hearth user passwd ADDRESS");
    case "deliver":
      return await cmdDeliver(args);
    case "dns":
      return await cmdDns(args);
    case "up":
      return await cmdUp(args);
    case "home":
      return await cmdHome(args);
    default:
      throw new UsageError(`unknown command "${command}"; see hearth --help`);
  }
}

if (import.meta.main) {
  // A server must not die of one forgotten promise: log it and keep serving.
  globalThis.addEventListener("unhandledrejection", (e) => {
    e.preventDefault();
    log.error("unhandled-rejection", { error: e.reason });
  });
  try {
    await main(Deno.args);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`hearth: ${e.message}`);
      Deno.exit(2);
    }
    console.error(`hearth: ${(e as Error).message ?? e}`);
    Deno.exit(1);
  }
}
