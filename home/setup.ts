/**
 * `hearth init`: prepares a data directory for a domain. Takes its answers
 * as flags (for scripts) or asks for the missing ones on a terminal: the
 * domain, the first account and its password, whether the edge runs here or
 * on an existing edge. Makes every key and certificate. Safe to re-run: a
 * saved configuration, a key or an existing account is never replaced.
 *
 * @example
 * ```ts
 * const result = await runSetup("hearth-data", { domain: "example.org", edge: "here" }, io);
 * if (result.recoveryKey) showOnce(result.recoveryKey);
 * console.log(result.nextSteps);
 * ```
 */
import { type HearthConfig, loadConfig, readSavedConfig } from "../src/config.ts";
import { UsageError } from "../src/errors.ts";
import { initDataDir, openStore } from "./box.ts";
import { linkToEdge, readEdgeLink } from "./edge_link.ts";
import { createAccount } from "./store/accounts.ts";
import { accountExists } from "./store/deliver.ts";

export interface SetupChoices {
  domain?: string;
  /** The first account's address. */
  account?: string;
  /** `"here"` (this machine runs the edge too) or an existing edge's URL. */
  edge?: string;
  /** A pairing token from `hearth edge add-home`, to link to an existing edge now. */
  edgeToken?: string;
  edgeHostname?: string;
  mailHostname?: string;
  hostname?: string;
  /** Other configuration flags (ports, listen address), applied on first init only. */
  overrides?: Partial<HearthConfig>;
}

/** How setup talks to the operator: `ask` is null when there is no terminal to ask on. */
export interface SetupIo {
  ask: ((question: string, suggestion?: string) => string | null) | null;
  password(question: string): Promise<string>;
}

export interface SetupResult {
  config: HearthConfig;
  /** False when the data directory was initialised before (nothing was overwritten). */
  created: boolean;
  account: { address: string; created: boolean } | null;
  /** Shown once: the only copy of the first account's recovery key. */
  recoveryKey: string | null;
  /** What to do next, ready to print. */
  nextSteps: string;
}

const domainPattern =
  /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$/;

function checkDomain(domain: string): string {
  const d = domain.trim().toLowerCase().replace(/\.$/, "");
  if (!domainPattern.test(d)) throw new UsageError(`"${domain}" is not a domain name`);
  return d;
}

function checkEdge(edge: string): "here" | URL {
  if (edge === "here") return "here";
  try {
    const url = new URL(edge);
    if (url.protocol === "http:" || url.protocol === "https:") return url;
  } catch {
    // a clear sentence below
  }
  throw new UsageError(`--edge takes "here" or the edge's URL (https://…), not "${edge}"`);
}

/** Asks for `current` when it is missing and there is a terminal; else returns it as is. */
function answer(
  io: SetupIo,
  current: string | undefined,
  question: string,
  suggestion?: string,
): string | undefined {
  if (current !== undefined || !io.ask) return current;
  const given = io.ask(question, suggestion)?.trim();
  return given ? given : suggestion;
}

/** Runs `hearth init` on `dataDir` with the operator's choices. */
export async function runSetup(
  dataDir: string,
  choices: SetupChoices,
  io: SetupIo,
): Promise<SetupResult> {
  const saved = await readSavedConfig(dataDir);
  if (saved && choices.domain && saved.domain && checkDomain(choices.domain) !== saved.domain) {
    throw new UsageError(
      `${dataDir} is already set up for ${saved.domain}; use another --data directory for ${choices.domain}`,
    );
  }
  // A saved configuration answers the questions it covers: re-running asks only what is new.
  const domain = checkDomain(
    saved?.domain ??
      answer(io, choices.domain, "Mail domain (the part after @):", "hearth.localhost") ??
      "hearth.localhost",
  );
  const edge = checkEdge(
    answer(
      io,
      choices.edge ?? (saved ? "here" : undefined),
      "Run the edge relay (your MX) here, or link to an existing edge? Answer here or its URL:",
      "here",
    ) ?? "here",
  );
  const local = domain.endsWith(".localhost") || domain === "localhost";
  const edgeHostname = saved?.edgeHostname ?? answer(
    io,
    choices.edgeHostname,
    "Public host name of the edge (the MX; a name with an address record):",
    edge === "here" ? choices.hostname ?? (local ? "localhost" : `mail.${domain}`) : edge.hostname,
  );
  const account = answer(
    io,
    choices.account,
    "First account (an address at the domain; empty for none yet):",
    saved ? undefined : `me@${domain}`,
  );
  if (account !== undefined && !account.toLowerCase().endsWith(`@${domain}`)) {
    throw new UsageError(`the account ${account} is not at ${domain}; give an address @${domain}`);
  }

  const config = await loadConfig(dataDir, {
    ...choices.overrides,
    domain,
    // The edge here is this machine: its certificate and greetings carry the public name.
    hostname: choices.hostname ?? (edge === "here" ? edgeHostname : undefined),
    edgeHostname,
    mailHostname: choices.mailHostname,
  });
  const { created } = await initDataDir(config);

  let recoveryKey: string | null = null;
  let accountResult: SetupResult["account"] = null;
  if (account) {
    const { kv, blobs } = await openStore(config);
    try {
      if (await accountExists(kv, account)) {
        accountResult = { address: account, created: false };
      } else {
        const password = await io.password(`Password for ${account}:`);
        if (password.length < 8) {
          throw new UsageError("the password is shorter than 8 characters; choose a longer one");
        }
        ({ recoveryKey } = await createAccount(kv, blobs, account, password, config.scryptLogN));
        accountResult = { address: account, created: true };
      }
      if (edge !== "here" && choices.edgeToken) {
        const link = await readEdgeLink(dataDir);
        if (!link) await linkToEdge(dataDir, kv, edge.href.replace(/\/$/, ""), choices.edgeToken);
      }
    } finally {
      kv.close();
    }
  } else if (edge !== "here" && choices.edgeToken && !(await readEdgeLink(dataDir))) {
    const { kv } = await openStore(config);
    try {
      await linkToEdge(dataDir, kv, edge.href.replace(/\/$/, ""), choices.edgeToken);
    } finally {
      kv.close();
    }
  }
  const linked = edge !== "here" && (await readEdgeLink(dataDir)) !== null;
  return {
    config,
    created,
    account: accountResult,
    recoveryKey,
    nextSteps: nextSteps(config, edge, linked, accountResult?.address),
  };
}

function nextSteps(
  config: HearthConfig,
  edge: "here" | URL,
  linked: boolean,
  address: string | undefined,
): string {
  const data = ` --data ${config.dataDir}`;
  const steps: string[] = [];
  if (!address) steps.push(`Create an account:        hearth user add you@${config.domain}${data}`);
  steps.push(
    `Publish the DNS records:  hearth dns${data}   (docs/setup.md explains each value)`,
  );
  if (edge === "here") {
    steps.push(`Start Hearth:             hearth up${data}   (edge and home box in one process)`);
  } else {
    if (!linked) {
      steps.push(
        `On the edge, run:         hearth edge add-home --domain ${config.domain}`,
        `Then link this box:       hearth home link ${edge.href.replace(/\/$/, "")} TOKEN${data}`,
      );
    }
    steps.push(`Start the home box:       hearth home${data}`);
  }
  steps.push(
    `Connect a mail client:    IMAP ${config.mailHostname} port 993 (SSL/TLS), SMTP port 465 ` +
      `(SSL/TLS), user name = the full address; Thunderbird, Outlook and Apple Mail find ` +
      `these themselves once the DNS records are published.`,
  );
  return `Next:\n${steps.map((s, i) => `  ${i + 1}. ${s}`).join("\n")}`;
}
