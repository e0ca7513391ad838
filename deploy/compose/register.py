#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Registers the compose demo's mailbox with emaillistener, as Creatio does.

Waits for the service, posts the mailbox's credentials to /api/listeners/create
and waits until /api/listeners/subscriptionsstate reports it "exists" (the
subscription is live: mail appended from now on is delivered). Exit 0 then,
1 after a timeout. Settings come from the environment (see compose.yaml).
Standard library only.
"""
import json
import os
import sys
import time
import urllib.error
import urllib.request

IMAP_SERVER_TYPE = "844f0837-eaa0-4f40-b965-71f5db9eae6e"


def env(name, default=None):
    v = os.environ.get(name, default)
    if v is None:
        sys.exit("register: %s is not set" % name)
    return v


def call(method, url, body=None, timeout=10):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, resp.read().decode()


def credentials():
    user = env("IMAP_USER")
    return {
        "Id": env("MAILBOX_ID"),
        "UserName": user,
        "Password": env("IMAP_PASSWORD"),
        "SenderEmailAddress": user,
        "ServiceUrl": env("IMAP_HOST"),
        "Port": int(env("IMAP_PORT", "143")),
        "UseSsl": False,
        "SecureOption": 0,  # None: plain IMAP, the demo Dovecot has no TLS
        "ServerTypeId": IMAP_SERVER_TYPE,
        "BpmEndpoint": env("BPM_ENDPOINT"),
        "BpmUser": "Supervisor",
        "BpmUserWorkspace": "Default",
        "BpmUserTimeZone": "UTC",
        "FolderIds": [],  # all folders: INBOX with IDLE, Sent polled
        "UseFullEmail": True,
    }


def main():
    base = env("EL_URL").rstrip("/")
    deadline = time.time() + float(env("REGISTER_TIMEOUT", "180"))
    while True:
        try:
            status, body = call("GET", base + "/api/listeners/status")
            print("register: service is up: %s" % body, flush=True)
            break
        except (urllib.error.URLError, OSError) as e:
            if time.time() > deadline:
                print("register: service not reachable: %s" % e, flush=True)
                return 1
            time.sleep(1)
    mailbox = credentials()
    status, body = call("POST", base + "/api/listeners/create", [mailbox], timeout=60)
    print("register: create -> %d %s" % (status, body), flush=True)
    while True:
        status, body = call("POST", base + "/api/listeners/subscriptionsstate", [mailbox["Id"]])
        state = (json.loads(body).get(mailbox["Id"]) or {}).get("State")
        if state == "exists":
            print("register: %s is subscribed; mail to %s now flows to %s"
                  % (mailbox["Id"], mailbox["UserName"], mailbox["BpmEndpoint"]), flush=True)
            return 0
        if time.time() > deadline:
            print("register: subscription state %r: %s" % (state, body), flush=True)
            return 1
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
