"""Drives a Hearth home box with Python's imaplib (the standard library client).

Usage: python3 imaplib_client.py HOST PLAIN_PORT TLS_PORT CA_FILE USER PASSWORD

Prints one JSON object: for each step, the decoded server answers, or {"error": ...}
when the step raised. imaplib_test.ts asserts on it; one failing step does not hide the others.
"""

import imaplib
import json
import ssl
import sys

host, plain_port, tls_port, ca_file, user, password = sys.argv[1:7]
ctx = ssl.create_default_context(cafile=ca_file)
results = {}


def text(value):
    """imaplib answers in bytes, tuples and lists; make them JSON."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (list, tuple)):
        return [text(v) for v in value]
    return value


def step(name, fn):
    try:
        results[name] = text(fn())
    except Exception as e:  # noqa: BLE001 - every failure is reported, not raised
        results[name] = {"error": f"{type(e).__name__}: {e}"}


# Implicit TLS, certificate verified against the private CA (host name 127.0.0.1 is in the cert).
m = imaplib.IMAP4_SSL(host, int(tls_port), ssl_context=ctx, timeout=10)
step("ssl_login", lambda: m.login(user, password))
step("capability", lambda: m.capability())
step("select", lambda: m.select("INBOX"))
step("fetch_header", lambda: m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])"))
step("fetch_flags_size", lambda: m.fetch("1:3", "(UID FLAGS RFC822.SIZE)"))
step("uid_fetch_part", lambda: m.uid("FETCH", "2", "(BODY.PEEK[2])"))
step("fetch_full", lambda: m.fetch("1", "(RFC822)"))
step("search_from", lambda: m.search(None, "FROM", '"alice@example.org"'))
step("search_subject", lambda: m.search(None, "SUBJECT", "glacier"))
step("search_text", lambda: m.search(None, "TEXT", "zeppelin"))
step("search_unseen", lambda: m.search(None, "UNSEEN"))
step("seen_after_fetch", lambda: m.fetch("1", "(FLAGS)"))
step("store", lambda: m.store("3", "+FLAGS", "(\\Flagged $Hiking)"))
step("search_flagged", lambda: m.search(None, "FLAGGED"))
step("copy", lambda: m.copy("3", "Archive"))
step("status_archive", lambda: m.status("Archive", "(MESSAGES UIDNEXT UNSEEN)"))
step("store_deleted", lambda: m.store("2", "+FLAGS", "\\Deleted"))
step("expunge", lambda: m.expunge())
step("search_after_expunge", lambda: m.uid("SEARCH", "ALL"))
step("create", lambda: m.create("Travel"))
step("create_nested", lambda: m.create("Travel/2025"))
step("rename", lambda: m.rename("Travel", "Trips"))
step("list_after_rename", lambda: m.list('""', "Trips*"))
step("delete_child", lambda: m.delete("Trips/2025"))
step("delete", lambda: m.delete("Trips"))
step("list_after_delete", lambda: m.list('""', "*"))
step("status_inbox", lambda: m.status("INBOX", "(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)"))
step("append", lambda: m.append("INBOX", "(\\Seen)", None,
                                b"Subject: From imaplib\r\nFrom: py@example.org\r\n\r\nHello from Python\r\n"))
step("search_appended", lambda: m.search(None, "SUBJECT", '"From imaplib"'))
step("close", lambda: m.close())
step("logout", lambda: m.logout())

# STARTTLS on the plain port, then a login over the upgraded connection.
p = imaplib.IMAP4(host, int(plain_port), timeout=10)
step("plain_capability", lambda: p.capability())
step("starttls", lambda: p.starttls(ssl_context=ctx))
# AUTHENTICATE PLAIN without an initial response: the server sends "+ " and reads the reply.
step("starttls_authenticate", lambda: p.authenticate(
    "PLAIN", lambda _challenge: f"\0{user}\0{password}".encode()))
step("starttls_examine", lambda: p.select("INBOX", readonly=True))
step("starttls_noop", lambda: p.noop())
step("starttls_logout", lambda: p.logout())



def injected_after_starttls():
    """A command pipelined in plaintext after STARTTLS must be discarded, not run under TLS."""
    import socket
    raw = socket.create_connection((host, int(plain_port)), timeout=10)
    reader = raw.makefile("rb")
    reader.readline()  # greeting
    raw.sendall(b"a STARTTLS\r\nb CAPABILITY\r\n")
    ok = reader.readline()
    tls = ctx.wrap_socket(raw, server_hostname=host)
    tls.sendall(b"c NOOP\r\n")
    answers = tls.makefile("rb")
    first = answers.readline()
    tls.sendall(b"d LOGOUT\r\n")
    return [ok.decode().strip(), first.decode().strip()]


step("starttls_injection", injected_after_starttls)

print(json.dumps(results))
