#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Mail generator for the compose demo: appends a new message to the demo
mailbox's INBOX (IMAP APPEND) every MAIL_INTERVAL seconds, forever, so the
service's IDLE sees new mail and delivers it to the Creatio stand-in.
Settings come from the environment (see compose.yaml). Standard library only.
"""
import imaplib
import os
import sys
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid


def message(n, to):
    m = EmailMessage()
    m["From"] = "Demo Sender <sender@example.com>"
    m["To"] = to
    m["Subject"] = "Demo message #%d" % n
    m["Date"] = formatdate(localtime=False)
    m["Message-ID"] = make_msgid(domain="example.com")
    m.set_content("Hello from the emaillistener demo.\n\nThis is message %d.\n" % n)
    m.add_alternative("<p>Hello from the <b>emaillistener</b> demo.</p><p>This is message %d.</p>" % n,
                      subtype="html")
    return m.as_bytes()


def connect(host, port, user, password):
    c = imaplib.IMAP4(host, port)
    c.login(user, password)
    return c


def main():
    host = os.environ.get("IMAP_HOST", "dovecot")
    port = int(os.environ.get("IMAP_PORT", "143"))
    user = os.environ.get("IMAP_USER", "demo@example.com")
    password = os.environ.get("IMAP_PASSWORD", "demo")
    interval = float(os.environ.get("MAIL_INTERVAL", "10"))
    count = int(os.environ.get("MAIL_COUNT", "0"))  # 0: forever
    n, conn = 0, None
    while count == 0 or n < count:
        n += 1
        try:
            if conn is None:
                conn = connect(host, port, user, password)
            typ, data = conn.append("INBOX", None, imaplib.Time2Internaldate(time.time()), message(n, user))
            print("mailgen: appended demo message #%d to %s: %s %s" % (n, user, typ, data), flush=True)
        except (imaplib.IMAP4.error, OSError) as e:
            print("mailgen: %s (retrying)" % e, flush=True)
            conn = None
        time.sleep(interval)
    if conn is not None:
        conn.logout()
    return 0


if __name__ == "__main__":
    sys.exit(main())
