/**
 * Every limit Hearth enforces, in one place, so that parsers, framers and
 * servers cannot drift apart. Units are in the names.
 */
export const limits = {
  /** Longest IMAP command line, excluding literals (RFC 7162 §4 asks for at least 8192). */
  imapLineBytes: 64 * 1024,
  /** Largest literal in a command other than APPEND. */
  imapLiteralBytes: 64 * 1024,
  /** Total bytes of one IMAP command other than APPEND: its lines plus its literals. */
  imapCommandBytes: 8 * 1024 * 1024,
  /** Number of literals in one command. */
  imapLiteralsPerCommand: 1000,
  /** Nesting depth of parenthesised lists in one command. */
  imapNestingDepth: 32,
  /** Largest message accepted by APPEND, SMTP and the edge (advertised as SMTP SIZE, RFC 1870). */
  messageBytes: 50 * 1024 * 1024,
  /** Sealed blobs up to this size are staged in KV with their record (docs/store.md). */
  stagedBlobBytes: 256 * 1024,
  /**
   * Journaled deliveries waiting to be indexed beyond which a delivery waits for its own
   * indexing before its `250` (home/store/journal.ts).
   */
  journalBacklogBytes: 16 * 1024 * 1024,
  /** Staged bytes in KV beyond which the spiller runs without waiting for a quiet moment. */
  stagedSpillBytes: 32 * 1024 * 1024,
  /**
   * Delivered messages kept per unlocked account until a quiet moment makes their search texts;
   * past this, the oldest are made at once (docs/store.md). As much as the plaintext cache.
   */
  pendingSearchTextBytes: 32 * 1024 * 1024,
  /** Total bytes of one MULTIAPPEND command. */
  imapMultiAppendBytes: 200 * 1024 * 1024,
  /** Commands a connection may send before it is closed. */
  imapCommandsPerConnection: 1_000_000,
  /** Consecutive BAD commands before the server says BYE. */
  imapBadCommandsPerConnection: 20,
  /** Failed logins on one connection before BYE. */
  imapAuthFailuresPerConnection: 5,
  /** Failed logins per account (or per client address) per window before login is refused. */
  authFailuresPerWindow: 10,
  authFailureWindowMs: 15 * 60 * 1000,
  /** Open IMAP connections from one IP address. */
  imapConnectionsPerIp: 200,
  /** All open IMAP connections. */
  imapConnections: 5000,
  /** Idle timeout before login (RFC 9051 §5.4 asks for at least 30 min after login). */
  imapPreAuthIdleMs: 60 * 1000,
  imapIdleMs: 30 * 60 * 1000,
  /**
   * Slow input (slowloris), IMAP and SMTP: while a line is incomplete, at least this many bytes
   * must arrive per window, or the connection is closed (the idle timeouts restart at every byte).
   */
  slowInputMinBytes: 256,
  slowInputWindowMs: 60 * 1000,
  /** Bytes of responses queued for a client that does not read before it is dropped. */
  imapOutputBufferBytes: 64 * 1024 * 1024,
  /** Bytes queued for a client before answering pauses until it reads. */
  imapWriteQueueBytes: 1024 * 1024,
  /** Length of one mailbox name in bytes, and hierarchy depth. */
  mailboxNameBytes: 1024,
  mailboxDepth: 64,
  /** Mailboxes per account. */
  mailboxesPerAccount: 10_000,
  /** Keywords per mailbox (PERMANENTFLAGS stays bounded). */
  keywordsPerMailbox: 256,
  /** Longest wait for one DNS answer (SPF, DKIM, DMARC, MX lookups). */
  dnsTimeoutMs: 5_000,
  /** Decrypted messages kept in memory per unlocked account (FETCH BODY[] of recent mail). */
  messageCacheBytes: 32 * 1024 * 1024,
  /** Pre-encoded ENVELOPE/BODYSTRUCTURE and light headers kept per unlocked account. */
  metaCacheBytes: 48 * 1024 * 1024,
  /** How long an unlocked account identity stays in memory after its last session ends. */
  unlockedIdleMs: 5 * 60 * 1000,
  /** Recipients of one SMTP transaction (RFC 5321 §4.5.3.1.8 asks for at least 100). */
  smtpRecipients: 100,
  /** Open SMTP connections on one listener. */
  smtpConnections: 1000,
  /** Failed AUTH attempts on one submission connection before it is closed with 421. */
  smtpAuthFailuresPerConnection: 3,
  /** Open SMTP connections from one IP address (MX and submission each). */
  smtpConnectionsPerIp: 50,
  /** Idle time before an SMTP connection is closed (RFC 5321 §4.5.3.2.7: at least 5 minutes). */
  smtpIdleMs: 5 * 60 * 1000,
  /** Commands before authentication on submission (EHLO, STARTTLS, AUTH, NOOP …). */
  smtpUnauthenticatedCommands: 20,
  /** On shutdown, how long open SMTP sessions may finish their transaction before they are cut. */
  smtpCloseGraceMs: 5 * 1000,
  /** Outbound queue: first retry delay, doubling per attempt up to the cap (RFC 5321 §4.5.4.1). */
  queueRetryBaseMs: 5 * 60 * 1000,
  queueRetryMaxMs: 4 * 60 * 60 * 1000,
  /** Outbound queue: give up and bounce after this long (RFC 5321 §4.5.4.1: 4-5 days). */
  queueMaxAgeMs: 5 * 24 * 60 * 60 * 1000,
  /** Queue items delivered at once per run, and SMTP connection/command timeouts. */
  queueConcurrency: 8,
  queueConnectTimeoutMs: 30 * 1000,
  queueSocketTimeoutMs: 5 * 60 * 1000,
  /** Edge: how long an item the home box has not acked is kept (`hearth edge --retention-days`). */
  edgeRetentionMs: 14 * 24 * 60 * 60 * 1000,
  /** Edge: a home box's long-poll waits at most this long before an empty answer. */
  edgeLongPollMs: 30 * 1000,
  /** Edge: how often a waiting long-poll re-reads KV (other edge processes' writes are not signalled). */
  edgeLongPollRecheckMs: 500,
  /** Edge: items per pull answer, and the sealed bytes sent inline in one answer. */
  edgePullItems: 100,
  edgePullInlineBytes: 4 * 1024 * 1024,
  /** Edge: a pairing token from `hearth edge add-home` is valid this long. */
  edgePairingMs: 24 * 60 * 60 * 1000,
  /** Edge: recipients one home may send to through the relay per hour. */
  edgeOutboundPerHour: 2000,
  /** Edge: bytes of inbound HTTP messages being sealed at once (beyond it, 503 and retry). */
  edgeInboundBytesInFlight: 256 * 1024 * 1024,
  /** How long a phone's pairing hello waits at the edge for its home box. */
  pairingBoxMs: 10 * 60 * 1000,
  /** Edge relay: largest sync envelope (one KV value), and envelopes one mailbox may hold. */
  relayEnvelopeBytes: 60 * 1024,
  relayMailboxItems: 10_000,
  /** Edge backup relay (docs/backup.md, "Through the edge"): bytes one mailbox may hold, bytes
   * of parts in one post, parts in one pull, how long a part waits unread, slots a home may open,
   * keys that may claim one slot (the home, and restores on new machines). */
  backupRelayMailboxBytes: 48 * 1024 * 1024,
  backupRelayPostBytes: 1024 * 1024,
  backupRelayPullItems: 200,
  backupRelayItemMs: 15 * 60 * 1000,
  backupRelaySlotsPerHome: 64,
  backupRelayGuestsPerSlot: 8,
  /** How long a home box waits for the friend's box to answer a request through the edge. */
  backupRelayAnswerMs: 2 * 60 * 1000,
  /** Phone summaries (docs/sync.md): characters of text in a snippet; summaries sent per
   * mailbox at once, newest first (older ones on demand). */
  phoneSnippetChars: 100,
  phoneSummariesPerMailbox: 200,
  /** How long `hearth phone read` waits for the home box to send a body it does not hold. */
  phoneBodyWaitMs: 15 * 1000,
  /** Phone sync on the LAN (docs/sync.md, "On the LAN"): the largest request the home box's
   * HTTP port reads (a Sent copy of the largest message, in parts, and the sync envelopes);
   * exchanges in progress at once; requests and refused requests per client address a minute;
   * how far a phone's clock may be off; how long a phone waits for the home to answer before
   * it syncs through the edge (plus a second per megabyte it posts), and then for the answer. */
  lanExchangeBytes: 56 * 1024 * 1024,
  lanExchangesInFlight: 4,
  lanExchangesPerMinute: 120,
  lanRefusalsPerMinute: 10,
  lanClockSkewMs: 5 * 60 * 1000,
  lanConnectTimeoutMs: 1500,
  lanAnswerTimeoutMs: 120 * 1000,
  /** Mail arrivals for one device within this window become one Web Push (docs/push.md). */
  pushDebounceMs: 5 * 1000,
  /** Friend's box backup (docs/backup.md): largest object and manifest a host accepts. */
  backupObjectBytes: 64 * 1024 * 1024,
  backupManifestBytes: 60 * 1024,
  /** A prune request takes effect this long after it is made (a compromised home cannot rush it). */
  backupPruneGraceMs: 30 * 24 * 60 * 60 * 1000,
  /** The home box replicates to its backup peers this often (and soon after a start). */
  backupIntervalMs: 5 * 60 * 1000,
  /** Restore drills: a random sample fetched back from each peer and verified this often. */
  backupDrillIntervalMs: 24 * 60 * 60 * 1000,
} as const;
