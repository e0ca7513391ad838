"""Conformance run of a real EWS client (exchangelib, Debian's python3-exchangelib)
against the fake EWS server.

Driven by TestExchangelibConformance. Configuration comes from environment variables:
EWS_URL, EWS_SMTP, EWS_USER, EWS_PASSWORD (Basic login), EWS_NTLM_USER (NTLM login,
DOMAIN\\user), EWS_PEER (another mailbox of the fake, recipient of the sent message),
EWS_SUBJECT (subject of the message the Go side delivers), EWS_SVC_USER and
EWS_SVC_PASSWORD (the service account, which impersonates EWS_PEER).

Protocol on stdout, one line each:
  STEP <name>          progress, for the Go test's log
  READY <sub-id>       the streaming subscription exists; the Go side waits for the
                       stream to open, then delivers a message into the inbox
  RESULT <json>        everything the Go side asserts on; the last line
Each step records its outcome in the result instead of aborting the run, so one
failure does not hide the others.
"""

import datetime
import hashlib
import json
import os
import sys
import traceback

result = {"errors": {}}


def say(*words):
    print(*words, flush=True)


def step(name):
    def wrap(fn):
        say("STEP", name)
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - every failure is reported to Go
            result["errors"][name] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            traceback.print_exc(file=sys.stderr)
        return fn

    return wrap


try:
    import exchangelib
    from exchangelib import (
        BASIC,
        DELEGATE,
        IMPERSONATION,
        NTLM,
        Account,
        Build,
        Configuration,
        Credentials,
        EWSDateTime,
        Mailbox,
        Message,
        Version,
    )
    from exchangelib.properties import CreatedEvent, NewMailEvent
except ImportError as exc:
    say("RESULT", json.dumps({"import_error": str(exc)}))
    sys.exit(0)

result["exchangelib_version"] = exchangelib.__version__

URL = os.environ["EWS_URL"]
SMTP = os.environ["EWS_SMTP"]
PEER = os.environ["EWS_PEER"]
SUBJECT = os.environ["EWS_SUBJECT"]
VERSION = Version(build=Build(15, 1, 2507, 6))


def account_for(user, auth_type, password=None, smtp=SMTP, access_type=DELEGATE):
    config = Configuration(
        service_endpoint=URL,
        credentials=Credentials(user, password or os.environ["EWS_PASSWORD"]),
        auth_type=auth_type,
        version=VERSION,
    )
    return Account(primary_smtp_address=smtp, config=config, autodiscover=False, access_type=access_type)


account = account_for(os.environ["EWS_USER"], BASIC)
state = {}


@step("folders")
def _():
    names = sorted(f.name for f in account.root.walk())
    result["folders"] = names
    result["msg_folder_root_children"] = sorted(f.name for f in account.msg_folder_root.children)
    result["inbox_total_count"] = account.inbox.total_count


@step("sync_initial")
def _():
    changes = list(account.inbox.sync_items(max_changes_returned=2))
    result["sync_initial"] = [[kind, item.id is not None] for kind, item in changes]
    state["sync_state"] = account.inbox.item_sync_state


@step("streaming")
def _():
    sub_id = account.inbox.subscribe_to_streaming()
    say("READY", sub_id)
    seen = []
    item_id = None
    for notification in account.inbox.get_streaming_events(sub_id, connection_timeout=1):
        for event in notification.events:
            seen.append(type(event).__name__)
            if isinstance(event, (NewMailEvent, CreatedEvent)) and item_id is None:
                item_id = (event.item_id.id, event.item_id.changekey)
        if item_id and "NewMailEvent" in seen:
            break
    result["stream_events"] = seen
    state["item_id"] = item_id
    account.inbox.unsubscribe(sub_id)


@step("fetch_mime")
def _():
    (item,) = list(account.fetch(ids=[state["item_id"]]))
    result["fetched_subject"] = item.subject
    result["fetched_mime_sha256"] = hashlib.sha256(item.mime_content).hexdigest()
    result["fetched_message_id"] = item.message_id
    state["item"] = item


@step("sync_incremental")
def _():
    changes = list(account.inbox.sync_items(sync_state=state["sync_state"]))
    result["sync_incremental"] = [[kind, getattr(item, "subject", None)] for kind, item in changes]


@step("find_recent")
def _():
    since = EWSDateTime.now(tz=account.default_timezone) - datetime.timedelta(hours=1)
    qs = account.inbox.filter(datetime_received__gte=since).order_by("-datetime_received")
    result["find_recent"] = [m.subject for m in qs]


@step("categories")
def _():
    item = state["item"]
    item.categories = ["Conformance"]
    item.save(update_fields=["categories"])
    (again,) = list(account.fetch(ids=[(item.id, item.changekey)], only_fields=["categories"]))
    result["categories"] = again.categories


@step("send_and_save")
def _():
    m = Message(
        account=account,
        folder=account.sent,
        subject="sent by exchangelib",
        body="Hello from the conformance test.",
        to_recipients=[Mailbox(email_address=PEER)],
    )
    m.send_and_save()


@step("read_move_copy_delete")
def _():
    item = state["item"]
    item.is_read = True
    item.save(update_fields=["is_read"])
    old_id = item.id
    item.move(account.junk)
    result["move_changed_id"] = item.id != old_id
    result["junk_count"] = account.junk.all().count()
    item.copy(account.inbox)
    moved_id = (item.id, item.changekey)
    item.delete()
    (gone,) = list(account.fetch(ids=[moved_id]))
    result["fetch_deleted"] = type(gone).__name__


@step("pull")
def _():
    sub_id, watermark = account.inbox.subscribe_to_pull(timeout=5)
    Message(account=account, folder=account.inbox, subject="saved into the inbox").save()
    events = []
    for notification in account.inbox.get_events(sub_id, watermark):
        events.extend(type(e).__name__ for e in notification.events)
    result["pull_events"] = events
    account.inbox.unsubscribe(sub_id)


@step("impersonation_streaming")
def _():
    svc = account_for(os.environ["EWS_SVC_USER"], NTLM, os.environ["EWS_SVC_PASSWORD"], PEER, IMPERSONATION)
    result["impersonated_inbox_total"] = svc.inbox.total_count
    sub_id = svc.inbox.subscribe_to_streaming()
    Message(account=account, subject="to the peer", body="x", to_recipients=[Mailbox(email_address=PEER)]).send()
    seen = []
    for notification in svc.inbox.get_streaming_events(sub_id, connection_timeout=1):
        seen.extend(type(e).__name__ for e in notification.events)
        if "NewMailEvent" in seen:
            break
    result["impersonated_stream_events"] = seen


@step("ntlm")
def _():
    ntlm = account_for(os.environ["EWS_NTLM_USER"], NTLM)
    result["ntlm_inbox_total_count"] = ntlm.inbox.total_count


say("RESULT", json.dumps(result))
