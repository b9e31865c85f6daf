/**
 * Hearth's configuration: defaults, then `DATA/config.json` (written by
 * `hearth init`), then environment variables, then command-line flags.
 *
 * @example
 * ```ts
 * const config = await loadConfig("hearth-data", { imapPort: 3143 });
 * ```
 */
export interface HearthConfig {
  dataDir: string;
  domain: string;
  /** Host names (and addresses) in the TLS certificate and greetings. */
  hostname: string;
  /** Address every listener binds to. */
  listen: string;
  imapPort: number;
  imapsPort: number;
  /** Submission ports (STARTTLS, implicit TLS) and MX port; null turns a listener off. */
  submissionPort: number | null;
  submissionsPort: number | null;
  mxPort: number | null;
  homeHttpPort: number;
  /** The home HTTP port's URLs on the LAN, given to phones at pairing (docs/sync.md). */
  lanUrls: string[];
  edgeSmtpPort: number;
  edgeHttpPort: number;
  /** The edge's HTTPS port (autoconfig, MTA-STS policy); 443 in production. */
  edgeHttpsPort: number;
  /** The edge's public host name: the domain's MX and the MTA-STS policy's `mx`. Default: hostname. */
  edgeHostname: string;
  /** The public host name mail clients use for IMAP and submission (the home box). Default: hostname. */
  mailHostname: string;
  /** MTA-STS policy mode (RFC 8461 §5): `testing` until the operator has a public certificate. */
  mtaStsMode: "testing" | "enforce";
  /** scrypt work factor for password wrapping (age's default is 18). */
  scryptLogN: number;
}

export const defaultConfig: Omit<HearthConfig, "dataDir"> = {
  domain: "hearth.localhost",
  hostname: "localhost",
  listen: "127.0.0.1",
  imapPort: 2143,
  imapsPort: 2993,
  submissionPort: 2587,
  submissionsPort: 2465,
  mxPort: 2526,
  homeHttpPort: 8081,
  lanUrls: [],
  edgeSmtpPort: 2525,
  edgeHttpPort: 8080,
  edgeHttpsPort: 8443,
  edgeHostname: "",
  mailHostname: "",
  mtaStsMode: "testing",
  scryptLogN: 18,
};

/** The data directory: `--data`, else `HEARTH_DATA`, else `./hearth-data`. */
export function dataDirFrom(flag?: string): string {
  return flag ?? Deno.env.get("HEARTH_DATA") ?? "./hearth-data";
}

export function configPath(dataDir: string): string {
  return `${dataDir}/config.json`;
}

/** Reads the saved configuration of a data directory, or null when it has none. */
export async function readSavedConfig(dataDir: string): Promise<Partial<HearthConfig> | null> {
  try {
    return JSON.parse(await Deno.readTextFile(configPath(dataDir)));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new Error(`${configPath(dataDir)} is not valid JSON: ${(e as Error).message}`);
  }
}

/** Loads the effective configuration. */
export async function loadConfig(
  dataDir: string,
  overrides: Partial<HearthConfig> = {},
): Promise<HearthConfig> {
  const saved = (await readSavedConfig(dataDir)) ?? {};
  const env: Partial<HearthConfig> = {};
  const logN = Deno.env.get("HEARTH_SCRYPT_LOG_N");
  if (logN) env.scryptLogN = Number(logN);
  const clean = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  const merged = { ...defaultConfig, ...saved, ...env, ...clean, dataDir };
  // Empty host names follow `hostname`: one machine serving everything needs no more.
  merged.edgeHostname ||= merged.hostname;
  merged.mailHostname ||= merged.hostname;
  return merged;
}

/** Writes the configuration that `hearth init` chose. */
export async function saveConfig(config: HearthConfig) {
  const { dataDir, ...rest } = config;
  await Deno.writeTextFile(configPath(dataDir), JSON.stringify(rest, null, 2) + "\n", {
    mode: 0o600,
  });
}
