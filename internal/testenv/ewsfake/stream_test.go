// SPDX-License-Identifier: Apache-2.0

package ewsfake

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"testing"
	"time"
)

func TestStreamingWireFormat(t *testing.T) {
	s, c := newFake(t, Options{Heartbeat: 100 * time.Millisecond, ConnectionLifetime: 800 * time.Millisecond})
	sub := c.subscribe(false)
	rs := openRawStream(t, s, alice, "pw-alice", []string{sub})
	if rs.status != 200 || rs.header.Get("Transfer-Encoding") != "chunked" || rs.header.Get("Content-Length") != "" {
		t.Fatalf("HTTP %d %v, want 200 chunked", rs.status, rs.header)
	}
	if ct := rs.header.Get("Content-Type"); ct != "text/xml; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}

	// First envelope: a heartbeat with an XML declaration.
	hb, raw := rs.envelope(2 * time.Second)
	if !bytes.HasPrefix(raw, []byte(`<?xml version="1.0" encoding="utf-8"?><s:Envelope`)) {
		t.Errorf("first envelope lacks the XML declaration: %.80s", raw)
	}
	if got := kidNames(hb); !slices.Equal(got, []string{"ResponseCode", "ConnectionStatus"}) || status(hb) != "OK" {
		t.Errorf("heartbeat %v %s", got, raw)
	}

	id, err := s.Deliver(alice, "inbox", testMessage("live", "x@example.org", alice))
	mustOK(t, err)
	var note *node
	for note == nil {
		m, raw := rs.envelope(2 * time.Second)
		if bytes.HasPrefix(raw, []byte("<?xml")) {
			t.Errorf("later envelope has an XML declaration")
		}
		if m.child(nsMsg, "Notifications") != nil {
			note = m
		}
	}
	n := path(note, "Notifications", "Notification")
	if n.space != nsMsg {
		t.Errorf("Notification in %s, want the messages namespace", n.space)
	}
	if got := kidNames(n); !slices.Equal(got, []string{"SubscriptionId", "CreatedEvent", "NewMailEvent", "ModifiedEvent"}) {
		t.Errorf("notification %v", got)
	}
	if path(n, "SubscriptionId").value() != sub {
		t.Errorf("SubscriptionId")
	}
	inbox := s.FolderID(alice, "inbox")
	for _, ev := range n.kids[1:3] {
		if got := kidNames(ev); !slices.Equal(got, []string{"TimeStamp", "ItemId", "ParentFolderId"}) {
			t.Errorf("%s children %v", ev.local, got)
		}
		if v, _ := path(ev, "ItemId").attr("Id"); v != id {
			t.Errorf("%s ItemId %s, want %s", ev.local, v, id)
		}
		if v, _ := path(ev, "ParentFolderId").attr("Id"); v != inbox {
			t.Errorf("%s ParentFolderId %s", ev.local, v)
		}
	}
	mod := n.kids[3]
	if got := kidNames(mod); !slices.Equal(got, []string{"TimeStamp", "FolderId", "ParentFolderId", "UnreadCount"}) || path(mod, "UnreadCount").value() != "1" {
		t.Errorf("folder ModifiedEvent %v", got)
	}

	// Heartbeats until the lifetime ends, then Closed and the terminating chunk.
	for {
		m, _ := rs.envelope(2 * time.Second)
		if status(m) == "Closed" {
			break
		}
		if status(m) != "OK" {
			t.Fatalf("unexpected message %v", kidNames(m))
		}
	}
	if _, err := rs.chunk(time.Second); err != io.EOF {
		t.Errorf("after Closed: %v, want the zero-length chunk", err)
	}
	waitFor(t, time.Second, "stream to close", func() bool { return s.Stats().OpenStreams == 0 })
}

func TestStreamingDeclEveryEnvelopeAndTakeover(t *testing.T) {
	s, c := newFake(t, Options{Heartbeat: 50 * time.Millisecond, DeclEveryEnvelope: true})
	sub := c.subscribe(true)
	first := openRawStream(t, s, alice, "pw-alice", []string{sub})
	for range 2 {
		if _, raw := first.envelope(time.Second); !bytes.HasPrefix(raw, []byte("<?xml")) {
			t.Errorf("DeclEveryEnvelope: envelope without declaration")
		}
	}
	// A second connection for the same subscription takes it over; the first, left
	// without subscriptions, closes.
	second := openRawStream(t, s, alice, "pw-alice", []string{sub})
	for {
		m, _ := first.envelope(time.Second)
		if status(m) == "Closed" {
			break
		}
	}
	if _, err := first.chunk(time.Second); err != io.EOF {
		t.Errorf("first stream did not end: %v", err)
	}
	_, err := s.Deliver(alice, "inbox", testMessage("after takeover", "x@example.org", alice))
	mustOK(t, err)
	for {
		if m, _ := second.envelope(time.Second); m.child(nsMsg, "Notifications") != nil {
			break
		}
	}
}

func TestStreamingQueuedEventsAndMoreEvents(t *testing.T) {
	s, c := newFake(t, Options{Heartbeat: time.Second})
	sub := c.subscribe(false)
	for i := range 20 { // 3 events each, queued while no stream is connected
		_, err := s.Deliver(alice, "inbox", testMessage("q"+itoa(i), "x@example.org", alice))
		mustOK(t, err)
	}
	rs := openRawStream(t, s, alice, "pw-alice", []string{sub})
	var counts []int
	var more []string
	for total := 0; total < 60; {
		m, _ := rs.envelope(2 * time.Second)
		n := path(m, "Notifications", "Notification")
		if n == nil {
			t.Fatalf("expected notifications, got %v", kidNames(m))
		}
		events := len(n.kids) - 1
		mv := path(n, "MoreEvents")
		if mv != nil {
			events--
			more = append(more, mv.value())
		} else {
			more = append(more, "")
		}
		counts = append(counts, events)
		total += events
	}
	if !slices.Equal(counts, []int{50, 10}) || !slices.Equal(more, []string{"true", ""}) {
		t.Errorf("notifications of %v events, MoreEvents %v; want 50 (more) then 10", counts, more)
	}
}

func TestStreamingErrors(t *testing.T) {
	s, c := newFake(t, Options{Heartbeat: 50 * time.Millisecond, HangingConnectionLimit: 1})
	mustOK(t, s.AddMailbox("bob@ewsfake.test", "", "pw-bob"))
	sub := c.subscribe(false)

	// Unknown id: one Error message naming it, ConnectionStatus Closed, HTTP 200.
	rs := openRawStream(t, s, alice, "pw-alice", []string{sub, "AAAAbogus="})
	if rs.status != 200 {
		t.Fatalf("HTTP %d", rs.status)
	}
	_, body := rs.answer()
	for _, want := range []string{`ResponseClass="Error"`, `<m:ResponseCode>ErrorSubscriptionNotFound</m:ResponseCode>`,
		`<m:ErrorSubscriptionIds><m:SubscriptionId>AAAAbogus=</m:SubscriptionId></m:ErrorSubscriptionIds><m:ConnectionStatus>Closed</m:ConnectionStatus>`} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("error answer lacks %s:\n%s", want, body)
		}
	}

	// Someone else's subscription.
	rs = openRawStream(t, s, "bob@ewsfake.test", "pw-bob", []string{sub})
	_, body = rs.answer()
	if !bytes.Contains(body, []byte("ErrorSubscriptionAccessDenied")) {
		t.Errorf("bob streaming alice's subscription: %s", body)
	}

	// The connection limit (1 here) counts per account.
	open := openRawStream(t, s, alice, "pw-alice", []string{sub})
	open.envelope(time.Second)
	rs = openRawStream(t, s, alice, "pw-alice", []string{sub})
	_, body = rs.answer()
	if !bytes.Contains(body, []byte("<m:ResponseCode>ErrorExceededConnectionCount</m:ResponseCode>")) {
		t.Errorf("second stream: %s", body)
	}
	if st := s.Stats(); st.OpenStreams != 1 || st.StreamsByLogin[alice] != 1 {
		t.Errorf("stats %+v", st)
	}

	// A subscription expiring under an open stream: error naming it, then the end.
	mustOK(t, s.ExpireSubscriptions(alice))
	for {
		m, raw := open.envelope(time.Second)
		if status(m) == "OK" {
			continue
		}
		if m.child(nsMsg, "ResponseCode").value() != "ErrorSubscriptionNotFound" || path(m, "ErrorSubscriptionIds", "SubscriptionId").value() != sub || status(m) != "Closed" {
			t.Errorf("expiry message: %s", raw)
		}
		break
	}
	if _, err := open.chunk(time.Second); err != io.EOF {
		t.Errorf("stream did not end after the error: %v", err)
	}
}

func TestStreamingFaultKnobs(t *testing.T) {
	s, c := newFake(t, Options{Heartbeat: 50 * time.Millisecond})

	// DropStreams: half an envelope, then the connection ends mid-chunk.
	sub := c.subscribe(false)
	rs := openRawStream(t, s, alice, "pw-alice", []string{sub})
	rs.envelope(time.Second)
	s.DropStreams()
	var partial []byte
	var err error
	for {
		partial, err = rs.chunk(time.Second)
		if err != nil {
			break
		}
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) || len(partial) == 0 || bytes.Contains(partial, []byte("</s:Envelope>")) {
		t.Errorf("after DropStreams: %v with %d bytes %q", err, len(partial), partial)
	}

	// Stall: silence (no heartbeats) for the stall, then heartbeats again.
	waitFor(t, time.Second, "dropped stream to close", func() bool { return s.Stats().OpenStreams == 0 })
	rs = openRawStream(t, s, alice, "pw-alice", []string{sub})
	rs.envelope(time.Second)
	s.Stall(400 * time.Millisecond)
	t0 := time.Now()
	rs.envelope(2 * time.Second)
	if gap := time.Since(t0); gap < 350*time.Millisecond {
		t.Errorf("stream spoke after %v during a 400ms stall", gap)
	}

	// Restart: connection cut, subscription gone, sync states still valid.
	env, _ := c.call(`<msg:SyncFolderItems><msg:ItemShape><typ:BaseShape>IdOnly</typ:BaseShape></msg:ItemShape>` +
		`<msg:SyncFolderId><typ:DistinguishedFolderId Id="inbox"/></msg:SyncFolderId><msg:MaxChangesReturned>10</msg:MaxChangesReturned></msg:SyncFolderItems>`)
	state := single(t, env, "NoError").child(nsMsg, "SyncState").value()
	s.Restart()
	for {
		if _, err := rs.chunk(time.Second); err != nil {
			if !errors.Is(err, errCut) {
				t.Errorf("after Restart: %v, want a cut connection", err)
			}
			break
		}
	}
	if st := s.Stats(); st.Subscriptions != 0 {
		t.Errorf("%d subscriptions after Restart", st.Subscriptions)
	}
	rs = openRawStream(t, s, alice, "pw-alice", []string{sub})
	if m, _ := rs.answer(); m.child(nsMsg, "ResponseCode").value() != "ErrorSubscriptionNotFound" {
		t.Errorf("old subscription after Restart: %v", kidNames(m))
	}
	env, _ = c.call(`<msg:SyncFolderItems><msg:ItemShape><typ:BaseShape>IdOnly</typ:BaseShape></msg:ItemShape>` +
		`<msg:SyncFolderId><typ:DistinguishedFolderId Id="inbox"/></msg:SyncFolderId><msg:SyncState>` + state +
		`</msg:SyncState><msg:MaxChangesReturned>10</msg:MaxChangesReturned></msg:SyncFolderItems>`)
	single(t, env, "NoError")
	if st := s.Stats(); st.MaxOpenStreams != 1 || st.Requests["GetStreamingEvents"] != 3 || st.Requests["Subscribe"] != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestSubscriptionIdleExpiry(t *testing.T) {
	s, c := newFake(t, Options{SubscriptionIdle: 100 * time.Millisecond, Heartbeat: time.Second})
	sub := c.subscribe(false)
	waitFor(t, 2*time.Second, "idle subscription to expire", func() bool { return s.Stats().Subscriptions == 0 })
	rs := openRawStream(t, s, alice, "pw-alice", []string{sub})
	if m, _ := rs.answer(); m.child(nsMsg, "ResponseCode").value() != "ErrorSubscriptionNotFound" {
		t.Errorf("expired subscription: %v", kidNames(m))
	}
}

func TestMovedEventAndDraftSend(t *testing.T) {
	s, c := newFake(t, Options{Heartbeat: time.Second})
	mustOK(t, s.AddMailbox("bob@ewsfake.test", "", "pw-bob"))
	id := deliverN(t, s, 1, "trash me")[0]
	sub := c.subscribe(true)
	rs := openRawStream(t, s, alice, "pw-alice", []string{sub})

	env, _ := c.call(`<msg:DeleteItem DeleteType="MoveToDeletedItems"><msg:ItemIds><typ:ItemId Id="` + id + `"/></msg:ItemIds></msg:DeleteItem>`)
	single(t, env, "NoError")
	trash, err := s.Items(alice, "deleteditems")
	mustOK(t, err)
	if len(trash) != 1 || trash[0].ID == id {
		t.Fatalf("deleted items %+v", trash)
	}
	m, _ := rs.envelope(2 * time.Second)
	var moved *node
	for _, ev := range path(m, "Notifications", "Notification").kids {
		if ev.local == "MovedEvent" {
			moved = ev
		}
	}
	if moved == nil {
		t.Fatalf("no MovedEvent in %v", kidNames(path(m, "Notifications", "Notification")))
	}
	if got := kidNames(moved); !slices.Equal(got, []string{"TimeStamp", "ItemId", "ParentFolderId", "OldItemId", "OldParentFolderId"}) {
		t.Errorf("MovedEvent %v", got)
	}
	attr := func(name string) string { v, _ := path(moved, name).attr("Id"); return v }
	if attr("ItemId") != trash[0].ID || attr("OldItemId") != id || attr("ParentFolderId") != s.FolderID(alice, "deleteditems") ||
		attr("OldParentFolderId") != s.FolderID(alice, "inbox") {
		t.Errorf("MovedEvent ids wrong")
	}

	// A draft saved, then sent through UpdateItem with SendAndSaveCopy.
	env, _ = c.call(`<msg:CreateItem MessageDisposition="SaveOnly"><msg:Items><typ:Message><typ:Subject>later</typ:Subject>` +
		`<typ:ToRecipients><typ:Mailbox><typ:EmailAddress>bob@ewsfake.test</typ:EmailAddress></typ:Mailbox></typ:ToRecipients>` +
		`</typ:Message></msg:Items></msg:CreateItem>`)
	draft, _ := path(single(t, env, "NoError"), "Items", "Message", "ItemId").attr("Id")
	env, _ = c.call(`<msg:UpdateItem ConflictResolution="AutoResolve" MessageDisposition="SendAndSaveCopy"><msg:ItemChanges><typ:ItemChange>` +
		`<typ:ItemId Id="` + draft + `"/><typ:Updates><typ:SetItemField><typ:FieldURI FieldURI="item:Subject"/>` +
		`<typ:Message><typ:Subject>now</typ:Subject></typ:Message></typ:SetItemField></typ:Updates></typ:ItemChange></msg:ItemChanges></msg:UpdateItem>`)
	single(t, env, "NoError")
	if got, _ := s.Items("bob@ewsfake.test", "inbox"); len(got) != 1 {
		t.Errorf("bob got %d messages", len(got))
	}
	if got, _ := s.Items(alice, "sentitems"); len(got) != 1 || got[0].IsDraft {
		t.Errorf("sent items %+v", got)
	}
	if got, _ := s.Items(alice, "drafts"); len(got) != 0 {
		t.Errorf("drafts still hold %d", len(got))
	}
}
