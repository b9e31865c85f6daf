/**
 * `hearth phone …` on the phone's side (docs/sync.md): join, sync, ls, read,
 * send, chat, flag, move and lan, over a {@linkcode Phone} kept in a directory.
 * (`hearth phone pair` runs on the home box and lives in main.ts.)
 *
 * @example
 * ```ts
 * await runPhoneCommand("ls", ["INBOX"], { data: "./hearth-phone" });
 * ```
 */
import { UsageError } from "../../src/errors.ts";
import { limits } from "../../src/limits.ts";
import { formatAddress, readableMessage } from "../../src/mime/readable.ts";
import { Phone, type PhoneMessage } from "./client.ts";
import { DirectoryStorage } from "./directory_storage.ts";

export interface PhoneCliOptions {
  /** The phone's state directory. */
  data: string;
  /** `send`: the body (else standard input is read). */
  text?: string;
  /** `read`: seconds to wait for the home box to send a body. */
  wait?: string;
  /** Where `send` reads the body when `text` is not given (standard input). */
  stdin?: ReadableStream<Uint8Array>;
}

/** Summaries asked for at once by `ls` for the messages it lists without one. */
const lsSummaryRequests = 200;

const usage = {
  join: "usage: hearth phone join CODE [--data DIR]",
  read: "usage: hearth phone read ID [--wait SECONDS]",
  send:
    "usage: hearth phone send ADDRESS[,ADDRESS…] SUBJECT [--text TEXT] (else the text on stdin)",
  chat: "usage: hearth phone chat ADDRESS TEXT",
  flag: "usage: hearth phone flag ID [FLAG…]",
  move: "usage: hearth phone move ID MAILBOX",
  lan: "usage: hearth phone lan [URL…|off|default]",
};

function asUsage(e: unknown): never {
  throw new UsageError((e as Error).message);
}

/** "2024-05-01 09:30" in local time. */
function when(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${
    p(d.getMinutes())
  }`;
}

function fit(text: string, width: number): string {
  const chars = [...text];
  return chars.length > width
    ? chars.slice(0, width - 1).join("") + "…"
    : text + " ".repeat(width - chars.length);
}

/** One line of `hearth phone ls`. */
export function listLine(m: PhoneMessage): string {
  const mark = m.pending ? "pending" : m.flags.map((f) => f.replace(/^\\/, "")).join(",") || "-";
  const head = `${m.id.slice(0, 16)}  ${when(m.summary?.date || m.date)}  ${
    fit(m.mailboxName, 8)
  }  ${fit(mark, 12)}`;
  if (!m.summary) return `${head}  (no summary yet, ${m.size} bytes)`;
  return `${head}  ${fit(m.summary.from || "(no sender)", 30)}  ${
    m.summary.subject || "(no subject)"
  }`;
}

/** The message one ID prefix names (a UsageError when none or several). */
function pick(phone: Phone, prefix: string | undefined, how: string): PhoneMessage {
  if (!prefix) throw new UsageError(how);
  const matches = phone.list().filter((m) => m.id.startsWith(prefix));
  if (matches.length !== 1) {
    throw new UsageError(
      `${matches.length ? "several messages" : "no message"} match ${prefix}; ` +
        `"hearth phone ls" shows their ids`,
    );
  }
  return matches[0];
}

export async function runPhoneCommand(
  sub: string | undefined,
  rest: string[],
  opts: PhoneCliOptions,
): Promise<void> {
  const storage = new DirectoryStorage(opts.data);
  if (sub === "join") {
    if (!rest[0]) throw new UsageError(usage.join);
    let phone;
    try {
      phone = await Phone.join(rest[0], storage);
    } catch (e) {
      if (e instanceof TypeError) throw new UsageError(e.message);
      throw e;
    }
    const report = await phone.sync({ flush: true });
    console.log(`Joined as ${phone.device} for ${phone.address}; ${report.received} updates.`);
    return;
  }
  const phone = await Phone.open(storage).catch(asUsage);
  switch (sub) {
    case "sync": {
      // Someone is waiting at the terminal: replies go out now, not with the next exchange.
      const r = await phone.sync({ flush: true });
      if (r.lanError) console.log(`The home box on the LAN: ${r.lanError}.`);
      console.log(
        `Synced ${r.via === "lan" ? "on the LAN" : "through the edge"}: ${r.received} in, ` +
          `${r.sent} out, ${r.requests} requests, ${r.bytesIn} bytes in, ` +
          `${r.bytesOut} bytes out.`,
      );
      return;
    }
    case "lan": {
      if (rest.length) {
        const urls = rest[0] === "off" ? [] : rest[0] === "default" ? null : rest;
        if (urls?.length && rest.length !== urls.length) throw new UsageError(usage.lan);
        await phone.setLanUrls(urls).catch(asUsage);
      }
      const urls = phone.lanUrls;
      console.log(
        urls.length
          ? `Syncs you start try the home box at ${urls.join(", ")} first, then the edge.`
          : "Syncs go through the edge only (no LAN URL of the home box is known).",
      );
      return;
    }
    case "ls": {
      const list = phone.list(rest[0]);
      for (const m of list) console.log(listLine(m));
      if (!list.length) console.log("No messages.");
      const missing = list.filter((m) => !m.summary && !m.pending).slice(0, lsSummaryRequests);
      if (missing.length) {
        await phone.wantSummaries(missing.map((m) => m.id));
        console.log(
          `${missing.length} listed without a summary: "hearth phone sync" asks the home box ` +
            "for them.",
        );
      }
      return;
    }
    case "read": {
      const m = pick(phone, rest[0], usage.read);
      const wait = opts.wait === undefined ? limits.phoneBodyWaitMs / 1000 : Number(opts.wait);
      if (!Number.isFinite(wait) || wait < 0) throw new UsageError("--wait takes seconds");
      const got = await phone.body(m.id, { waitMs: wait * 1000 });
      if (got.kind === "gone") {
        throw new UsageError(`the home box no longer has message ${m.id.slice(0, 16)}`);
      }
      if (got.kind === "at-edge") {
        throw new UsageError(
          `${m.id.slice(0, 16)} waits at the edge and was too large to come to the phone; ` +
            "it can be read once the home box has fetched it",
        );
      }
      if (got.kind === "waiting") {
        throw new UsageError(
          `the body of ${m.id.slice(0, 16)} is not on this phone, and the home box did not ` +
            `send it within ${wait} s (it is offline or asleep); the request waits at the ` +
            "edge: run this again once the home box is back",
        );
      }
      const r = readableMessage(got.raw);
      const list = (a: typeof r.from) => a.map(formatAddress).join(", ");
      const lines = [`From: ${list(r.from)}`, `To: ${list(r.to)}`];
      if (r.cc.length) lines.push(`Cc: ${list(r.cc)}`);
      lines.push(`Date: ${r.date === null ? "(none)" : new Date(r.date).toString()}`);
      lines.push(`Subject: ${r.subject}`, "", r.text.trimEnd() || "(no text)");
      console.log(lines.join("\n"));
      return;
    }
    case "send": {
      const [to, subject] = rest;
      if (!to || subject === undefined || rest.length > 2) throw new UsageError(usage.send);
      const text = opts.text ??
        await new Response(opts.stdin ?? new ReadableStream({ start: (c) => c.close() })).text();
      const recipients = to.split(",").map((a) => a.trim()).filter(Boolean);
      await phone.send(recipients, subject, text).catch(asUsage);
      console.log(`Sent to ${recipients.join(", ")}; a copy goes to Sent.`);
      return;
    }
    case "chat": {
      const [to, ...words] = rest;
      if (!to || !words.length) throw new UsageError(usage.chat);
      await phone.chat(to, words.join(" ")).catch(asUsage);
      console.log(`Sent to ${to}.`);
      return;
    }
    case "flag":
    case "move": {
      const [prefix, ...more] = rest;
      const m = pick(phone, prefix, usage[sub]);
      if (m.pending) {
        throw new UsageError(`${prefix} is not stored at home yet; change it after a sync`);
      }
      if (sub === "flag") await phone.flag(m.id, more);
      else {
        if (!more[0]) throw new UsageError(usage.move);
        await phone.move(m.id, more[0]).catch(asUsage);
      }
      console.log(`Changed; "hearth phone sync" sends it.`);
      return;
    }
    default:
      throw new UsageError(`unknown phone command "${sub}"; see hearth --help`);
  }
}
