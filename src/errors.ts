/**
 * Typed errors at protocol boundaries. A {@linkcode ProtocolError} carries what
 * the wire needs (IMAP response code, SMTP reply and enhanced code); the
 * server turns it into `NO`/`BAD`/`5xx` in exactly one place, so internals
 * never leak to the wire.
 *
 * @example
 * ```ts
 * throw new ProtocolError("NO", "Mailbox does not exist", { imapCode: "NONEXISTENT" });
 * ```
 */
export class ProtocolError extends Error {
  /** IMAP status: `NO` for a refused request, `BAD` for a malformed one. */
  readonly status: "NO" | "BAD";
  /** IMAP response code such as `TRYCREATE`, `NONEXISTENT`, `OVERQUOTA`. */
  readonly imapCode?: string;
  /** SMTP reply code and enhanced status code (RFC 3463). */
  readonly smtp?: { code: number; enhanced: string };
  /** HTTP status for the HTTP APIs (edge, home HTTP); 400 when unset. */
  readonly http?: number;
  /** True when the client caused it (bad syntax, unknown mailbox); false for server faults. */
  readonly userFault: boolean;

  constructor(
    status: "NO" | "BAD",
    text: string,
    opts: {
      imapCode?: string;
      smtp?: { code: number; enhanced: string };
      http?: number;
      userFault?: boolean;
      /** The underlying failure (a full disk is recognised through it: {@linkcode isDiskFull}). */
      cause?: unknown;
    } = {},
  ) {
    super(text, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "ProtocolError";
    this.status = status;
    this.imapCode = opts.imapCode;
    this.smtp = opts.smtp;
    this.http = opts.http;
    this.userFault = opts.userFault ?? true;
  }
}

/** A command line could not be parsed; `BAD` on the wire. */
export function badSyntax(text: string): ProtocolError {
  return new ProtocolError("BAD", text);
}

/** A well-formed request that cannot be carried out; `NO` on the wire. */
export function refused(text: string, imapCode?: string): ProtocolError {
  return new ProtocolError("NO", text, { imapCode });
}

/** A user-facing failure of the `hearth` command: printed as one sentence, no stack trace. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/**
 * True when an error says the disk (or the KV database on it) is full: the
 * operating system's ENOSPC or SQLite's SQLITE_FULL. Servers answer it as a
 * temporary failure (SMTP `452 4.3.1`, IMAP `NO [OVERQUOTA]`).
 */
/**
 * Whether `e` (or its cause) is an input/output error of the disk (EIO, a read-only file system,
 * SQLite's I/O error) or a full disk: a temporary failure of the storage, not a bug.
 */
export function isIoError(e: unknown): boolean {
  if (isDiskFull(e)) return true;
  for (let x = e, depth = 0; x && depth < 5; x = (x as { cause?: unknown }).cause, depth++) {
    const code = (x as { code?: unknown }).code;
    if (code === "EIO" || code === "EROFS" || code === "EDQUOT") return true;
    const text = String((x as { message?: unknown }).message ?? x);
    if (/Input\/output error|os error (5|30|122)\b|disk I\/O error|SQLITE_IOERR/i.test(text)) {
      return true;
    }
  }
  return false;
}

export function isDiskFull(e: unknown): boolean {
  for (let x = e, depth = 0; x && depth < 5; x = (x as { cause?: unknown }).cause, depth++) {
    if ((x as { code?: unknown }).code === "ENOSPC") return true;
    const text = String((x as { message?: unknown }).message ?? x);
    if (/No space left on device|os error 28|database or disk is full|SQLITE_FULL/i.test(text)) {
      return true;
    }
  }
  return false;
}
