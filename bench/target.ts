/** What the benchmark needs to know about a server under test. */
export interface BenchTarget {
  /** Short name used in the results table ("hearth", "dovecot"). */
  name: string;
  host: string;
  port: number;
  user: string;
  password: string;
  /** Process id of the server, for resident-memory readings from /proc. */
  pid: number;
  /** How to secure the connection before LOGIN (default "none"). */
  tls?: "none" | "starttls" | "implicit";
  /** PEM CA certificates to trust when tls is not "none". */
  caCerts?: string[];
  /** Name to verify in the server certificate (default: host). */
  serverName?: string;
  /** Version string shown in the report. */
  version?: string;
}

/** A started server: its target and how to stop it (idempotent). */
export interface RunningTarget {
  target: BenchTarget;
  stop: () => Promise<void>;
  /** Restarts the server process on the same data, if the target supports it. */
  restart?: () => Promise<void>;
  /** Port of the server's MX (inbound SMTP for local accounts), when it has one. */
  mxPort?: number;
  /** Directory holding the server's data, for reporting its size on disk. */
  dataDir?: string;
}
