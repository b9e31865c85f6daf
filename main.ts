/**
 * The `hearth` command: parses arguments and composes the roles. Nothing else.
 */
import { dataDirFrom, type HearthConfig, loadConfig } from "./src/config.ts";
import { ProtocolError, UsageError } from "./src/errors.ts";
import { initDataDir, openStore, startHome } from "./home/box.ts";
import { startHeaderWorker } from "./src/crypto/header_worker.ts";
import { createAccount, identityFor, setPassword } from "./home/store/accounts.ts";
import { deliverLocally } from "./home/store/deliver.ts";
import { normaliseLineEndings } from "./src/mail/line_endings.ts";
import { toBase64Url } from "./src/encoding.ts";
import { log } from "./src/log.ts";
import { dnsRecords, formatBind } from "./home/dns_records.ts";
import { runQueueCommand } from "./home/queue/cli.ts";
import { runImportCommand } from "./home/import/cli.ts";
import { linkToEdge, readEdgeLink } from "./home/edge_link.ts";
import { lockDataDir } from "./home/lock.ts";
import { type Edge, openEdgeStore, startEdge } from "./edge/main.ts";
import { runSetup } from "./home/setup.ts";
import { publicPorts } from "./home/dns_records.ts";
import { runBackupCommand, runFriendCommand, runRestoreCommand } from "./home/backup_cli.ts";

const help = `hearth — mail you own

Usage: hearth <command> [options]

Commands:
  up                    run edge and home box linked, with a first account (creates ./hearth-data)
  home                  run the home box (IMAP 2143/2993, MX 2526, submission 2587/2465)
  home link URL TOKEN   link this home box to an edge with a token from "hearth edge add-home"
  edge                  run the edge relay (SMTP front 2525, HTTP API 8080, HTTPS with --https-port)
  edge add-home --domain D   a one-time token that links a home box serving domain D
  edge add-front --name N    a bearer token for an HTTP mail front (POST /v1/inbound)
  edge status [--format text|json]   homes, accounts and mail waiting at the edge
  phone pair ADDRESS [--lan-url URL[,URL…]]   show a one-time code that pairs a phone with the
                        account (home box); the phone syncs at URL (this box's HTTP port, default
                        config.json "lanUrls") when on the LAN, else through the edge
  phone join CODE       join an account as a phone (state in --data, default ./hearth-phone)
  phone sync | ls [MAILBOX] | flag ID [FLAG…] | move ID MAILBOX   the phone's mailbox
                        (ls shows sender, subject and date once a sync brought them)
  phone read ID [--wait S]  show a message; a body not on the phone is fetched from the home box
  phone send ADDRESS[,…] SUBJECT [--text TEXT]   send a mail from the phone (text else on stdin);
                        a copy goes to the account's Sent folder
  phone chat ADDRESS TEXT   send a chat message (a mail with Chat-Version: 1.0) from the phone
  phone lan [URL…|off|default]   the home box's LAN URLs the phone tries first when you sync
  init --domain D       prepare a data directory: configuration, keys, certificates
    [--account ADDRESS --password-stdin] [--edge here|URL [--token T]] [--edge-hostname H]
                        (asks for what is missing on a terminal; never overwrites a key)
  user add ADDRESS      create an account; prints its recovery key once
  user passwd ADDRESS   set a new password (proves ownership with the old one or the recovery key)
  deliver --to ADDRESS  deliver the message on standard input to a local account
  dns [--format bind|json]  the DNS records to publish: MX, SPF, DKIM, DMARC, MTA-STS, TLS-RPT,
                        SRV and autoconfig names (docs/setup.md)
  queue [list|retry ID|retry --all|delete ID] [--format text|json]  the outbound queue
  doctor [--format text|json]  check DNS, certificate, ports, edge link, queue, backups, disk
                        and clock; says how to fix each problem; exit code 1 if one fails
  status [--format text|json]  one screen: accounts, storage, queue, edge link, backups
  friend allow --name N [--quota 20GB] [--url URL | --relay]   let a friend's box back up here
                        (prints a grant; --relay: through this box's edge, no open port needed)
  friend list           backup peers kept here: usage, last contact, pending prunes
  backup add-peer GRANT | status | run | drill [--all] | prune --peer P --keep-from N   friends' boxes
  restore --from GRANT_OR_URL --data EMPTY_DIR [--recovery-key-file F | --password-stdin]
    [--min-seq N] [--home-key K]
                        rebuild accounts, folders, messages, flags and UIDs from a friend's box
  import imaps://USER@HOST[:PORT] --to ADDRESS [--dry-run] [--ca FILE] [--progress-every S]
                        copy every folder (flags, keywords, dates) from an IMAP provider into an
                        account; resumable; imap:// uses STARTTLS; the home box must be stopped.
                        Passwords: --password-stdin reads two lines (source, then Hearth), or
                        HEARTH_IMPORT_SOURCE_PASSWORD and HEARTH_IMPORT_PASSWORD, or a prompt

Options:
  --data DIR            data directory (default ./hearth-data, or HEARTH_DATA)
  --password-stdin      read the password from standard input instead of prompting
  --imap-port N         IMAP (STARTTLS) port, default 2143
  --imaps-port N        IMAP over TLS port, default 2993
  --mx-port N           SMTP MX port (inbound mail for local accounts), default 2526
  --submission-port N   SMTP submission port (STARTTLS), default 2587
  --submissions-port N  SMTP submission over TLS port, default 2465
  --listen ADDR         address to listen on, default 127.0.0.1
  --kv PATH|URL         edge: KV file or KV Connect URL (default DATA/edge.kv)
  --http-port N         edge: HTTP API port, default 8080
  --home-http-port N    home HTTP port (backup host), default 8081
  --https-port N|off    edge: HTTPS port (autoconfig, MTA-STS policy); "hearth up" default 8443
  --edge-hostname H     the edge's public host name (the MX), default the host name
  --mail-hostname H     the IMAP/submission host name given to mail clients, default the host name
  --smtp-port N|off     edge: SMTP front port, default 2525
  --retention-days N    edge: keep mail the home box has not fetched this long, default 14
  --acme-directory URL  edge: get the TLS certificate from this ACME CA (HTTP-01 on the HTTP port,
                        which must be port 80 of the names); default off: the private CA
  --acme-email E        edge: the ACME account's contact address
  --public-name N[,N]   edge: names in the ACME certificate, default the edge host name
  --acme-ca FILE        edge: PEM roots for the ACME directory's own HTTPS (a private or test CA)
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
  "kv",
  "http-port",
  "smtp-port",
  "retention-days",
  "name",
  "https-port",
  "account",
  "edge",
  "token",
  "edge-hostname",
  "mail-hostname",
  "ca",
  "progress-every",
  "acme-directory",
  "acme-email",
  "public-name",
  "acme-ca",
  "home-http-port",
  "quota",
  "url",
  "from",
  "recovery-key-file",
  "min-seq",
  "peer",
  "keep-from",
  "home-key",
  "text",
  "wait",
  "lan-url",
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
    edgeHostname: flag(args, "edge-hostname"),
    mailHostname: flag(args, "mail-hostname"),
    listen: flag(args, "listen"),
    imapPort: portFlag(args, "imap-port"),
    imapsPort: portFlag(args, "imaps-port"),
    mxPort: portFlag(args, "mx-port"),
    submissionPort: portFlag(args, "submission-port"),
    submissionsPort: portFlag(args, "submissions-port"),
    homeHttpPort: portFlag(args, "home-http-port"),
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
  const flagged = await configFrom(args);
  const interactive = Deno.stdin.isTerminal() && !args.flags.has("password-stdin");
  const result = await runSetup(flagged.dataDir, {
    domain: flag(args, "domain"),
    account: flag(args, "account"),
    edge: flag(args, "edge"),
    edgeToken: flag(args, "token"),
    edgeHostname: flag(args, "edge-hostname"),
    mailHostname: flag(args, "mail-hostname"),
    hostname: flag(args, "hostname"),
    overrides: {
      listen: flagged.listen,
      imapPort: flagged.imapPort,
      imapsPort: flagged.imapsPort,
      mxPort: flagged.mxPort,
      submissionPort: flagged.submissionPort,
      submissionsPort: flagged.submissionsPort,
    },
  }, {
    ask: interactive ? (q, s) => prompt(q, s) : null,
    password: (q) => readPassword(args, q),
  });
  const { config } = result;
  console.log(
    result.created
      ? `Initialised ${config.dataDir} for ${config.domain}: configuration, TLS certificate, DKIM key.`
      : `${config.dataDir} is already initialised; nothing was overwritten.`,
  );
  if (result.account) {
    console.log(
      result.account.created
        ? `Created ${result.account.address}.`
        : `${result.account.address} exists already; its keys are unchanged.`,
    );
  }
  if (result.recoveryKey) printRecoveryKey(result.account!.address, result.recoveryKey);
  console.log(result.nextSteps);
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

async function cmdDoctor(args: Args) {
  const config = await configFrom(args);
  await openStore(config).then(({ kv }) => kv.close()); // a clear error outside a data directory
  const format = flag(args, "format") ?? "text";
  if (format !== "text" && format !== "json") {
    throw new UsageError(`unknown --format "${format}"; use text or json`);
  }
  const { doctorContext, doctorExitCode, formatDoctor, runDoctor } = await import(
    "./home/doctor.ts"
  );
  const { SystemDoctorResolver } = await import("./home/doctor_dns.ts");
  const results = await runDoctor(
    await doctorContext(config, { resolver: new SystemDoctorResolver() }),
  );
  console.log(format === "json" ? JSON.stringify(results, null, 2) : formatDoctor(results));
  Deno.exitCode = doctorExitCode(results);
}

async function cmdStatus(args: Args) {
  const config = await configFrom(args);
  const format = flag(args, "format") ?? "text";
  if (format !== "text" && format !== "json") {
    throw new UsageError(`unknown --format "${format}"; use text or json`);
  }
  const { boxStatus, formatStatus } = await import("./home/status.ts");
  const status = await boxStatus(config);
  console.log(format === "json" ? JSON.stringify(status, null, 2) : formatStatus(status));
}

async function runHome(config: HearthConfig, args: Args, edge?: Edge) {
  let box;
  try {
    box = await startHome(config, {
      allowPlaintextAuth: args.flags.has("allow-plaintext"),
      http: true,
    });
  } catch (e) {
    await edge?.close();
    throw e;
  }
  // Sealing's key exchanges on a second thread (the process ends with Deno.exit below).
  startHeaderWorker();
  const stop = async () => {
    await box.close();
    await edge?.close();
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
  edge?: Edge,
) {
  const edgeLine = edge
    ? `
  Incoming mail The edge takes it on SMTP port ${
      edge.smtpPort ?? "off"
    } (your MX), API at ${edge.url}
  Autoconfig    ${
      edge.httpsPort
        ? `https://${config.edgeHostname}:${edge.httpsPort}/.well-known/autoconfig/mail/config-v1.1.xml`
        : "off (no --https-port)"
    }
`
    : "";
  console.log(`Hearth is running. Point your mail client at it:

  IMAP server   ${config.hostname}, port ${imapsPort} (SSL/TLS) or ${imapPort} (STARTTLS)
  SMTP server   ${config.hostname}, port ${submission?.tlsPort ?? "off"} (SSL/TLS) or ${
    submission?.port ?? "off"
  } (STARTTLS), password authentication
  User name     ${address}
  Certificate   ${config.dataDir}/tls/ca.pem (a private CA: import it, or accept the warning)
${edgeLine}
Stop with Ctrl-C.`);
}

async function cmdUp(args: Args) {
  const config = await configFrom(args);
  await initDataDir(config);
  // Say "already running" before the edge's ports would say "in use"; the home box takes the
  // lock for good when it starts.
  (await lockDataDir(config.dataDir)).release();
  const address = `me@${config.domain}`;
  const { kv, blobs } = await openStore(config);
  let edge: Edge | undefined;
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
    // The edge runs in this process too, linked to this box, so the whole data path works.
    edge = await startEdgeFrom(args, config, true);
    const link = await readEdgeLink(config.dataDir);
    if (!link || !(await edge.store.home(link.homeId))) {
      const token = await edge.store.createPairing(config.domain);
      await linkToEdge(config.dataDir, kv, edge.url, token);
    } else if (link.url !== edge.url) {
      await Deno.writeTextFile(
        `${config.dataDir}/edge-link.json`,
        JSON.stringify({ ...link, url: edge.url }, null, 2) + "\n",
        { mode: 0o600 },
      );
    }
  } catch (e) {
    await edge?.close();
    throw e;
  } finally {
    kv.close();
  }
  const box = await runHome(config, args, edge);
  printConnectHelp(config, address, box.imap.port, box.imap.tlsPort, box.submission, edge);
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

function edgeDataDir(args: Args): string {
  return dataDirFrom(flag(args, "data"));
}

/**
 * `local`: "hearth up", one machine on loopback; clients are told its real ports and HTTPS is on
 * by default. Otherwise a standalone edge: clients are told the public ports.
 */
async function startEdgeFrom(args: Args, config: HearthConfig, local = false): Promise<Edge> {
  const smtp = flag(args, "smtp-port");
  const https = flag(args, "https-port");
  // "hearth edge" serves HTTPS only when asked: several edges often share one machine in tests.
  const httpsPort = https === "off"
    ? null
    : portFlag(args, "https-port") ?? (local ? config.edgeHttpsPort : null);
  const ports = local
    ? {
      imap: config.imapsPort,
      imapStarttls: config.imapPort,
      submission: config.submissionsPort ?? publicPorts.submissions,
      submissionStarttls: config.submissionPort,
    }
    : {
      imap: publicPorts.imaps,
      imapStarttls: publicPorts.imap,
      submission: publicPorts.submissions,
      submissionStarttls: publicPorts.submission,
    };
  const days = flag(args, "retention-days");
  if (days !== undefined && !(Number(days) > 0)) {
    throw new UsageError("--retention-days must be a positive number of days");
  }
  const { SystemResolver } = await import("./src/dns.ts");
  const acmeDirectory = flag(args, "acme-directory");
  const acmeCa = flag(args, "acme-ca");
  const acme = acmeDirectory
    ? {
      directoryUrl: acmeDirectory,
      email: flag(args, "acme-email"),
      names: (flag(args, "public-name") ?? config.edgeHostname).split(",").map((n) => n.trim())
        .filter(Boolean),
      directoryCaPem: acmeCa ? await Deno.readTextFile(acmeCa) : undefined,
    }
    : undefined;
  if (!acmeDirectory && (flag(args, "acme-email") || flag(args, "public-name") || acmeCa)) {
    throw new UsageError("--acme-email, --public-name and --acme-ca need --acme-directory URL");
  }
  return await startEdge({
    dataDir: config.dataDir,
    kv: flag(args, "kv"),
    hostname: config.hostname,
    listen: config.listen,
    httpPort: portFlag(args, "http-port") ?? config.edgeHttpPort,
    httpsPort,
    mailClients: {
      imap: { host: config.mailHostname, tlsPort: ports.imap, starttlsPort: ports.imapStarttls },
      submission: {
        host: config.mailHostname,
        tlsPort: ports.submission,
        starttlsPort: ports.submissionStarttls,
      },
    },
    mtaSts: { mode: config.mtaStsMode },
    smtpPort: smtp === "off" ? null : portFlag(args, "smtp-port") ?? config.edgeSmtpPort,
    resolver: new SystemResolver(),
    retentionMs: days ? Number(days) * 24 * 3600_000 : undefined,
    acme,
  });
}

async function cmdEdge(args: Args, sub: string | undefined) {
  if (sub === "add-home") {
    const domain = flag(args, "domain");
    if (!domain) throw new UsageError("usage: hearth edge add-home --domain DOMAIN");
    const store = await openEdgeStore(edgeDataDir(args), flag(args, "kv"));
    try {
      const token = await store.createPairing(domain);
      console.log(`Pairing token for ${domain} (valid 24 hours, usable once):

  ${token}

On the home box, run: hearth home link EDGE_URL ${token}`);
    } finally {
      store.kv.close();
    }
    return;
  }
  if (sub === "add-front") {
    const name = flag(args, "name");
    if (!name) throw new UsageError("usage: hearth edge add-front --name NAME");
    const store = await openEdgeStore(edgeDataDir(args), flag(args, "kv"));
    try {
      const token = await store.createFrontToken(name);
      console.log(`Bearer token for the HTTP mail front "${name}" (shown once):

  ${token}

It posts mail with: Authorization: Bearer TOKEN to POST /v1/inbound`);
    } finally {
      store.kv.close();
    }
    return;
  }
  if (sub === "status") {
    const store = await openEdgeStore(edgeDataDir(args), flag(args, "kv"));
    try {
      const homes = await store.status();
      if (flag(args, "format") === "json") {
        console.log(JSON.stringify(homes, null, 2));
        return;
      }
      if (!homes.length) console.log("No home box is linked yet (hearth edge add-home).");
      for (const h of homes) {
        const oldest = h.oldest ? `, oldest ${new Date(h.oldest).toISOString()}` : "";
        console.log(
          `${h.homeId} (${h.domains.join(", ")}): ${h.accounts} accounts; ` +
            `${h.waiting} messages waiting (${h.bytes} bytes sealed)${oldest}`,
        );
      }
    } finally {
      store.kv.close();
    }
    return;
  }
  if (sub !== undefined && sub !== "run") {
    throw new UsageError(`unknown edge command "${sub}"; see hearth --help`);
  }
  const config = await configFrom(args);
  const edge = await startEdgeFrom(args, config);
  startHeaderWorker();
  const stop = async () => {
    await edge.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  console.log(
    `Hearth edge running: SMTP ${edge.smtpPort ?? "off"}, HTTP ${edge.url}` +
      (edge.httpsPort ? `, HTTPS port ${edge.httpsPort} ` : " ") +
      `(link a home box with "hearth edge add-home --domain D").`,
  );
}

async function cmdPhone(args: Args, sub: string | undefined, rest: string[]) {
  if (sub === "pair") {
    const address = rest[0];
    if (!address) throw new UsageError("usage: hearth phone pair ADDRESS [--password-stdin]");
    const config = await configFrom(args);
    const link = await readEdgeLink(config.dataDir);
    if (!link) {
      throw new UsageError("this home box is not linked to an edge; run hearth home link first");
    }
    const { kv } = await openStore(config);
    try {
      const password = await readPassword(args, `Password for ${address}:`);
      const { startPairing } = await import("./home/phones.ts");
      const lanUrls = flag(args, "lan-url")?.split(",").map((u) => u.trim()).filter(Boolean) ??
        config.lanUrls;
      for (const u of lanUrls) {
        if (!URL.canParse(u)) throw new UsageError(`--lan-url: ${u} is not a URL`);
      }
      const pairing = await startPairing(
        { dataDir: config.dataDir, kv, link, lanUrls },
        address,
        password,
      );
      console.log(`On the phone, run (within 10 minutes):

  hearth phone join ${pairing.code}
`);
      const device = await pairing.done;
      console.log(`Paired ${device} with ${address}.`);
    } finally {
      kv.close();
    }
    return;
  }
  const { runPhoneCommand } = await import("./sync/phone/cli.ts");
  await runPhoneCommand(sub, rest, {
    data: flag(args, "data") ?? "./hearth-phone",
    text: flag(args, "text"),
    wait: flag(args, "wait"),
    stdin: Deno.stdin.readable,
  });
}

async function cmdHomeLink(args: Args, url: string | undefined, token: string | undefined) {
  if (!url || !token) throw new UsageError("usage: hearth home link EDGE_URL TOKEN");
  const config = await configFrom(args);
  const { kv } = await openStore(config);
  try {
    const link = await linkToEdge(config.dataDir, kv, url, token);
    console.log(
      `Linked to the edge at ${link.url} for ${link.domain}. ` +
        `"hearth home" now fetches the mail the edge receives.`,
    );
  } finally {
    kv.close();
  }
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
    case "doctor":
      return await cmdDoctor(args);
    case "status":
      return await cmdStatus(args);
    case "queue":
      return await runQueueCommand(await configFrom(args), {
        action: sub,
        id: arg,
        all: args.flags.has("all"),
        format: flag(args, "format"),
      });
    case "import":
      return await runImportCommand(await configFrom(args), {
        url: sub,
        to: flag(args, "to"),
        dryRun: args.flags.has("dry-run"),
        passwordStdin: args.flags.has("password-stdin"),
        ca: flag(args, "ca"),
        progressEvery: flag(args, "progress-every"),
      });
    case "up":
      return await cmdUp(args);
    case "home":
      if (sub === "link") return await cmdHomeLink(args, arg, args.positional[3]);
      if (sub !== undefined) {
        throw new UsageError(`unknown home command "${sub}"; see hearth --help`);
      }
      return await cmdHome(args);
    case "phone":
      return await cmdPhone(args, sub, args.positional.slice(2));
    case "friend":
      return await runFriendCommand(await configFrom(args), {
        action: sub,
        name: flag(args, "name"),
        quota: flag(args, "quota"),
        url: flag(args, "url"),
        relay: args.flags.has("relay"),
      });
    case "backup":
      return await runBackupCommand(await configFrom(args), {
        action: sub,
        arg,
        peer: flag(args, "peer"),
        keepFrom: flag(args, "keep-from"),
        all: args.flags.has("all"),
      });
    case "restore": {
      const keyFile = flag(args, "recovery-key-file");
      return await runRestoreCommand(await configFrom(args), {
        from: flag(args, "from") ?? sub,
        recoveryKey: keyFile ? await Deno.readTextFile(keyFile) : undefined,
        password: args.flags.has("password-stdin")
          ? await readPassword(args, "Account password: ")
          : undefined,
        minSeq: flag(args, "min-seq"),
        homeKey: flag(args, "home-key"),
      });
    }
    case "edge":
      return await cmdEdge(args, sub);
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
