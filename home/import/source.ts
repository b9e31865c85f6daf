/**
 * The provider `hearth import` copies from: its URL, the IMAP connection
 * (imapflow), and the folders to copy with the Hearth folder each maps onto.
 *
 * @example
 * ```ts
 * const url = parseSourceUrl("imaps://me@imap.example.org");
 * const client = await connectSource(url, "secret", {});
 * const folders = await listSourceFolders(client);
 * await client.logout();
 * ```
 */
import { ImapFlow } from "imapflow";
import { UsageError } from "../../src/errors.ts";
import { defaultMailboxes } from "../store/accounts.ts";

/** Where to import from: `imaps://USER@HOST[:PORT]` (TLS) or `imap://…` (STARTTLS). */
export interface SourceUrl {
  tls: "implicit" | "starttls";
  host: string;
  port: number;
  user: string;
  /** A password given in the URL (discouraged: it lands in the shell history). */
  password?: string;
  /** `host:port/user`: what the resume records are keyed by (the scheme does not matter). */
  id: string;
}

/** Parses the source URL; a clear UsageError for anything else. */
export function parseSourceUrl(text: string): SourceUrl {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`"${text}" is not a URL like imaps://you@imap.example.org`);
  }
  const tls = url.protocol === "imaps:" ? "implicit" : url.protocol === "imap:" ? "starttls" : null;
  if (!tls) {
    throw new UsageError(
      `the source must be an imaps:// or imap:// URL, like imaps://you@imap.example.org`,
    );
  }
  const user = decodeURIComponent(url.username);
  if (!user) {
    throw new UsageError(`the source URL needs a user name: imaps://USER@${url.hostname}`);
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = url.port ? Number(url.port) : tls === "implicit" ? 993 : 143;
  return {
    tls,
    host,
    port,
    user,
    password: url.password ? decodeURIComponent(url.password) : undefined,
    id: `${host.toLowerCase()}:${port}/${user}`,
  };
}

/** Connection options beyond the URL. */
export interface SourceOptions {
  /** PEM CA certificates to trust besides the system's (a private CA). */
  ca?: string;
}

/**
 * Connects and logs in. Failures become sentences that say what to do
 * (wrong password, unreachable host, certificate not trusted).
 */
export async function connectSource(
  url: SourceUrl,
  password: string,
  opts: SourceOptions,
): Promise<ImapFlow> {
  const client = new ImapFlow({
    host: url.host,
    port: url.port,
    secure: url.tls === "implicit",
    doSTARTTLS: url.tls === "starttls" ? true : undefined,
    auth: { user: url.user, pass: password },
    // SNI takes a host name only; an IP address is still checked against the certificate.
    tls: {
      ...(opts.ca ? { ca: [opts.ca] } : {}),
      ...(isIpAddress(url.host) ? {} : { servername: url.host }),
    },
    logger: false,
    disableAutoIdle: true,
    // A big mailbox's FETCH can take a while; the default socket timeout is meant for idling.
    socketTimeout: 10 * 60_000,
  });
  // imapflow reports late socket errors as events; an unhandled "error" would end the process.
  client.on("error", () => {});
  try {
    await client.connect();
  } catch (e) {
    throw new UsageError(explainConnectError(url, e));
  }
  return client;
}

function isIpAddress(host: string): boolean {
  return /^\d+\.\d+\.\d+\.\d+$/.test(host) || host.includes(":");
}

function explainConnectError(url: SourceUrl, e: unknown): string {
  const err = e as {
    code?: string;
    authenticationFailed?: boolean;
    responseText?: string;
    message?: string;
  };
  const where = `${url.host}:${url.port}`;
  if (err.authenticationFailed || err.code === "AUTHENTICATIONFAILED") {
    return `${where} refused the login of ${url.user}: check the user name and the source password` +
      (err.responseText ? ` (the server said: ${err.responseText})` : "");
  }
  const code = err.code ?? "";
  if (code === "ECONNREFUSED") {
    return `nothing answers on ${where}: check the host and port (imaps:// defaults to 993)`;
  }
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") {
    return `the host ${url.host} is unknown: check the source URL`;
  }
  if (code === "ETIMEDOUT" || code === "ETIMEOUT" || code === "CONNECT_TIMEOUT") {
    return `${where} did not answer in time: check the host, the port and your network`;
  }
  if (/cert|self.signed|verify|SSL|TLS/i.test(`${code} ${err.message}`)) {
    return `the TLS connection to ${where} failed (${err.message ?? code}); ` +
      `if the server uses a private CA, pass it with --ca FILE`;
  }
  return `could not connect to ${where}: ${err.responseText ?? err.message ?? String(e)}`;
}

/** A source folder and the Hearth folder it goes to. */
export interface SourceFolder {
  /** The path on the source, as imapflow names it. */
  path: string;
  /** The Hearth folder name ("/" delimited). */
  target: string;
  /** RFC 6154 use (from the server, or guessed by imapflow from a well-known name). */
  specialUse: string | null;
}

/** Hearth's own folders for these RFC 6154 uses (home/store/accounts.ts defaultMailboxes). */
export const mappedUses = new Set(["\\Sent", "\\Drafts", "\\Trash", "\\Junk", "\\Archive"]);
/** Virtual folders whose messages are all in other folders too: copying them duplicates. */
const virtualUses = new Set(["\\All", "\\Flagged"]);

/**
 * Lists the folders to copy, INBOX first. \Noselect containers are skipped
 * (their children are listed on their own); so are the virtual \All and
 * \Flagged folders (Gmail's "All Mail" holds every other folder's messages).
 */
export async function listSourceFolders(client: ImapFlow): Promise<SourceFolder[]> {
  const listed = await client.list();
  const prefix = client.namespaces?.personal?.[0]?.prefix ?? "";
  const out: SourceFolder[] = [];
  for (const box of listed) {
    const flags = new Set([...box.flags].map((f) => f.toLowerCase()));
    if (flags.has("\\noselect") || flags.has("\\nonexistent")) continue;
    const use = box.specialUse ?? null;
    if (use && virtualUses.has(use)) continue;
    // A special-use folder goes to Hearth's folder with that use (the import looks it up by
    // use; this default name is what a dry run shows, and what is created if it was deleted).
    const hearthFolder = use && mappedUses.has(use)
      ? defaultMailboxes.find(([, u]) => u === use)?.[0]
      : undefined;
    out.push({
      path: box.path,
      target: hearthFolder ?? targetName(box.path, box.delimiter, prefix),
      specialUse: use,
    });
  }
  out.sort((a, b) =>
    a.target === "INBOX" ? -1 : b.target === "INBOX" ? 1 : a.target.localeCompare(b.target)
  );
  return out;
}

/**
 * The Hearth name of a source folder: the personal namespace prefix (Courier's
 * "INBOX.") dropped, the hierarchy delimiter turned into Hearth's "/" (a "/"
 * inside a level becomes "_"), INBOX in any case as INBOX.
 */
export function targetName(path: string, delimiter: string | undefined, prefix: string): string {
  if (path.toUpperCase() === "INBOX") return "INBOX";
  let rest = path;
  if (prefix && rest.startsWith(prefix) && rest.length > prefix.length) {
    rest = rest.slice(prefix.length);
  }
  const levels = delimiter ? rest.split(delimiter) : [rest];
  // deno-lint-ignore no-control-regex
  const clean = levels.map((l) => l.replaceAll("/", "_").replace(/[\x00-\x1f\x7f*%]/g, "_"));
  const name = clean.filter((l) => l !== "").join("/");
  return name.toUpperCase() === "INBOX" ? "INBOX" : name || "Imported";
}
