"""Python's smtplib against a Hearth home box: MX with STARTTLS, submission over
implicit TLS and with STARTTLS, and the refusals. Prints one JSON object:
step name -> {"ok": reply} or {"error": [code, text]}."""
import json
import smtplib
import ssl
import sys

host, mx, sub, subs, cafile, address, password = sys.argv[1:8]
ctx = ssl.create_default_context(cafile=cafile)
out = {}


def message(subject, sender):
    return (f"From: {sender}\r\nTo: {address}\r\nSubject: {subject}\r\n\r\n"
            f"Sent by smtplib: {subject}.\r\n").encode()


def step(name, fn):
    try:
        out[name] = {"ok": repr(fn())}
    except smtplib.SMTPRecipientsRefused as e:
        code, text = list(e.recipients.values())[0]
        out[name] = {"error": [code, text.decode()]}
    except smtplib.SMTPResponseException as e:
        out[name] = {"error": [e.smtp_code, e.smtp_error.decode()]}
    except Exception as e:  # anything else fails the step with its description
        out[name] = {"error": [0, repr(e)]}


def mx_starttls():
    with smtplib.SMTP(host, int(mx), "client.example.org", timeout=10) as s:
        s.starttls(context=ctx)
        return s.sendmail("alice@example.org", [address], message("via MX", "alice@example.org"))


def submission_ssl():
    with smtplib.SMTP_SSL(host, int(subs), context=ctx, timeout=10) as s:
        s.login(address, password)
        return s.sendmail(address, [address], message("via 465", address))


def submission_starttls():
    with smtplib.SMTP(host, int(sub), timeout=10) as s:
        s.starttls(context=ctx)
        s.login(address, password)
        return s.sendmail(address, [address], message("via 587", address))


def wrong_password():
    with smtplib.SMTP_SSL(host, int(subs), context=ctx, timeout=10) as s:
        return s.login(address, "not the password")


def forged_from():
    with smtplib.SMTP_SSL(host, int(subs), context=ctx, timeout=10) as s:
        s.login(address, password)
        return s.sendmail(address, [address], message("forged", "boss@hearth.localhost"))


def remote_recipient():
    with smtplib.SMTP_SSL(host, int(subs), context=ctx, timeout=10) as s:
        s.login(address, password)
        return s.sendmail(address, ["friend@remote.example"], message("remote", address))


step("mx_starttls", mx_starttls)
step("submission_ssl", submission_ssl)
step("submission_starttls", submission_starttls)
step("wrong_password", wrong_password)
step("forged_from", forged_from)
step("remote_recipient", remote_recipient)
print(json.dumps(out))
