import { deepStrictEqual as assertEquals, strictEqual } from "node:assert/strict";
import { CommandFramer, type FramerEvent, type FramerLimits } from "../../../home/imap/framing.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** What the session would see: events, with "+" marking each continuation request. */
type Seen = (string | FramerEvent)[];

function feed(input: Uint8Array, chunkSize: number, limits?: Partial<FramerLimits>): Seen {
  const seen: Seen = [];
  const framer = new CommandFramer({ onContinuation: () => seen.push("+"), limits });
  for (let i = 0; i < input.length; i += chunkSize) {
    framer.push(input.subarray(i, i + chunkSize));
    for (let ev = framer.next(); ev; ev = framer.next()) seen.push(ev);
  }
  return seen;
}

/** Render events as text for readable assertions. */
function render(seen: Seen): string[] {
  return seen.map((s) => {
    if (typeof s === "string") return s;
    if (s.type === "line") return `line ${dec.decode(s.line)}`;
    if (s.type === "reject") {
      return `reject ${s.tag} ${s.status}${s.code ? ` [${s.code}]` : ""} ${s.text}`;
    }
    const parts: string[] = [];
    s.frame.lines.forEach((l, i) => {
      parts.push(dec.decode(l));
      const lit = s.frame.literals[i];
      if (lit) parts.push(`<${lit.binary ? "~" : ""}${dec.decode(lit.data)}>`);
    });
    return `cmd ${parts.join("|")}`;
  });
}

function feedAllWays(text: string | Uint8Array, limits?: Partial<FramerLimits>): string[] {
  const input = typeof text === "string" ? enc.encode(text) : text;
  const whole = render(feed(input, input.length || 1, limits));
  for (const size of [1, 2, 3, 7, 64]) {
    assertEquals(render(feed(input, size, limits)), whole, `chunk size ${size}`);
  }
  return whole;
}

Deno.test("framer splits pipelined commands and accepts bare LF", () => {
  assertEquals(feedAllWays("a1 NOOP\r\na2 CAPABILITY\na3 LOGOUT\r\n"), [
    "cmd a1 NOOP",
    "cmd a2 CAPABILITY",
    "cmd a3 LOGOUT",
  ]);
});

Deno.test("framer ignores empty lines between commands", () => {
  assertEquals(feedAllWays("\r\n\r\na1 NOOP\r\n"), ["cmd a1 NOOP"]);
});

Deno.test("framer asks for a continuation before a synchronising literal", () => {
  assertEquals(feedAllWays("a1 LOGIN {3}\r\nbob {2}\r\npw\r\n"), [
    "+",
    "+",
    "cmd a1 LOGIN {3}|<bob>| {2}|<pw>|",
  ]);
});

Deno.test("framer reads non-synchronising and binary literals without a continuation", () => {
  assertEquals(feedAllWays("a1 APPEND INBOX {5+}\r\nhello ~{4+}\r\na\r\nb\r\n"), [
    "cmd a1 APPEND INBOX {5+}|<hello>| ~{4+}|<~a\r\nb>|",
  ]);
});

Deno.test("framer handles a zero-length literal", () => {
  assertEquals(feedAllWays('a1 LOGIN {0}\r\n "x"\r\n'), ["+", 'cmd a1 LOGIN {0}|<>| "x"']);
});

Deno.test("framer keeps CR, LF and NUL bytes inside literals", () => {
  const out = feedAllWays("a1 APPEND INBOX {6+}\r\n\r\n\0x\r\n\r\n");
  assertEquals(out, ["cmd a1 APPEND INBOX {6+}|<\r\n\0x\r\n>|"]);
});

Deno.test("framer delivers one raw line for IDLE's DONE", () => {
  const framer = new CommandFramer();
  framer.push(enc.encode("a1 IDLE\r\nDONE\r\na2 NOOP\r\n"));
  const first = framer.next();
  strictEqual(first?.type, "command");
  framer.expectRawLine();
  const done = framer.next();
  strictEqual(done?.type === "line" && dec.decode(done.line), "DONE");
  const next = framer.next();
  strictEqual(next?.type === "command" && dec.decode(next.frame.lines[0]), "a2 NOOP");
});

Deno.test("framer does not treat a raw AUTHENTICATE line ending in {n} as a literal", () => {
  const framer = new CommandFramer({
    onContinuation: () => {
      throw new Error("no continuation");
    },
  });
  framer.expectRawLine();
  framer.push(enc.encode("abc{5}\r\n"));
  const ev = framer.next();
  strictEqual(ev?.type === "line" && dec.decode(ev.line), "abc{5}");
});

Deno.test("framer answers an oversize synchronising literal with NO [TOOBIG] and no continuation", () => {
  const out = feedAllWays("a1 LOGIN {70000}\r\na2 NOOP\r\n");
  assertEquals(out, [
    "reject a1 NO [TOOBIG] Literal of 70000 bytes is larger than the limit of 65536 bytes",
    "cmd a2 NOOP",
  ]);
});

Deno.test("framer allows APPEND literals up to the message limit, also after UID", () => {
  const limits = { literalBytes: 4, appendLiteralBytes: 10 };
  assertEquals(feedAllWays("a1 append INBOX {8+}\r\n12345678\r\n", limits), [
    "cmd a1 append INBOX {8+}|<12345678>|",
  ]);
  assertEquals(feedAllWays("a1 APPEND INBOX {11}\r\n", limits), [
    "reject a1 NO [TOOBIG] Literal of 11 bytes is larger than the limit of 10 bytes",
  ]);
  assertEquals(feedAllWays("a1 UID SEARCH TEXT {5}\r\n", limits), [
    "reject a1 NO [TOOBIG] Literal of 5 bytes is larger than the limit of 4 bytes",
  ]);
});

Deno.test("framer discards an oversize non-synchronising literal and the rest of its command", () => {
  const body = "x".repeat(100);
  const out = feedAllWays(`a1 APPEND INBOX {100+}\r\n${body} {3+}\r\nabc\r\na2 NOOP\r\n`, {
    appendLiteralBytes: 50,
  });
  assertEquals(out, [
    "reject a1 NO [TOOBIG] Literal of 100 bytes is larger than the limit of 50 bytes",
    "cmd a2 NOOP",
  ]);
});

Deno.test("framer stays bounded for a 2 GB literal announcement", () => {
  const framer = new CommandFramer();
  framer.push(enc.encode("a1 APPEND INBOX {2147483648+}\r\n"));
  const ev = framer.next();
  strictEqual(ev?.type === "reject" && ev.code, "TOOBIG");
  // Stream 8 MiB of the announced literal: it is read and dropped.
  const chunk = new Uint8Array(1 << 20);
  for (let i = 0; i < 8; i++) {
    framer.push(chunk);
    strictEqual(framer.next(), undefined);
    strictEqual(framer.bufferedBytes, 0);
  }
});

Deno.test("framer rejects a line longer than the limit and resumes at the next line", () => {
  const long = "a1 SEARCH TEXT " + "x".repeat(200);
  const out = feedAllWays(`${long}\r\na2 NOOP\r\n`, { lineBytes: 100 });
  assertEquals(out, ["reject a1 BAD Command line longer than 100 bytes", "cmd a2 NOOP"]);
});

Deno.test("framer skips a non-synchronising literal announced at the end of an overlong line", () => {
  const long = "a1 APPEND INBOX " + "x".repeat(200) + " {4+}";
  const out = feedAllWays(`${long}\r\nabcd\r\na2 NOOP\r\n`, { lineBytes: 100 });
  assertEquals(out, ["reject a1 BAD Command line longer than 100 bytes", "cmd a2 NOOP"]);
});

Deno.test("framer keeps memory bounded when a client never sends a newline", () => {
  const framer = new CommandFramer({ limits: { lineBytes: 1000 } });
  const junk = new Uint8Array(64 * 1024).fill(0);
  for (let i = 0; i < 64; i++) {
    framer.push(junk);
    strictEqual(framer.next(), undefined);
    strictEqual(framer.bufferedBytes, 0);
  }
  framer.push(enc.encode("\r\na2 NOOP\r\n"));
  assertEquals(render([framer.next()!, framer.next()!]), [
    "reject null BAD Command line longer than 1000 bytes",
    "cmd a2 NOOP",
  ]);
});

Deno.test("framer limits the number of literals per command", () => {
  const out = feedAllWays("a1 X {1+}\r\na {1+}\r\nb {1+}\r\nc\r\na2 NOOP\r\n", {
    literalsPerCommand: 2,
  });
  assertEquals(out, ["reject a1 BAD More than 2 literals in one command", "cmd a2 NOOP"]);
});

Deno.test("framer limits the total size of a command", () => {
  const out = feedAllWays("a1 X {4+}\r\nabcd {4}\r\n", { commandBytes: 12 });
  assertEquals(out, ["reject a1 NO [TOOBIG] Command is larger than the limit of 12 bytes"]);
});

Deno.test("framer reports a null tag when the line has no valid tag", () => {
  const out = feedAllWays('"x" LOGIN {99999999}\r\n');
  strictEqual(
    out[0],
    "reject null NO [TOOBIG] Literal of 99999999 bytes is larger than the limit of 65536 bytes",
  );
});

Deno.test("framer gives identical results byte by byte and in one chunk for a mixed session", () => {
  const text = [
    "a1 LOGIN {3}\r\nbob {2+}\r\npw\r\n",
    "a2 SELECT INBOX\r\n",
    "\n",
    "a3 APPEND INBOX (\\Seen) {10}\r\n0123456789 ~{2}\r\n\0\0\r\n",
    "a4 LOGIN {999999}\r\n",
    "a5 NOOP\r\n",
  ].join("");
  assertEquals(feedAllWays(text), [
    "+",
    "cmd a1 LOGIN {3}|<bob>| {2+}|<pw>|",
    "cmd a2 SELECT INBOX",
    "+",
    "+",
    "cmd a3 APPEND INBOX (\\Seen) {10}|<0123456789>| ~{2}|<~\0\0>|",
    "reject a4 NO [TOOBIG] Literal of 999999 bytes is larger than the limit of 65536 bytes",
    "cmd a5 NOOP",
  ]);
});
