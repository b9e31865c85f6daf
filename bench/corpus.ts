/**
 * Deterministic corpus of realistic RFC 5322 messages for the IMAP benchmark.
 *
 * The same seed always yields the same bytes, so Hearth and Dovecot are loaded with identical
 * mailboxes and search results can be checked against counts known at generation time.
 *
 * Sizes are log-normal with a median of about 10 KB; messages over ~60 KB carry base64
 * attachments. Structures mix text/plain, multipart/alternative, multipart/mixed with
 * attachments and forwarded message/rfc822 parts. Subjects are sometimes RFC 2047 encoded, and
 * replies carry In-Reply-To/References so threads exist.
 *
 * @example
 * ```ts
 * const corpus = generateCorpus({ count: 100, seed: 42 });
 * console.log(corpus.messages.length, corpus.knownFromCount, corpus.rareWordCount);
 * ```
 */

/** The address that appears in the From header of a known fraction of messages. */
export const KNOWN_FROM = "ledger-alerts@hearth-bench.example";
/** A word that appears in the body of only a handful of messages. */
export const RARE_WORD = "quixotryptic";

export interface CorpusOptions {
  /** Number of messages. */
  count: number;
  /** PRNG seed; the same seed gives byte-identical messages. */
  seed?: number;
  /** Fraction of messages sent from {@link KNOWN_FROM} (default 0.02). */
  knownFromFraction?: number;
  /** Number of messages whose body contains {@link RARE_WORD} (default 7, at most count). */
  rareWordMessages?: number;
}

export interface Corpus {
  /** Raw messages with CRLF line endings, in load order. */
  messages: Uint8Array[];
  /** How many messages have {@link KNOWN_FROM} in From. */
  knownFromCount: number;
  /** How many messages contain {@link RARE_WORD}. */
  rareWordCount: number;
  /** Total bytes. */
  totalBytes: number;
}

/** Small, fast, seedable PRNG (sfc32), seeded through splitmix32. */
export class Prng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(seed: number) {
    let s = seed >>> 0;
    const next = () => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.#a = next();
    this.#b = next();
    this.#c = next();
    this.#d = next();
    for (let i = 0; i < 12; i++) this.next();
  }

  /** Uniform float in [0, 1). */
  next(): number {
    const t = (((this.#a + this.#b) >>> 0) + this.#d) >>> 0;
    this.#d = (this.#d + 1) >>> 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) >>> 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) >>> 0;
    return t / 4294967296;
  }

  /** Integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  /** Standard normal variate (Box-Muller). */
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** `k` distinct indices from [0, n), in random order. */
  sample(n: number, k: number): number[] {
    const chosen = new Set<number>();
    const out: number[] = [];
    while (out.length < Math.min(k, n)) {
      const i = Math.floor(this.next() * n);
      if (!chosen.has(i)) {
        chosen.add(i);
        out.push(i);
      }
    }
    return out;
  }
}

const WORDS = (
  "the of and to in is that for it as with was on be by at this have from or an they which " +
  "you were her all she there would their we him been has when who will more no if out so " +
  "said what up its about into than them can only other new some could time these two may " +
  "then do first any my now such like our over man me even most made after also did many " +
  "before must through back years where much your way well down should because each just " +
  "those people how too little state good very make world still own see men work long get " +
  "here between both life being under never day same another know while last might us great " +
  "old year off come since against go came right used take three meeting report budget " +
  "schedule review project release invoice deadline quarter draft proposal contract agenda " +
  "feedback update server backup migration customer support ticket shipment delivery order " +
  "payment account password team office holiday travel flight hotel dinner weekend photos " +
  "garden kitchen recipe concert tickets school homework doctor appointment insurance tax " +
  "mortgage renovation plumber electrician lawyer bank statement receipt newsletter thanks"
).split(" ");

const FIRST = [
  "Alice",
  "Bob",
  "Chloé",
  "Daniel",
  "Eva",
  "François",
  "Grace",
  "Hiro",
  "Ingrid",
  "Jamal",
  "Kateřina",
  "Liam",
  "Mei",
  "Noor",
  "Olga",
  "Pedro",
  "Quinn",
  "Rosa",
  "Sven",
  "Tomás",
  "Uma",
  "Viktor",
  "Wen",
  "Yusuf",
  "Zoë",
];
const LAST = [
  "Anderson",
  "Bäcker",
  "Chen",
  "Dubois",
  "Eriksson",
  "García",
  "Hughes",
  "Ivanova",
  "Jones",
  "Kowalski",
  "López",
  "Müller",
  "Nakamura",
  "O'Brien",
  "Petrov",
  "Rossi",
  "Schmidt",
  "Tanaka",
  "Novák",
  "Williams",
];
const DOMAINS = [
  "example.com",
  "example.net",
  "example.org",
  "mail.example.co.uk",
  "corp.example",
  "lists.example.org",
  "university.example.edu",
  "shop.example",
];
const UNICODE_SUBJECT_WORDS = [
  "Grüße",
  "café",
  "Überweisung",
  "résumé",
  "naïve",
  "日本語",
  "Привет",
  "Ελληνικά",
  "smörgåsbord",
  "fiancée",
  "Straße",
  "€100",
];
const ATTACHMENTS: Array<[string, string]> = [
  ["application/pdf", "pdf"],
  ["image/jpeg", "jpg"],
  ["image/png", "png"],
  ["application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"],
  ["application/zip", "zip"],
];
const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

interface Person {
  name: string;
  address: string;
}

interface ThreadRoot {
  messageId: string;
  references: string[];
  subject: string;
}

const encoder = new TextEncoder();

/** Generates the whole corpus in memory. */
export function generateCorpus(options: CorpusOptions): Corpus {
  const { count, seed = 20240611 } = options;
  const rng = new Prng(seed);
  const fromFraction = options.knownFromFraction ?? 0.02;
  const knownFrom = new Set(rng.sample(count, Math.round(count * fromFraction)));
  const rare = new Set(rng.sample(count, Math.min(options.rareWordMessages ?? 7, count)));

  const people: Person[] = [];
  for (let i = 0; i < 120; i++) {
    const first = rng.pick(FIRST);
    const last = rng.pick(LAST);
    const local = `${ascii(first)}.${ascii(last)}${i}`.toLowerCase().replace(/[^a-z0-9.]/g, "");
    people.push({ name: `${first} ${last}`, address: `${local}@${rng.pick(DOMAINS)}` });
  }
  const me: Person = { name: "Hearth Bench", address: "me@hearth.localhost" };
  const threads: ThreadRoot[] = [];
  // Dates move forward through three years, with jitter, as a real INBOX does.
  const start = Date.UTC(2021, 0, 4, 8, 0, 0);
  const span = 3 * 365 * 86400_000;

  const messages: Uint8Array[] = [];
  let totalBytes = 0;
  for (let i = 0; i < count; i++) {
    const when = start + Math.floor((span * i) / Math.max(count, 1)) + rng.int(0, 6 * 3600_000);
    const from: Person = knownFrom.has(i)
      ? { name: "Ledger Alerts", address: KNOWN_FROM }
      : rng.pick(people);
    const raw = buildMessage(rng, {
      index: i,
      when,
      from,
      me,
      people,
      threads,
      rareWord: rare.has(i),
    });
    const bytes = encoder.encode(raw);
    messages.push(bytes);
    totalBytes += bytes.length;
  }
  return { messages, knownFromCount: knownFrom.size, rareWordCount: rare.size, totalBytes };
}

interface BuildContext {
  index: number;
  when: number;
  from: Person;
  me: Person;
  people: Person[];
  threads: ThreadRoot[];
  rareWord: boolean;
}

function buildMessage(rng: Prng, ctx: BuildContext): string {
  // Log-normal size around a 10 KB median, plus a few percent of mail with real attachments.
  const typical = 10_000 * Math.exp(0.8 * rng.normal());
  const withAttachment = rng.chance(0.04) ? 180_000 * Math.exp(0.7 * rng.normal()) : 0;
  const target = Math.min(Math.max(Math.round(Math.max(typical, withAttachment)), 900), 2_000_000);
  const domain = ctx.from.address.split("@")[1];
  const messageId = `<${ctx.index.toString(36)}.${rng.int(1e8, 9e8).toString(36)}@${domain}>`;

  let subject: string;
  let threadHeaders = "";
  if (ctx.threads.length > 0 && rng.chance(0.3)) {
    const root = ctx.threads[Math.floor(ctx.threads.length * (0.8 + 0.2 * rng.next()))] ??
      ctx.threads[ctx.threads.length - 1];
    subject = `Re: ${root.subject}`;
    const refs = [...root.references, root.messageId].slice(-10);
    threadHeaders = `In-Reply-To: ${root.messageId}\r\n` +
      foldHeader("References", refs.join(" "));
    ctx.threads.push({ messageId, references: refs, subject: root.subject });
  } else {
    subject = sentence(rng, rng.int(3, 9)).replace(/\.$/, "");
    if (rng.chance(0.15)) subject = `${subject} ${rng.pick(UNICODE_SUBJECT_WORDS)}`;
    ctx.threads.push({ messageId, references: [], subject });
  }
  if (ctx.threads.length > 400) ctx.threads.splice(0, 100);

  const to = [ctx.me, ...(rng.chance(0.3) ? [rng.pick(ctx.people)] : [])];
  const cc = rng.chance(0.2) ? [rng.pick(ctx.people), rng.pick(ctx.people)] : [];
  const date = rfc5322Date(ctx.when, rng.pick([0, 60, 120, -300, -420, 330, 540]));

  let headers = "";
  headers += `Return-Path: <${ctx.from.address}>\r\n`;
  for (let hop = rng.int(1, 3); hop > 0; hop--) {
    headers += foldHeader(
      "Received",
      `from mx${rng.int(1, 9)}.${domain} (mx${rng.int(1, 9)}.${domain} [192.0.2.${
        rng.int(1, 254)
      }]) by mail.hearth.localhost with ESMTPS id ${
        randomToken(rng, 12)
      } for <${ctx.me.address}>; ${rfc5322Date(ctx.when + hop * 1000, 0)}`,
    );
  }
  if (rng.chance(0.5)) {
    headers += foldHeader(
      "DKIM-Signature",
      `v=1; a=rsa-sha256; c=relaxed/relaxed; d=${domain}; s=sel${rng.int(1, 3)}; ` +
        `h=from:to:subject:date:message-id; bh=${randomBase64(rng, 32)}; b=${
          randomBase64(rng, 256)
        }`,
    );
  }
  headers += `Date: ${date}\r\n`;
  headers += `From: ${formatPerson(ctx.from)}\r\n`;
  headers += foldHeader("To", to.map(formatPerson).join(", "));
  if (cc.length > 0) headers += foldHeader("Cc", cc.map(formatPerson).join(", "));
  headers += `Subject: ${encodeSubject(rng, subject)}\r\n`;
  headers += `Message-ID: ${messageId}\r\n`;
  headers += threadHeaders;
  if (rng.chance(0.15)) headers += `List-Id: <team.${domain}>\r\n`;
  headers += "MIME-Version: 1.0\r\n";

  // Budget left for the body once headers are written.
  const bodyTarget = Math.max(target - headers.length, 300);
  const rareWord = ctx.rareWord;
  let body: string;
  if (bodyTarget > 60_000) {
    body = mixedWithAttachment(rng, bodyTarget, rareWord);
  } else if (rng.chance(0.03)) {
    body = forwarded(rng, bodyTarget, rareWord, ctx);
  } else if (rng.chance(0.4)) {
    body = alternative(rng, bodyTarget, rareWord);
  } else {
    body = plainPart(rng, bodyTarget, rareWord);
  }
  return headers + body;
}

/** A body with its Content-* headers; the caller writes the message headers before it. */
function plainPart(rng: Prng, size: number, rareWord: boolean): string {
  const qp = rng.chance(0.3);
  const text = paragraphs(rng, size, rareWord);
  return qp
    ? "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
      quotedPrintable(text)
    : "Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n" +
      text;
}

function alternative(rng: Prng, size: number, rareWord: boolean): string {
  const boundary = `----=_alt_${randomToken(rng, 16)}`;
  const text = paragraphs(rng, Math.floor(size * 0.4), rareWord);
  const html = "<html><body>\r\n" +
    text.split("\r\n\r\n").map((p) => `<p style=3D"margin:0 0 1em 0">\r\n${p}\r\n</p>`)
      .join("\r\n") +
    "\r\n</body></html>\r\n";
  return `Content-Type: multipart/alternative; boundary="${boundary}"\r\n\r\n` +
    "This is a multi-part message in MIME format.\r\n" +
    `--${boundary}\r\n` +
    "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n" +
    text +
    `--${boundary}\r\n` +
    "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
    html +
    `--${boundary}--\r\n`;
}

function mixedWithAttachment(rng: Prng, size: number, rareWord: boolean): string {
  const boundary = `----=_mixed_${randomToken(rng, 16)}`;
  const [type, ext] = rng.pick(ATTACHMENTS);
  const count = rng.chance(0.3) ? 2 : 1;
  // base64 grows data by 4/3; leave room for the text parts.
  const attachmentBytes = Math.floor((size * 0.72) / count);
  const parts: string[] = [alternative(rng, 4000, rareWord)];
  for (let i = 0; i < count; i++) {
    const name = `${sentence(rng, 2).replace(/\W+/g, "-").toLowerCase()}${i}.${ext}`;
    parts.push(
      `Content-Type: ${type}; name="${name}"\r\n` +
        `Content-Disposition: attachment; filename="${name}"\r\n` +
        "Content-Transfer-Encoding: base64\r\n\r\n" +
        randomBase64Lines(rng, attachmentBytes),
    );
  }
  return `Content-Type: multipart/mixed; boundary="${boundary}"\r\n\r\n` +
    parts.map((p) => `--${boundary}\r\n${p}`).join("") +
    `--${boundary}--\r\n`;
}

function forwarded(rng: Prng, size: number, rareWord: boolean, ctx: BuildContext): string {
  const boundary = `----=_fwd_${randomToken(rng, 16)}`;
  const inner = rng.pick(ctx.people);
  const innerMessage = `Date: ${rfc5322Date(ctx.when - 86400_000, 0)}\r\n` +
    `From: ${formatPerson(inner)}\r\n` +
    `To: ${formatPerson(ctx.from)}\r\n` +
    `Subject: ${sentence(rng, 4).replace(/\.$/, "")}\r\n` +
    `Message-ID: <fwd.${randomToken(rng, 10)}@${inner.address.split("@")[1]}>\r\n` +
    "MIME-Version: 1.0\r\n" +
    alternative(rng, Math.floor(size * 0.6), false);
  return `Content-Type: multipart/mixed; boundary="${boundary}"\r\n\r\n` +
    `--${boundary}\r\n` +
    plainPart(rng, Math.floor(size * 0.3), rareWord) +
    `--${boundary}\r\n` +
    "Content-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n" +
    innerMessage +
    `--${boundary}--\r\n`;
}

function paragraphs(rng: Prng, size: number, rareWord: boolean): string {
  const lines: string[] = [];
  let length = 0;
  let line = "";
  let rarePlaced = !rareWord;
  while (length < size) {
    let s = sentence(rng, rng.int(6, 18));
    if (!rarePlaced && rng.chance(0.2)) {
      s = s.replace(/ /, ` ${RARE_WORD} `);
      rarePlaced = true;
    }
    for (const word of s.split(" ")) {
      if (line.length + word.length + 1 > 72) {
        lines.push(line);
        length += line.length + 2;
        line = word;
      } else {
        line = line ? `${line} ${word}` : word;
      }
    }
    if (rng.chance(0.15)) {
      lines.push(line, "");
      length += line.length + 4;
      line = "";
    }
  }
  if (line) lines.push(line);
  if (!rarePlaced) lines.push(`P.S. ${RARE_WORD}.`);
  return lines.join("\r\n") + "\r\n";
}

function sentence(rng: Prng, words: number): string {
  const out: string[] = [];
  for (let i = 0; i < words; i++) out.push(rng.pick(WORDS));
  const s = out.join(" ");
  return s[0].toUpperCase() + s.slice(1) + ".";
}

function formatPerson(p: Person): string {
  if (/^[\x20-\x7e]*$/.test(p.name)) {
    return /[^A-Za-z0-9 ]/.test(p.name) ? `"${p.name}" <${p.address}>` : `${p.name} <${p.address}>`;
  }
  return `${encodedWord(p.name, "Q")} <${p.address}>`;
}

function encodeSubject(rng: Prng, subject: string): string {
  // RFC 2047: non-ASCII subjects must be encoded words; mix B and Q as real mailers do.
  if (/^[\x20-\x7e]*$/.test(subject)) return subject;
  return encodedWord(subject, rng.chance(0.5) ? "B" : "Q");
}

function encodedWord(text: string, encoding: "B" | "Q"): string {
  const bytes = encoder.encode(text);
  if (encoding === "B") {
    // Keep each encoded word under 75 characters (RFC 2047 §2) by splitting on characters.
    const words: string[] = [];
    let chunk = "";
    for (const ch of text) {
      if (encoder.encode(chunk + ch).length > 45) {
        words.push(`=?UTF-8?B?${base64(encoder.encode(chunk))}?=`);
        chunk = "";
      }
      chunk += ch;
    }
    words.push(`=?UTF-8?B?${base64(encoder.encode(chunk))}?=`);
    return words.join("\r\n ");
  }
  let q = "";
  for (const b of bytes) {
    if (b === 0x20) q += "_";
    else if (/[A-Za-z0-9]/.test(String.fromCharCode(b))) q += String.fromCharCode(b);
    else q += "=" + b.toString(16).toUpperCase().padStart(2, "0");
  }
  const words: string[] = [];
  for (let i = 0; i < q.length;) {
    let end = Math.min(i + 60, q.length);
    // Never split an =XX escape.
    while (end < q.length && q[end - 1] === "=") end--;
    while (end < q.length && q[end - 2] === "=") end -= 2;
    words.push(`=?UTF-8?Q?${q.slice(i, end)}?=`);
    i = end;
  }
  return words.join("\r\n ");
}

function quotedPrintable(text: string): string {
  // The generated text is ASCII with lines under 76 characters; encode '=' and sprinkle soft
  // breaks so the part really needs decoding.
  return text.split("\r\n").map((line) => {
    const escaped = line.replace(/=/g, "=3D");
    if (escaped.length > 40 && escaped.length < 74) {
      let cut = 36;
      while (escaped[cut - 1] === "=" || escaped[cut - 2] === "=") cut++;
      return `${escaped.slice(0, cut)}=\r\n${escaped.slice(cut)}`;
    }
    return escaped;
  }).join("\r\n");
}

function foldHeader(name: string, value: string): string {
  const words = value.split(" ");
  const lines: string[] = [];
  let line = `${name}:`;
  for (const word of words) {
    if (line.length + word.length + 1 > 76 && line.trim() !== `${name}:`) {
      lines.push(line);
      line = ` ${word}`;
    } else {
      line += ` ${word}`;
    }
  }
  lines.push(line);
  return lines.join("\r\n") + "\r\n";
}

function rfc5322Date(ms: number, offsetMinutes: number): string {
  const d = new Date(ms + offsetMinutes * 60_000);
  const sign = offsetMinutes < 0 ? "-" : "+";
  const abs = Math.abs(offsetMinutes);
  const zone = `${sign}${pad(Math.floor(abs / 60))}${pad(abs % 60)}`;
  return `${DAYS[d.getUTCDay()]}, ${d.getUTCDate()} ${
    MONTHS[d.getUTCMonth()]
  } ${d.getUTCFullYear()} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} ${zone}`;
}

function pad(n: number): string {
  return n.toString().padStart(2, "0");
}

function ascii(s: string): string {
  return s.normalize("NFD").replace(/[\u0300-\u036f]/g, "");
}

const TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

function randomToken(rng: Prng, length: number): string {
  let s = "";
  for (let i = 0; i < length; i++) s += TOKEN_CHARS[Math.floor(rng.next() * TOKEN_CHARS.length)];
  return s;
}

function randomBytes(rng: Prng, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i += 4) {
    const v = Math.floor(rng.next() * 4294967296);
    out[i] = v & 0xff;
    if (i + 1 < length) out[i + 1] = (v >>> 8) & 0xff;
    if (i + 2 < length) out[i + 2] = (v >>> 16) & 0xff;
    if (i + 3 < length) out[i + 3] = v >>> 24;
  }
  return out;
}

function randomBase64(rng: Prng, bytes: number): string {
  return base64(randomBytes(rng, bytes));
}

function randomBase64Lines(rng: Prng, bytes: number): string {
  const b64 = randomBase64(rng, bytes);
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 76) lines.push(b64.slice(i, i + 76));
  return lines.join("\r\n") + "\r\n";
}

function base64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}
