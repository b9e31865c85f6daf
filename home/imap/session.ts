/**
 * One IMAP connection's session: the state machine of RFC 9051 §3, the
 * command legality table checked before dispatch, and the one place where a
 * {@linkcode ProtocolError} becomes a tagged `NO`/`BAD`.
 */
import { isDiskFull, isIoError, ProtocolError } from "../../src/errors.ts";
import { limits } from "../../src/limits.ts";
import { log } from "../../src/log.ts";
import type { Command, TaggedCommand } from "./ast.ts";
import { ResponseWriter } from "./encoder.ts";
import type { Frame } from "./framing.ts";
import { parseCommand } from "./parser.ts";
import type { SelectedView } from "./selected.ts";
import type { AccountRegistry } from "../store/accounts.ts";
import type { AccountStore, ChangeEvent } from "../store/account_store.ts";
import { commandTable } from "./commands/table.ts";

export type SessionState = "notauth" | "auth" | "selected" | "logout";

/** What a session needs from the box around it. */
export interface SessionContext {
  registry: AccountRegistry;
  hostname: string;
  /** True when this server can start TLS (a certificate is configured). */
  tlsAvailable: boolean;
  /** Allow LOGIN/AUTHENTICATE without TLS (tests and loopback-only setups). */
  allowPlaintextAuth: boolean;
}

/** What the connection provides to a session. */
export interface SessionIo {
  /** Writes bytes; resolves when the socket accepted them (backpressure). */
  write(chunks: Uint8Array[]): Promise<void>;
  /** Upgrades to TLS after the tagged OK of STARTTLS has been written. */
  startTls(): Promise<void>;
  /** Switches the framer to deliver the next line raw (IDLE's DONE, SASL responses). */
  readRawLine(): Promise<Uint8Array | null>;
  close(): void;
  readonly remoteAddress: string;
  readonly secure: boolean;
}

/** The result of a handler: the tagged OK's response code and text. */
export interface Completion {
  code?: string;
  text?: string;
  /** False when the handler wrote its tagged response itself (STARTTLS). */
  tagged?: false;
}

let sessionCounter = 0;

export class Session {
  readonly id = ++sessionCounter;
  readonly ctx: SessionContext;
  readonly io: SessionIo;
  readonly w = new ResponseWriter();
  state: SessionState = "notauth";
  store: AccountStore | null = null;
  selected: SelectedView | null = null;
  /** ENABLEd extensions (RFC 5161): CONDSTORE, QRESYNC, UTF8=ACCEPT, IMAP4REV2. */
  readonly enabled = new Set<string>();
  /** Set by any command that uses CONDSTORE features (RFC 7162 §3.1: implicit enable). */
  condstore = false;
  authFailures = 0;
  badCommands = 0;
  commands = 0;
  #unsubscribe: (() => void) | null = null;
  /** An IDLE in progress wakes up through this. */
  onChange: (() => void) | null = null;

  constructor(ctx: SessionContext, io: SessionIo) {
    this.ctx = ctx;
    this.io = io;
  }

  get rev2(): boolean {
    return this.enabled.has("IMAP4REV2");
  }

  get utf8(): boolean {
    return this.enabled.has("IMAP4REV2") || this.enabled.has("UTF8=ACCEPT");
  }

  get qresync(): boolean {
    return this.enabled.has("QRESYNC");
  }

  /** The greeting (RFC 9051 §7.1.1). */
  async greet() {
    this.w.status("*", "OK", "Hearth IMAP ready", `CAPABILITY ${this.capabilities().join(" ")}`);
    await this.flushOutput();
  }

  /** CAPABILITY list for the current state (RFC 9051 §7.2.2). */
  capabilities(): string[] {
    const caps = ["IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE"];
    if (this.state === "notauth") {
      if (this.ctx.tlsAvailable && !this.io.secure) caps.push("STARTTLS");
      if (this.io.secure || this.ctx.allowPlaintextAuth) caps.push("AUTH=PLAIN");
      else caps.push("LOGINDISABLED");
      return caps;
    }
    return [
      ...caps,
      "NAMESPACE",
      "UNSELECT",
      "UIDPLUS",
      "MOVE",
      "CHILDREN",
      "LIST-EXTENDED",
      "LIST-STATUS",
      "SPECIAL-USE",
      "CREATE-SPECIAL-USE",
      "STATUS=SIZE",
      "MULTIAPPEND",
      "BINARY",
      "UTF8=ACCEPT",
      "ESEARCH",
      "SEARCHRES",
      "CONDSTORE",
      "QRESYNC",
      "SORT",
      "SORT=DISPLAY",
      "THREAD=REFERENCES",
      "THREAD=ORDEREDSUBJECT",
      "WITHIN",
      "SAVEDATE",
      `APPENDLIMIT=${limits.messageBytes}`,
    ];
  }

  /** Sends buffered responses. */
  async flushOutput() {
    if (this.w.byteLength) await this.io.write(this.w.take());
  }

  /** Writes responses in the middle of a long answer once enough has piled up. */
  async maybeFlush() {
    if (this.w.byteLength > 256 * 1024) await this.flushOutput();
  }

  /** Runs one framed command. Returns false when the connection must close. */
  async handleFrame(frame: Frame): Promise<boolean> {
    let tagged: TaggedCommand;
    try {
      tagged = parseCommand(frame, { utf8: this.utf8 });
    } catch (e) {
      const tag = (e as { tag?: string }).tag ?? "*";
      if (e instanceof ProtocolError && e.status === "NO") {
        this.w.status(tag, "NO", e.message, e.imapCode);
        await this.flushOutput();
        return true;
      }
      const text = e instanceof ProtocolError ? e.message : "Syntax error";
      this.w.status(tag, "BAD", text, e instanceof ProtocolError ? e.imapCode : undefined);
      await this.flushOutput();
      return this.#countBad();
    }
    return await this.run(tagged);
  }

  #countBad(): boolean {
    this.badCommands++;
    if (this.badCommands >= limits.imapBadCommandsPerConnection) {
      this.w.status("*", "BYE", "Too many invalid commands");
      return false;
    }
    return true;
  }

  /** Runs a parsed command: legality check, handler, pending updates, tagged response. */
  async run({ tag, command }: TaggedCommand): Promise<boolean> {
    this.commands++;
    const spec = commandTable[command.name];
    if (!spec || !spec.states.includes(this.state)) {
      const text = this.state === "notauth"
        ? `${command.name} needs you to log in first`
        : this.state === "auth" && spec?.states.includes("selected")
        ? `${command.name} needs a selected mailbox (SELECT one first)`
        : `${command.name} is not allowed now`;
      this.w.status(tag, "BAD", text);
      await this.flushOutput();
      return this.#countBad();
    }
    let completion: Completion | void;
    try {
      // Mail that had its 250 is indexed a moment later (home/store/journal.ts): a command sees it.
      if (this.store) await this.ctx.registry.journal?.indexed(this.store.id);
      completion = await spec.handler(this, tag, command as never);
    } catch (e) {
      if (e instanceof ProtocolError) {
        this.#flushUpdates(command);
        if (e.imapCode === "UNAVAILABLE" && isDiskFull(e)) {
          this.w.tagged(tag, "NO", "The server's disk is full; try again later", "OVERQUOTA");
          await this.flushOutput();
          return true;
        }
        this.w.tagged(tag, e.status, e.message, e.imapCode);
        await this.flushOutput();
        if (e.status === "BAD") return this.#countBad();
        return this.state !== "logout";
      }
      log.error("imap.command-failed", { command: command.name, error: e });
      if (isDiskFull(e)) {
        // Nothing was stored; the client may retry once the box has room again.
        this.w.tagged(tag, "NO", "The server's disk is full; try again later", "OVERQUOTA");
      } else if (isIoError(e)) {
        // RFC 5530 §3: a subsystem (the disk) failed for now; nothing was stored.
        this.w.tagged(
          tag,
          "NO",
          "The server could not save the data (a disk error); try again later",
          "UNAVAILABLE",
        );
      } else {
        this.w.tagged(
          tag,
          "NO",
          "Internal server error; the command was not completed",
          "SERVERBUG",
        );
      }
      await this.flushOutput();
      return true;
    }
    this.badCommands = 0;
    if (completion?.tagged === false) return true;
    if (this.state === "logout") {
      this.w.tagged(tag, "OK", completion?.text ?? "LOGOUT completed");
      await this.flushOutput();
      return false;
    }
    this.#flushUpdates(command);
    this.w.tagged(tag, "OK", completion?.text ?? `${command.name} completed`, completion?.code);
    await this.flushOutput();
    return true;
  }

  #flushUpdates(command: Command) {
    if (!this.selected) return;
    const noExpunge = (command.name === "FETCH" || command.name === "STORE" ||
      command.name === "SEARCH" || command.name === "SORT" || command.name === "THREAD") &&
      !command.uid;
    this.selected.flush(this.w, {
      allowExpunge: !noExpunge,
      qresync: this.qresync,
      condstore: this.condstore || this.qresync,
      rev2: this.rev2,
    });
  }

  /** Sends pending updates outside a command (IDLE). */
  flushIdleUpdates() {
    this.selected?.flush(this.w, {
      allowExpunge: true,
      qresync: this.qresync,
      condstore: this.condstore || this.qresync,
      rev2: this.rev2,
    });
  }

  /** Binds the session to an unlocked account after login. */
  attach(store: AccountStore) {
    this.store = store;
    this.state = "auth";
    this.#unsubscribe = store.subscribe((events: ChangeEvent[]) => {
      this.selected?.note(events, this.id);
      if (events.some((e) => e.kind === "mailboxes") && this.selected) {
        if (!store.state.mailboxes.has(this.selected.mailbox.id)) this.selected.gone = true;
      }
      this.onChange?.();
    });
  }

  /** Ends the session: unsubscribes and releases the account. */
  close() {
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    if (this.store) this.ctx.registry.release(this.store);
    this.store = null;
    this.selected = null;
    this.state = "logout";
  }

  /** The selected view; commands in the table only run when there is one. */
  view(): SelectedView {
    if (!this.selected) throw new ProtocolError("BAD", "No mailbox selected");
    return this.selected;
  }

  /** The account store; commands in the table only run when there is one. */
  account(): AccountStore {
    if (!this.store) throw new ProtocolError("BAD", "Not logged in");
    return this.store;
  }
}
