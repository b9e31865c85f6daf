import { deepStrictEqual as assertEquals, strictEqual } from "node:assert/strict";
import type { Command } from "../../../home/imap/ast.ts";
import { CommandFramer, type Frame } from "../../../home/imap/framing.ts";
import { type CommandError, parseCommand, parseTag } from "../../../home/imap/parser.ts";
import { ProtocolError } from "../../../src/errors.ts";
import { limits } from "../../../src/limits.ts";

const enc = new TextEncoder();

/** Bytes of a string whose characters are all below 256, one byte each: for 8-bit test input. */
function raw(s: string): Uint8Array {
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

/** Frame `text` as the session would, literals included. */
function frameOf(text: string | Uint8Array): Frame {
  const framer = new CommandFramer({ limits: { literalsPerCommand: 100_000 } });
  framer.push(typeof text === "string" ? enc.encode(text) : text);
  const ev = framer.next();
  if (ev?.type !== "command") throw new Error(`not one command: ${JSON.stringify(ev)}`);
  return ev.frame;
}

function parse(line: string | Uint8Array, utf8 = false): Command {
  const text = typeof line !== "string" ? line : line.endsWith("\n") ? line : line + "\r\n";
  const { tag, command } = parseCommand(frameOf(text), { utf8 });
  strictEqual(tag, "a1");
  return command;
}

function rejects(
  line: string | Uint8Array,
  status: "BAD" | "NO",
  text: RegExp,
  utf8 = false,
): ProtocolError {
  let caught: unknown;
  try {
    parse(line, utf8);
  } catch (e) {
    caught = e;
  }
  const shown = String(line).slice(0, 80);
  if (!(caught instanceof ProtocolError)) {
    throw new Error(`${shown}: expected a ProtocolError, got ${caught}`);
  }
  strictEqual(caught.status, status, `${shown}: ${caught.message}`);
  strictEqual(
    text.test(caught.message),
    true,
    `${shown}: message was ${JSON.stringify(caught.message)}`,
  );
  return caught;
}

const bad = (line: string | Uint8Array, text: RegExp, utf8 = false) =>
  rejects(line, "BAD", text, utf8);

Deno.test("parser reads the commands without arguments", () => {
  for (
    const name of [
      "CAPABILITY",
      "NOOP",
      "LOGOUT",
      "STARTTLS",
      "NAMESPACE",
      "IDLE",
      "CHECK",
      "CLOSE",
      "UNSELECT",
    ]
  ) {
    assertEquals(parse(`a1 ${name.toLowerCase()}`), { name });
  }
  assertEquals(parse("a1 EXPUNGE"), { name: "EXPUNGE", uid: false });
  assertEquals(parse("a1 UID EXPUNGE 3:5"), {
    name: "EXPUNGE",
    uid: true,
    set: { ranges: [{ from: 3, to: 5 }] },
  });
});

Deno.test("parser rejects arguments to commands that take none", () => {
  bad("a1 NOOP now", /extra arguments/);
  bad("a1 CAPABILITY ", /extra arguments/);
});

Deno.test("parser reads AUTHENTICATE with and without a SASL-IR initial response", () => {
  assertEquals(parse("a1 AUTHENTICATE plain"), { name: "AUTHENTICATE", mechanism: "PLAIN" });
  assertEquals(parse("a1 AUTHENTICATE PLAIN AGJvYgBwdw=="), {
    name: "AUTHENTICATE",
    mechanism: "PLAIN",
    initialResponse: "AGJvYgBwdw==",
  });
  assertEquals(parse("a1 AUTHENTICATE PLAIN ="), {
    name: "AUTHENTICATE",
    mechanism: "PLAIN",
    initialResponse: "=",
  });
  bad("a1 AUTHENTICATE PLAIN a!b", /Unexpected characters/);
  bad("a1 AUTHENTICATE", /Missing arguments/);
});

Deno.test("parser reads LOGIN with atoms, quoted strings and literals", () => {
  assertEquals(parse("a1 LOGIN bob secret"), { name: "LOGIN", user: "bob", password: "secret" });
  assertEquals(parse('a1 LOGIN "bob@example.com" "pa ss\\"wo\\\\rd"'), {
    name: "LOGIN",
    user: "bob@example.com",
    password: 'pa ss"wo\\rd',
  });
  assertEquals(parse('a1 LOGIN {3}\r\nbob {5+}\r\np w"d\r\n'), {
    name: "LOGIN",
    user: "bob",
    password: 'p w"d',
  });
  assertEquals(parse("a1 LOGIN bob {6}\r\nmötö\r\n"), {
    name: "LOGIN",
    user: "bob",
    password: "mötö",
  });
  bad("a1 LOGIN bob", /Missing arguments/);
  bad('a1 LOGIN bob "x\\y"', /Only \\" and \\\\ may be escaped/);
  bad('a1 LOGIN bob "unterminated', /Unterminated quoted string/);
  bad(raw("a1 LOGIN bob {2}\r\n\xff\xfe\r\n"), /not valid UTF-8/);
});

Deno.test("parser reads ENABLE with one or more capabilities", () => {
  assertEquals(parse("a1 ENABLE qresync CONDSTORE"), {
    name: "ENABLE",
    capabilities: ["QRESYNC", "CONDSTORE"],
  });
  bad("a1 ENABLE", /Missing arguments/);
});

Deno.test("parser reads SELECT and EXAMINE with CONDSTORE and QRESYNC", () => {
  assertEquals(parse("a1 SELECT inbox"), { name: "SELECT", mailbox: "INBOX", condstore: false });
  assertEquals(parse("a1 EXAMINE Archive (CONDSTORE)"), {
    name: "EXAMINE",
    mailbox: "Archive",
    condstore: true,
  });
  assertEquals(parse("a1 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))"), {
    name: "SELECT",
    mailbox: "INBOX",
    condstore: false,
    qresync: {
      uidValidity: 67890007,
      modseq: 20050715194045000n,
      knownUids: { ranges: [{ from: 41 }, { from: 43, to: 211 }, { from: 214, to: 541 }] },
    },
  });
  assertEquals(
    parse(
      "a1 SELECT INBOX (QRESYNC (67890007 90060115194045000 1:29997 (5000,7500,9000 15000,22500,27000)))",
    ),
    {
      name: "SELECT",
      mailbox: "INBOX",
      condstore: false,
      qresync: {
        uidValidity: 67890007,
        modseq: 90060115194045000n,
        knownUids: { ranges: [{ from: 1, to: 29997 }] },
        seqMatch: {
          seqs: { ranges: [{ from: 5000 }, { from: 7500 }, { from: 9000 }] },
          uids: { ranges: [{ from: 15000 }, { from: 22500 }, { from: 27000 }] },
        },
      },
    },
  );
  assertEquals(parse("a1 SELECT INBOX (QRESYNC (1 2) CONDSTORE)"), {
    name: "SELECT",
    mailbox: "INBOX",
    condstore: true,
    qresync: { uidValidity: 1, modseq: 2n },
  });
  bad("a1 SELECT INBOX (FOO)", /Unknown SELECT parameter FOO/);
  bad("a1 SELECT INBOX ()", /Empty SELECT parameter list/);
  bad("a1 SELECT INBOX (QRESYNC (0 1))", /UIDVALIDITY must be greater than 0/);
  bad("a1 SELECT INBOX (CONDSTORE", /Missing "\)"/);
  bad("a1 SELECT", /Missing arguments/);
});

Deno.test("parser decodes mailbox names as modified UTF-7 for IMAP4rev1 clients", () => {
  assertEquals(parse("a1 CREATE Entw&APw-rfe"), { name: "CREATE", mailbox: "Entwürfe" });
  assertEquals(parse('a1 DELETE "&ZeVnLIqe-"'), { name: "DELETE", mailbox: "日本語" });
  bad("a1 CREATE Entw&APw", /not valid modified UTF-7/);
  bad('a1 CREATE "Entwürfe"', /8-bit mailbox names need UTF8=ACCEPT/);
});

Deno.test("parser takes mailbox names as UTF-8 when UTF-8 is enabled", () => {
  assertEquals(parse('a1 CREATE "Entwürfe"', true), { name: "CREATE", mailbox: "Entwürfe" });
  assertEquals(parse("a1 CREATE Entw&APw-rfe", true), { name: "CREATE", mailbox: "Entw&APw-rfe" });
  assertEquals(parse("a1 SELECT {4}\r\nInBoX\r\n".replace("{4}", "{5}"), true).name, "SELECT");
  bad(raw('a1 CREATE "\xc3\x28"\r\n'), /not valid UTF-8/, true);
});

Deno.test("parser normalises INBOX in any case to INBOX, but only the exact name", () => {
  assertEquals(parse('a1 SUBSCRIBE "iNbOx"'), { name: "SUBSCRIBE", mailbox: "INBOX" });
  assertEquals(parse("a1 UNSUBSCRIBE inbox.sub"), { name: "UNSUBSCRIBE", mailbox: "inbox.sub" });
});

Deno.test("parser reads CREATE with special-use attributes (RFC 6154)", () => {
  assertEquals(parse("a1 CREATE MyDrafts (USE (\\drafts \\Sent))"), {
    name: "CREATE",
    mailbox: "MyDrafts",
    specialUse: ["\\Drafts", "\\Sent"],
  });
  bad("a1 CREATE X (USE (Drafts))", /Expected a special-use attribute/);
  bad("a1 CREATE X (FOO (\\Drafts))", /Unknown CREATE parameter FOO/);
});

Deno.test("parser reads RENAME", () => {
  assertEquals(parse('a1 RENAME "Old box" New'), { name: "RENAME", from: "Old box", to: "New" });
  bad("a1 RENAME Old", /Missing arguments/);
});

Deno.test("parser reads a basic LIST and LSUB", () => {
  assertEquals(parse('a1 LIST "" *'), {
    name: "LIST",
    reference: "",
    patterns: ["*"],
    options: { select: [], return: [], extended: false },
  });
  assertEquals(parse("a1 LIST ~/Mail/ %/&ZeVnLIqe-"), {
    name: "LIST",
    reference: "~/Mail/",
    patterns: ["%/日本語"],
    options: { select: [], return: [], extended: false },
  });
  assertEquals(parse('a1 LSUB "" "Arch%"'), { name: "LSUB", reference: "", pattern: "Arch%" });
});

Deno.test("parser reads LIST-EXTENDED selection and return options, patterns and RETURN STATUS", () => {
  assertEquals(
    parse(
      'a1 LIST (SUBSCRIBED RECURSIVEMATCH) "" ("INBOX" "Drafts" %) RETURN (CHILDREN STATUS (MESSAGES UNSEEN))',
    ),
    {
      name: "LIST",
      reference: "",
      patterns: ["INBOX", "Drafts", "%"],
      options: {
        select: ["SUBSCRIBED", "RECURSIVEMATCH"],
        return: ["CHILDREN"],
        status: ["MESSAGES", "UNSEEN"],
        extended: true,
      },
    },
  );
  assertEquals(parse('a1 LIST () "" % RETURN (SPECIAL-USE)').name, "LIST");
  assertEquals(parse('a1 LIST (special-use) "" *'), {
    name: "LIST",
    reference: "",
    patterns: ["*"],
    options: { select: ["SPECIAL-USE"], return: [], extended: true },
  });
  bad('a1 LIST (RECURSIVEMATCH) "" %', /RECURSIVEMATCH needs another selection option/);
  bad('a1 LIST (BOGUS) "" %', /Unknown LIST selection option BOGUS/);
  bad('a1 LIST "" % RETURN (BOGUS)', /Unknown LIST return option BOGUS/);
  bad('a1 LIST "" % FOO', /Expected RETURN/);
  bad('a1 LIST ""', /Missing arguments/);
});

Deno.test("parser reads STATUS items", () => {
  assertEquals(
    parse(
      "a1 STATUS INBOX (MESSAGES UIDNEXT uidvalidity UNSEEN DELETED SIZE HIGHESTMODSEQ APPENDLIMIT MAILBOXID RECENT)",
    ),
    {
      name: "STATUS",
      mailbox: "INBOX",
      items: [
        "MESSAGES",
        "UIDNEXT",
        "UIDVALIDITY",
        "UNSEEN",
        "DELETED",
        "SIZE",
        "HIGHESTMODSEQ",
        "APPENDLIMIT",
        "MAILBOXID",
        "RECENT",
      ],
    },
  );
  bad("a1 STATUS INBOX ()", /Expected a STATUS item/);
  bad("a1 STATUS INBOX (FOO)", /Unknown STATUS item FOO/);
  bad("a1 STATUS INBOX", /Missing arguments/);
});

Deno.test("parser reads APPEND with flags, date-time and one message", () => {
  const cmd = parse(
    'a1 APPEND saved-messages (\\seen $Forwarded) "17-Jul-1996 02:44:25 -0700" {5}\r\nHello\r\n',
  );
  assertEquals(cmd, {
    name: "APPEND",
    mailbox: "saved-messages",
    messages: [{
      flags: ["\\Seen", "$Forwarded"],
      date: Date.UTC(1996, 6, 17, 9, 44, 25),
      data: enc.encode("Hello"),
      binary: false,
    }],
  });
  assertEquals(parse('a1 APPEND INBOX " 7-Feb-2024 23:00:00 +0100" {1+}\r\nx\r\n'), {
    name: "APPEND",
    mailbox: "INBOX",
    messages: [{ flags: [], date: Date.UTC(2024, 1, 7, 22), data: enc.encode("x"), binary: false }],
  });
});

Deno.test("parser reads MULTIAPPEND with several messages and binary literals", () => {
  const cmd = parse("a1 APPEND INBOX {2+}\r\nm1 (\\Draft) ~{3+}\r\n\0b\0 () {2+}\r\nm3\r\n");
  assertEquals(cmd, {
    name: "APPEND",
    mailbox: "INBOX",
    messages: [
      { flags: [], data: enc.encode("m1"), binary: false },
      { flags: ["\\Draft"], data: new Uint8Array([0, 0x62, 0]), binary: true },
      { flags: [], data: enc.encode("m3"), binary: false },
    ],
  });
});

Deno.test("parser rejects malformed APPEND commands", () => {
  bad('a1 APPEND INBOX "Hello"', /Invalid date-time "Hello"/);
  bad("a1 APPEND INBOX Hello", /message data must be a literal/);
  bad("a1 APPEND INBOX", /Missing arguments/);
  bad("a1 APPEND INBOX (\\Seen)", /Missing arguments/);
  bad('a1 APPEND INBOX "31-Feb-2024 00:00:00 +0000" {1+}\r\nx\r\n', /Invalid date-time/);
  bad('a1 APPEND INBOX "1-Feb-2024 00:00 +0000" {1+}\r\nx\r\n', /Invalid date-time/);
  bad("a1 APPEND INBOX (\\*) {1+}\r\nx\r\n", /\\\* is not a flag/);
  bad("a1 APPEND INBOX {1+}\r\nx extra\r\n", /Expected a space|must be a literal/);
});

Deno.test("parser reads SEARCH with every RFC 9051 search key", () => {
  const cmd = parse(
    'a1 SEARCH ALL ANSWERED BCC b BEFORE 1-Feb-1994 BODY "x y" CC c DELETED FLAGGED FROM f ' +
      'KEYWORD $Junk NEW OLD ON 01-Feb-1994 RECENT SEEN SINCE "1-Feb-1994" SUBJECT s TEXT t TO t2 ' +
      "UNANSWERED UNDELETED UNFLAGGED UNKEYWORD k UNSEEN DRAFT HEADER X-Spam yes LARGER 100 " +
      "NOT SEEN OR SEEN FLAGGED SENTBEFORE 2-Mar-2000 SENTON 2-Mar-2000 SENTSINCE 2-Mar-2000 " +
      "SMALLER 5000000000 UID 1:* UNDRAFT 2,4:* (SEEN DELETED)",
  );
  assertEquals(cmd, {
    name: "SEARCH",
    uid: false,
    key: {
      kind: "AND",
      keys: [
        { kind: "ALL" },
        { kind: "flag", flag: "\\Answered", set: true },
        { kind: "header", field: "BCC", value: "b" },
        { kind: "date", which: "internal", op: "before", date: "1994-02-01" },
        { kind: "BODY", value: "x y" },
        { kind: "header", field: "CC", value: "c" },
        { kind: "flag", flag: "\\Deleted", set: true },
        { kind: "flag", flag: "\\Flagged", set: true },
        { kind: "header", field: "FROM", value: "f" },
        { kind: "flag", flag: "$Junk", set: true },
        { kind: "NEW" },
        { kind: "OLD" },
        { kind: "date", which: "internal", op: "on", date: "1994-02-01" },
        { kind: "RECENT" },
        { kind: "flag", flag: "\\Seen", set: true },
        { kind: "date", which: "internal", op: "since", date: "1994-02-01" },
        { kind: "header", field: "SUBJECT", value: "s" },
        { kind: "TEXT", value: "t" },
        { kind: "header", field: "TO", value: "t2" },
        { kind: "flag", flag: "\\Answered", set: false },
        { kind: "flag", flag: "\\Deleted", set: false },
        { kind: "flag", flag: "\\Flagged", set: false },
        { kind: "flag", flag: "k", set: false },
        { kind: "flag", flag: "\\Seen", set: false },
        { kind: "flag", flag: "\\Draft", set: true },
        { kind: "header", field: "X-SPAM", value: "yes" },
        { kind: "LARGER", size: 100 },
        { kind: "NOT", key: { kind: "flag", flag: "\\Seen", set: true } },
        {
          kind: "OR",
          a: { kind: "flag", flag: "\\Seen", set: true },
          b: { kind: "flag", flag: "\\Flagged", set: true },
        },
        { kind: "date", which: "sent", op: "before", date: "2000-03-02" },
        { kind: "date", which: "sent", op: "on", date: "2000-03-02" },
        { kind: "date", which: "sent", op: "since", date: "2000-03-02" },
        { kind: "SMALLER", size: 5000000000 },
        { kind: "UID", set: { ranges: [{ from: 1, to: "*" }] } },
        { kind: "flag", flag: "\\Draft", set: false },
        { kind: "seq", set: { ranges: [{ from: 2 }, { from: 4, to: "*" }] } },
        {
          kind: "AND",
          keys: [{ kind: "flag", flag: "\\Seen", set: true }, {
            kind: "flag",
            flag: "\\Deleted",
            set: true,
          }],
        },
      ],
    },
  });
});

Deno.test("parser reads SEARCH extensions: MODSEQ, OLDER/YOUNGER, $, RETURN and CHARSET", () => {
  assertEquals(parse("a1 UID SEARCH MODSEQ 620162338"), {
    name: "SEARCH",
    uid: true,
    key: { kind: "MODSEQ", modseq: 620162338n },
  });
  assertEquals(parse('a1 SEARCH MODSEQ "/flags/\\\\draft" all 620162338'), {
    name: "SEARCH",
    uid: false,
    key: { kind: "MODSEQ", modseq: 620162338n, entry: { name: "/flags/\\draft", type: "all" } },
  });
  assertEquals(parse("a1 SEARCH YOUNGER 3600").name, "SEARCH");
  assertEquals(parse("a1 SEARCH OLDER 60 $"), {
    name: "SEARCH",
    uid: false,
    key: {
      kind: "AND",
      keys: [{ kind: "OLDER", seconds: 60 }, { kind: "seq", set: { saved: true } }],
    },
  });
  assertEquals(parse("a1 SEARCH RETURN (MIN max COUNT SAVE) UID $"), {
    name: "SEARCH",
    uid: false,
    key: { kind: "UID", set: { saved: true } },
    return: ["MIN", "MAX", "COUNT", "SAVE"],
  });
  assertEquals(parse("a1 SEARCH RETURN () ALL"), {
    name: "SEARCH",
    uid: false,
    key: { kind: "ALL" },
    return: [],
  });
  assertEquals(parse("a1 SEARCH CHARSET UTF-8 SUBJECT {6}\r\nmötö\r\n"), {
    name: "SEARCH",
    uid: false,
    charset: "UTF-8",
    key: { kind: "header", field: "SUBJECT", value: "mötö" },
  });
});

Deno.test("parser decodes SEARCH strings in the given CHARSET", () => {
  const bytes = new Uint8Array([
    ...enc.encode("a1 SEARCH CHARSET ISO-8859-1 TEXT {2}\r\n"),
    0xe9,
    0x74,
    0x0d,
    0x0a,
  ]);
  assertEquals(parseCommand(frameOf(bytes), { utf8: false }).command, {
    name: "SEARCH",
    uid: false,
    charset: "ISO-8859-1",
    key: { kind: "TEXT", value: "ét" },
  });
});

Deno.test("parser answers an unknown SEARCH charset with NO [BADCHARSET]", () => {
  const e = rejects(
    "a1 SEARCH CHARSET X-KLINGON TEXT x",
    "NO",
    /Charset X-KLINGON is not supported/,
  );
  strictEqual(e.imapCode, "BADCHARSET (UTF-8 US-ASCII)");
});

Deno.test("parser rejects malformed SEARCH commands", () => {
  bad("a1 SEARCH", /Missing arguments/);
  bad("a1 SEARCH FOO", /Unknown search key FOO/);
  bad("a1 SEARCH BEFORE 30-Feb-2020", /Invalid date "30-Feb-2020"/);
  bad("a1 SEARCH BEFORE 2020-02-01", /Invalid date/);
  bad("a1 SEARCH OR SEEN", /Missing arguments/);
  bad("a1 SEARCH (SEEN", /Expected "\)"/);
  bad("a1 SEARCH SEEN)", /Expected a space at "\)"/);
  bad("a1 SEARCH 0:4", /Invalid sequence set "0:4"/);
  bad("a1 SEARCH 1,,2", /Invalid sequence set/);
  bad("a1 SEARCH RETURN (BOGUS) ALL", /Unknown search RETURN option BOGUS/);
  bad("a1 SEARCH YOUNGER 0", /greater than 0/);
  bad(raw("a1 SEARCH SUBJECT caf\xc3\xa9\r\n"), /8-bit characters are not allowed in atoms/);
  bad('a1 SEARCH MODSEQ "/bogus" all 5', /entry names/);
});

Deno.test("parser reads FETCH macros and simple items", () => {
  const kinds = (cmd: Command) => cmd.name === "FETCH" ? cmd.atts.map((a) => a.kind) : [];
  assertEquals(kinds(parse("a1 FETCH 1 ALL")), [
    "FLAGS",
    "INTERNALDATE",
    "RFC822.SIZE",
    "ENVELOPE",
  ]);
  assertEquals(kinds(parse("a1 FETCH 1 fast")), ["FLAGS", "INTERNALDATE", "RFC822.SIZE"]);
  assertEquals(kinds(parse("a1 FETCH 1 FULL")), [
    "FLAGS",
    "INTERNALDATE",
    "RFC822.SIZE",
    "ENVELOPE",
    "BODY",
  ]);
  assertEquals(kinds(parse("a1 FETCH 1:* uid")), ["UID"]);
  assertEquals(
    kinds(
      parse(
        "a1 FETCH 1 (ENVELOPE FLAGS INTERNALDATE RFC822 RFC822.HEADER RFC822.TEXT RFC822.SIZE BODY BODYSTRUCTURE UID MODSEQ SAVEDATE EMAILID THREADID)",
      ),
    ),
    [
      "ENVELOPE",
      "FLAGS",
      "INTERNALDATE",
      "RFC822",
      "RFC822.HEADER",
      "RFC822.TEXT",
      "RFC822.SIZE",
      "BODY",
      "BODYSTRUCTURE",
      "UID",
      "MODSEQ",
      "SAVEDATE",
      "EMAILID",
      "THREADID",
    ],
  );
});

Deno.test("parser reads FETCH body sections, partials and BINARY items", () => {
  const cmd = parse(
    'a1 UID FETCH 4:2,* (BODY[] BODY.PEEK[HEADER.FIELDS (Subject "From")]<0.1024> BODY[1.2.MIME] BODY[2.TEXT] ' +
      "BODY[3] BODY[HEADER.FIELDS.NOT (X-A)] BODY.PEEK[TEXT]<10.5> BINARY[1.2] BINARY.PEEK[]<0.100> BINARY.SIZE[3])",
  );
  assertEquals(cmd, {
    name: "FETCH",
    uid: true,
    set: { ranges: [{ from: 4, to: 2 }, { from: "*" }] },
    modifiers: {},
    atts: [
      { kind: "BODY[]", section: { part: [] }, peek: false },
      {
        kind: "BODY[]",
        section: { part: [], text: "HEADER.FIELDS", fields: ["SUBJECT", "FROM"] },
        peek: true,
        partial: { start: 0, count: 1024 },
      },
      { kind: "BODY[]", section: { part: [1, 2], text: "MIME" }, peek: false },
      { kind: "BODY[]", section: { part: [2], text: "TEXT" }, peek: false },
      { kind: "BODY[]", section: { part: [3] }, peek: false },
      {
        kind: "BODY[]",
        section: { part: [], text: "HEADER.FIELDS.NOT", fields: ["X-A"] },
        peek: false,
      },
      {
        kind: "BODY[]",
        section: { part: [], text: "TEXT" },
        peek: true,
        partial: { start: 10, count: 5 },
      },
      { kind: "BINARY[]", part: [1, 2], peek: false },
      { kind: "BINARY[]", part: [], peek: true, partial: { start: 0, count: 100 } },
      { kind: "BINARY.SIZE", part: [3] },
    ],
  });
});

Deno.test("parser reads FETCH modifiers CHANGEDSINCE and VANISHED", () => {
  assertEquals(parse("a1 UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)"), {
    name: "FETCH",
    uid: true,
    set: { ranges: [{ from: 300, to: 500 }] },
    atts: [{ kind: "FLAGS" }],
    modifiers: { changedSince: 12345n, vanished: true },
  });
  assertEquals(parse("a1 FETCH 1:* FLAGS (CHANGEDSINCE 9223372036854775807)").name, "FETCH");
  bad("a1 FETCH 1:* FLAGS (CHANGEDSINCE 12345 VANISHED)", /VANISHED is only allowed in UID FETCH/);
  bad("a1 UID FETCH 1:* FLAGS (VANISHED)", /VANISHED is only allowed/);
  bad("a1 FETCH 1 FLAGS (CHANGEDSINCE 9223372036854775808)", /Expected a mod-sequence/);
  bad("a1 FETCH 1 FLAGS (FOO)", /Unknown FETCH modifier FOO/);
});

Deno.test("parser rejects malformed FETCH commands", () => {
  bad("a1 FETCH", /Missing (arguments|sequence set)/);
  bad("a1 FETCH 1", /Missing arguments/);
  bad("a1 FETCH x FLAGS", /Expected a sequence set/);
  bad("a1 FETCH 1 BOGUS", /Unknown FETCH item BOGUS/);
  bad("a1 FETCH 1 (FLAGS", /Missing "\)"/);
  bad("a1 FETCH 1 ()", /Expected a FETCH item/);
  bad("a1 FETCH 1 BODY[MIME]", /Invalid section "MIME"/);
  bad("a1 FETCH 1 BODY[0]", /Part numbers start at 1/);
  bad("a1 FETCH 1 BODY[HEADER", /Expected "\]"/);
  bad("a1 FETCH 1 BODY[]<5.0>", /partial length must be greater than 0/);
  bad("a1 FETCH 1 BINARY[TEXT]", /Expected a part number/);
  bad("a1 FETCH 1 BINARY.SIZE", /Unknown FETCH item BINARY.SIZE/);
  bad("a1 FETCH 1 BODY.PEEK", /Unknown FETCH item BODY.PEEK/);
});

Deno.test("parser reads STORE in every form, with UNCHANGEDSINCE", () => {
  assertEquals(parse("a1 STORE 2:4 +FLAGS (\\Deleted)"), {
    name: "STORE",
    uid: false,
    set: { ranges: [{ from: 2, to: 4 }] },
    action: { op: "add", silent: false, flags: ["\\Deleted"] },
  });
  assertEquals(parse("a1 UID STORE 1 -flags.silent \\seen $Label1"), {
    name: "STORE",
    uid: true,
    set: { ranges: [{ from: 1 }] },
    action: { op: "remove", silent: true, flags: ["\\Seen", "$Label1"] },
  });
  assertEquals(parse("a1 STORE $ (UNCHANGEDSINCE 320162338) FLAGS.SILENT ()"), {
    name: "STORE",
    uid: false,
    set: { saved: true },
    action: { op: "set", silent: true, flags: [], unchangedSince: 320162338n },
  });
  bad("a1 STORE 1 FLAGZ (\\Seen)", /Unknown STORE item "FLAGZ"/);
  bad("a1 STORE 1 +FLAGS", /Missing arguments/);
  bad("a1 STORE 1 (FOO 1) FLAGS ()", /Unknown STORE modifier FOO/);
});

Deno.test("parser reads COPY and MOVE and their UID variants", () => {
  assertEquals(parse("a1 COPY 2:4 MEETING"), {
    name: "COPY",
    uid: false,
    set: { ranges: [{ from: 2, to: 4 }] },
    mailbox: "MEETING",
  });
  assertEquals(parse('a1 uid move 42 "Trash"'), {
    name: "MOVE",
    uid: true,
    set: { ranges: [{ from: 42 }] },
    mailbox: "Trash",
  });
  bad("a1 MOVE 1", /Missing arguments/);
  bad("a1 UID LOGIN a b", /UID LOGIN is not a command/);
});

Deno.test("parser reads SORT with REVERSE keys, charset and RETURN", () => {
  assertEquals(parse("a1 UID SORT (REVERSE ARRIVAL subject DISPLAYFROM) UTF-8 SINCE 1-Feb-1994"), {
    name: "SORT",
    uid: true,
    keys: [
      { key: "ARRIVAL", reverse: true },
      { key: "SUBJECT", reverse: false },
      { key: "DISPLAYFROM", reverse: false },
    ],
    charset: "UTF-8",
    key: { kind: "date", which: "internal", op: "since", date: "1994-02-01" },
  });
  assertEquals(parse("a1 SORT RETURN (MIN MAX) (DATE) US-ASCII ALL"), {
    name: "SORT",
    uid: false,
    keys: [{ key: "DATE", reverse: false }],
    charset: "US-ASCII",
    key: { kind: "ALL" },
    return: ["MIN", "MAX"],
  });
  bad("a1 SORT () UTF-8 ALL", /Expected a sort key/);
  bad("a1 SORT (SPEED) UTF-8 ALL", /Unknown sort key SPEED/);
  bad("a1 SORT (DATE) ALL", /Unknown search key|Missing/);
});

Deno.test("parser reads THREAD with both algorithms", () => {
  assertEquals(parse("a1 THREAD ORDEREDSUBJECT UTF-8 SINCE 5-MAR-2000"), {
    name: "THREAD",
    uid: false,
    algorithm: "ORDEREDSUBJECT",
    charset: "UTF-8",
    key: { kind: "date", which: "internal", op: "since", date: "2000-03-05" },
  });
  assertEquals(parse("a1 UID THREAD references US-ASCII ALL").name, "THREAD");
  bad("a1 THREAD REFS UTF-8 ALL", /Unknown thread algorithm REFS/);
});

Deno.test("parser reads ID with parameters or NIL (RFC 2971)", () => {
  assertEquals(parse('a1 ID ("name" "imaplib" "version" NIL)'), {
    name: "ID",
    params: { name: "imaplib", version: null },
  });
  assertEquals(parse("a1 ID NIL"), { name: "ID", params: null });
  assertEquals(parse("a1 ID ()"), { name: "ID", params: {} });
  const many = Array.from({ length: 31 }, (_, i) => `"k${i}" "v"`).join(" ");
  bad(`a1 ID (${many})`, /at most 30 field-value pairs/);
  bad('a1 ID ("name")', /Expected a space/);
});

Deno.test("parser rejects bad tags, unknown commands and NUL bytes", () => {
  bad("+tag NOOP", /Missing or invalid command tag/);
  bad("a1", /Missing command name/);
  bad("a1 FROB", /Unknown command FROB/);
  bad("a1 NOOP\0", /NUL characters are not allowed/);
  bad("a1 LOGIN {3}\r\na\0b c\r\n", /NUL characters are not allowed in literals/);
  bad("a1 LOGIN ~{1}\r\na b\r\n", /Binary literals/);
  bad("a1  NOOP", /Expected a command name/);
  bad(raw("a1 NOOP\xc3\xa9\r\n"), /8-bit characters are not allowed in atoms/);
});

Deno.test("parseTag() returns the tag even when the command does not parse", () => {
  strictEqual(parseTag(frameOf("x17 FETCH garbage((\r\n")), "x17");
  strictEqual(parseTag(frameOf("a{b NOOP\r\n")), null);
  strictEqual(parseTag(frameOf("a1\r\n")), "a1");
});

Deno.test("parser limits nesting depth of parentheses and search keys", () => {
  const depth = limits.imapNestingDepth;
  parse(`a1 SEARCH ${"(".repeat(depth - 1)}SEEN${")".repeat(depth - 1)}`);
  bad(
    `a1 SEARCH ${"(".repeat(depth + 1)}SEEN${")".repeat(depth + 1)}`,
    /Nesting deeper than 32 levels/,
  );
  bad(`a1 SEARCH ${"NOT ".repeat(depth + 1)}SEEN`, /Nesting deeper than 32 levels/);
  bad(`a1 SEARCH ${"OR SEEN ".repeat(100)}SEEN`, /Nesting deeper than 32 levels/);
});

Deno.test("parser limits the number of literals in one command", () => {
  const n = limits.imapLiteralsPerCommand + 1;
  const text = "a1 SEARCH" + " TEXT {1+}\r\nx".repeat(n) + "\r\n";
  bad(text, new RegExp(`More than ${limits.imapLiteralsPerCommand} literals`));
});

Deno.test("parseCommand() errors carry the tag of the command", () => {
  const e = bad("a1 FETCH 1 BOGUS", /Unknown FETCH item BOGUS/) as CommandError;
  strictEqual(e.tag, "a1");
  const untagged = bad("+x NOOP", /Missing or invalid command tag/) as CommandError;
  strictEqual(untagged.tag, undefined);
});
