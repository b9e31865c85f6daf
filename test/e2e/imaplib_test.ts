// Python's imaplib (Debian's python3) against a real home box: IMAP4_SSL with the private CA,
// STARTTLS on the plain port, and the everyday commands. imaplib_client.py runs every step and
// prints the answers as JSON; this test checks them one by one so a failure names its step.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { runTool, startTestBox } from "./harness.ts";
import { reportCsv } from "./messages.ts";

const script = new URL("./imaplib_client.py", import.meta.url).pathname;

type Answer = [string, unknown[]] | { error: string };

Deno.test("Python imaplib works over implicit TLS and STARTTLS with the private CA", async () => {
  const box = await startTestBox();
  let steps: Record<string, Answer>;
  try {
    const run = await runTool("python3", [
      script,
      "127.0.0.1",
      String(box.port),
      String(box.tlsPort),
      box.caFile,
      box.address,
      box.password,
    ], { pkg: "python3" });
    assertEquals(run.code, 0, `imaplib_client.py failed:\n${run.stderr}`);
    steps = JSON.parse(run.stdout);
  } finally {
    await box.stop();
  }

  /** The data of a step that must have answered `status`. */
  const data = (name: string, status = "OK"): unknown[] => {
    const answer = steps[name];
    assert(answer, `step ${name} did not run`);
    assert(Array.isArray(answer), `step ${name} raised ${JSON.stringify(answer)}`);
    assertEquals(answer[0], status, `step ${name}: ${JSON.stringify(answer)}`);
    return answer[1];
  };
  const line = (name: string) => String(data(name)[0]);

  assert(line("ssl_login").includes("Logged in"));
  const caps = line("capability").split(" ");
  for (const cap of ["IMAP4rev1", "IMAP4rev2", "IDLE", "UIDPLUS", "MOVE"]) {
    assert(caps.includes(cap), `CAPABILITY lists ${cap}: ${caps}`);
  }
  assert(!caps.includes("STARTTLS"), "no STARTTLS offered over TLS");
  assertEquals(data("select"), ["3"]);

  // FETCH: header fields, flags and sizes, one MIME part, the whole message.
  const header = data("fetch_header")[0] as string[];
  assertEquals(
    header[1],
    "From: Alice Example <alice@example.org>\r\nSubject: Lunch on Friday\r\n\r\n",
  );
  const sizes = data("fetch_flags_size") as string[];
  assertEquals(sizes.length, 3);
  assert(/^1 \(UID 1 FLAGS \([^)]*\) RFC822\.SIZE \d+\)$/.test(sizes[0]), sizes[0]);
  assert(!sizes[0].includes("\\Seen"), "nothing is seen yet");
  const part = data("uid_fetch_part")[0] as string[];
  assert(part[0].includes("UID 2"), part[0]);
  assertEquals(atob(part[1].trim()), reportCsv);
  const full = data("fetch_full")[0] as string[];
  assert(full[1].startsWith("From: Alice Example"), full[1]);
  assert(full[1].includes("quayside bistro"), full[1]);

  // SEARCH, and \Seen set by the non-PEEK RFC822 fetch.
  assertEquals(data("search_from"), ["1"]);
  assertEquals(data("search_subject"), ["3"]);
  assertEquals(data("search_text"), ["2"]);
  assertEquals(data("search_unseen"), ["2 3"]);
  assert(line("seen_after_fetch").includes("\\Seen"), line("seen_after_fetch"));

  // STORE, COPY, EXPUNGE.
  assert(/\\Flagged/.test(line("store")) && /\$Hiking/.test(line("store")), line("store"));
  assertEquals(data("search_flagged"), ["3"]);
  assert(/^\[COPYUID \d+ 3 1\]/.test(line("copy")), line("copy"));
  assertEquals(line("status_archive"), '"Archive" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)');
  assert(line("store_deleted").includes("\\Deleted"));
  assertEquals(data("expunge"), ["2"], "EXPUNGE reports sequence number 2");
  assertEquals(data("search_after_expunge"), ["1 3"]);

  // CREATE, RENAME (children move along), DELETE.
  data("create");
  data("create_nested");
  data("rename");
  const renamed = data("list_after_rename") as string[];
  assertEquals(renamed.length, 2, `LIST Trips*: ${renamed}`);
  assert(renamed[0].endsWith('"Trips"') && renamed[0].includes("\\HasChildren"), renamed[0]);
  assert(renamed[1].endsWith('"Trips/2025"'), renamed[1]);
  data("delete_child");
  data("delete");
  const all = (data("list_after_delete") as string[]).join("\n");
  assert(!all.includes("Trips") && !all.includes("Travel"), all);
  assert(all.includes('\\Trash) "/" "Trash"'), all);

  // STATUS of the selected mailbox, APPEND, CLOSE, LOGOUT.
  const status = line("status_inbox");
  assert(
    /MESSAGES 2 /.test(status) && /UIDNEXT 4 /.test(status) && /UNSEEN 1\)/.test(status),
    status,
  );
  assert(/^\[APPENDUID \d+ 4\]/.test(line("append")), line("append"));
  assertEquals(data("search_appended"), ["3"]);
  data("close");
  data("logout", "BYE");

  // STARTTLS on the plain port.
  const plainCaps = line("plain_capability").split(" ");
  assert(plainCaps.includes("STARTTLS"), `the plain port offers STARTTLS: ${plainCaps}`);
  data("starttls");
  assert(line("starttls_authenticate").includes("Logged in"));
  assertEquals(data("starttls_examine"), ["3"], "UIDs 1, 3 and the appended 4");
  data("starttls_noop");
  data("starttls_logout", "BYE");

  // RFC 9051 §6.2.1: "b CAPABILITY", sent in plaintext right after STARTTLS, is not answered.
  const injection = steps["starttls_injection"];
  assert(Array.isArray(injection), `STARTTLS injection check raised ${JSON.stringify(injection)}`);
  assert(String(injection[0]).startsWith("a OK"), `STARTTLS answered: ${injection[0]}`);
  assert(String(injection[1]).startsWith("c OK"), `first answer under TLS: ${injection[1]}`);
});
