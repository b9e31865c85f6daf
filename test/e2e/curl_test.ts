// curl's IMAP support (Debian's curl) against a real home box: LIST, FETCH by UID (whole message
// and one MIME part), a custom EXAMINE, SEARCH, APPEND by upload, over implicit TLS with the
// private CA and over STARTTLS (--ssl-reqd), with the certificate's host name (--resolve).
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { runTool, startTestBox, type TestBox } from "./harness.ts";
import { reportCsv } from "./messages.ts";

async function curl(box: TestBox, url: string, ...extra: string[]) {
  const res = await runTool("curl", [
    "--silent",
    "--show-error",
    "--max-time",
    "10",
    "--cacert",
    box.caFile,
    "--user",
    `${box.address}:${box.password}`,
    ...extra,
    url,
  ], { pkg: "curl" });
  assertEquals(
    res.code,
    0,
    `curl ${extra.join(" ")} ${url} exited with ${res.code}: ${res.stderr}`,
  );
  return res.stdout;
}

Deno.test("curl lists, fetches, examines, searches and uploads over IMAPS and STARTTLS", async (t) => {
  const box = await startTestBox();
  const imaps = `imaps://127.0.0.1:${box.tlsPort}`;
  // By name, so the certificate's "localhost" is what curl checks.
  const resolve = ["--resolve", `localhost:${box.tlsPort}:127.0.0.1`];
  const named = `imaps://localhost:${box.tlsPort}`;
  try {
    await t.step("LIST of every mailbox", async () => {
      const out = await curl(box, `${imaps}/`);
      for (const name of ["INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"]) {
        assert(out.includes(`"/" "${name}"`) || out.includes(`"/" ${name}`), out);
      }
      assert(out.includes("\\Trash"), `SPECIAL-USE attributes are listed: ${out}`);
    });

    await t.step("LIST of INBOX by its URL", async () => {
      const out = await curl(box, `${imaps}/INBOX`);
      assert(/^\* LIST \([^)]*\) "\/" "?INBOX"?\r?$/m.test(out), out);
    });

    await t.step("FETCH of UID 1 returns the message as delivered", async () => {
      const out = await curl(box, `${named}/INBOX;UID=1`, ...resolve);
      assert(out.startsWith("From: Alice Example <alice@example.org>\r\n"), out);
      assert(out.includes("Subject: Lunch on Friday\r\n"), out);
      assert(out.endsWith("Shall we meet at the quayside bistro at noon?\r\nAlice\r\n"), out);
    });

    await t.step("FETCH of one MIME part by SECTION", async () => {
      const out = await curl(box, `${imaps}/INBOX;UID=2;SECTION=2`);
      assertEquals(atob(out.trim()), reportCsv);
    });

    await t.step("EXAMINE as a custom request", async () => {
      const out = await curl(box, `${imaps}/`, "--request", "EXAMINE INBOX");
      assert(/^\* 3 EXISTS\r?$/m.test(out), out);
      assert(/\[UIDVALIDITY \d+\]/.test(out), out);
      assert(/\[UIDNEXT 4\]/.test(out), out);
      assert(/\[PERMANENTFLAGS \(\)\]/.test(out), `EXAMINE is read-only: ${out}`);
    });

    await t.step("SEARCH in the URL query", async () => {
      const out = await curl(box, `${imaps}/INBOX?SUBJECT%20glacier`);
      assert(/^\* SEARCH 3\r?$/m.test(out), out);
    });

    await t.step("APPEND by upload, then STATUS", async () => {
      const file = await Deno.makeTempFile({ suffix: ".eml" });
      try {
        await Deno.writeTextFile(
          file,
          "From: curl@example.org\r\nSubject: Uploaded by curl\r\n\r\nSent with curl -T\r\n",
        );
        await curl(box, `${imaps}/Drafts`, "--upload-file", file);
      } finally {
        await Deno.remove(file);
      }
      const out = await curl(box, `${imaps}/`, "--request", "STATUS Drafts (MESSAGES UIDNEXT)");
      assert(/\* STATUS "?Drafts"? \(MESSAGES 1 UIDNEXT 2\)/.test(out), out);
      const msg = await curl(box, `${imaps}/Drafts;UID=1`);
      assert(msg.includes("Subject: Uploaded by curl"), msg);
    });

    await t.step("STARTTLS with --ssl-reqd on the plain port", async () => {
      const url = `imap://localhost:${box.port}/INBOX;UID=3;SECTION=1`;
      const out = await curl(
        box,
        url,
        "--ssl-reqd",
        "--resolve",
        `localhost:${box.port}:127.0.0.1`,
      );
      assertEquals(out.trim(), "Bring crampons and a thermos.");
    });

    await t.step("a wrong password is refused", async () => {
      const res = await runTool("curl", [
        "--silent",
        "--max-time",
        "10",
        "--cacert",
        box.caFile,
        "--user",
        `${box.address}:not the password`,
        `${imaps}/`,
      ], { pkg: "curl" });
      assertEquals(res.code, 67, "curl reports 67 (login denied)");
    });
  } finally {
    await box.stop();
  }
});
