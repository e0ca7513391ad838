#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A stand-in for Creatio's ExchangeListenerService.svc for the compose demo.

It answers every callback the service makes with 200 and prints what arrived:
ProcessFullEmail (one line per email), ProcessMailboxState, RefreshToken.
GET /healthz is its own health check. Standard library only.
"""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def summary(op, body):
    if op == "ProcessFullEmail":
        lines = []
        for e in body.get("Emails") or []:
            atts = len(e.get("Attachments") or [])
            lines.append(
                "email for mailbox %s: %r from %s (%d bytes of body, %d attachments, %s)"
                % ((body.get("SubscriptionInfo") or {}).get("MailboxId"), e.get("Subject"),
                   e.get("Sender"), len(e.get("Body") or ""), atts, e.get("MessageId")))
        return "\n".join(lines) or "ProcessFullEmail without emails"
    if op == "ProcessMailboxState":
        return "mailbox state: %s" % json.dumps(body, ensure_ascii=False)
    return "%s: %s" % (op, json.dumps(body, ensure_ascii=False)[:500])


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")
            return
        self.send_response(404)
        self.end_headers()

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n)
        op = self.path.rstrip("/").rsplit("/", 1)[-1]
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            print("%s: not JSON: %r" % (op, raw[:200]), flush=True)
            self.send_response(400)
            self.end_headers()
            return
        print(summary(op, body if isinstance(body, dict) else {"body": body}), flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, fmt, *args):
        pass  # one line per callback is printed above


def main():
    port = int(os.environ.get("PORT", "8080"))
    srv = ThreadingHTTPServer(("", port), Handler)
    print("creatio-stub listening on :%d" % port, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
