/**
 * What an IMAP client sees of an account, for comparing two servers (a restore
 * against the original): every mailbox's UIDVALIDITY and UIDNEXT, and each
 * message's UID, flags and a digest of its BODY[].
 */
import { toHex } from "../../src/encoding.ts";
import { RawImap } from "./raw_imap.ts";

export type View = Record<string, { uidValidity: string; uidNext: string; messages: string[] }>;

/** Every mailbox's UIDVALIDITY, UIDNEXT, and each message's UID, flags and body digest. */
export async function imapView(port: number, address: string, password: string): Promise<View> {
  const c = await RawImap.connect(port);
  try {
    await c.ok(`LOGIN ${address} "${password}"`);
    const list = await c.ok('LIST "" "*"');
    const view: View = {};
    for (const u of list.untagged) {
      const name = u.text.match(/^\* LIST \([^)]*\) "[^"]*" "?([^"]*)"?$/)?.[1];
      if (!name) continue;
      const sel = await c.ok(`SELECT "${name}"`);
      const code = (k: string) =>
        sel.untagged.map((x) => x.text.match(new RegExp(`\\[${k} (\\d+)\\]`))?.[1]).find(Boolean) ??
          "";
      const messages: string[] = [];
      const exists = sel.untagged.some((x) => /^\* [1-9]\d* EXISTS/.test(x.text));
      if (exists) {
        const r = await c.ok("UID FETCH 1:* (UID FLAGS BODY.PEEK[])");
        for (const f of r.untagged) {
          const uid = f.text.match(/UID (\d+)/)?.[1];
          // \Recent is per session (RFC 3501 §2.3.2), not stored state: left out.
          const flags = f.text.match(/FLAGS \(([^)]*)\)/)?.[1]?.replace(/ ?\\Recent/, "").trim();
          if (!uid || !f.literals[0]) continue;
          const digest = toHex(
            new Uint8Array(
              await crypto.subtle.digest("SHA-256", f.literals[0] as Uint8Array<ArrayBuffer>),
            ),
          );
          messages.push(`${uid} (${flags}) ${digest}`);
        }
      }
      view[name] = {
        uidValidity: code("UIDVALIDITY"),
        uidNext: code("UIDNEXT"),
        messages: messages.sort(),
      };
    }
    return view;
  } finally {
    c.close();
  }
}
