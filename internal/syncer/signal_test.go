// SPDX-License-Identifier: Apache-2.0

package syncer

import (
	"context"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/source"
)

// hubSession is a session without a push connection of its own: its changes
// come from a hub shared by many mailboxes (Exchange streaming, Graph
// notifications).
type hubSession struct {
	s      fakeSession
	signal chan []string
}

func (h hubSession) Folders(ctx context.Context) ([]mail.Folder, error) { return h.s.Folders(ctx) }
func (h hubSession) Changes(ctx context.Context, folder, cur string) (source.Changes, error) {
	return h.s.Changes(ctx, folder, cur)
}
func (h hubSession) Fetch(ctx context.Context, ref source.Ref) (*source.Fetched, error) {
	return h.s.Fetch(ctx, ref)
}
func (h hubSession) Close() error            { return nil }
func (h hubSession) Signal() <-chan []string { return h.signal }

// A mailbox whose session is signalled by a hub gets new mail at once on the
// signal, long before the poll interval; signals for folders it does not
// watch wake nothing.
func TestHubSignalDelivers(t *testing.T) {
	srv := &fakeServer{validity: 1, raw: map[uint32][]byte{}, gone: map[uint32]bool{}}
	signal := make(chan []string, 1)
	m, sink, st, _ := newTestManager(t, srv)
	m.opts.FolderPoll = time.Hour // only the signal can wake it
	m.opts.Protocols = fakeProtocol(func(ctx context.Context, mb *mail.Mailbox) (Session, error) {
		s, err := srv.dial(ctx, mb)
		if err != nil {
			return nil, err
		}
		return hubSession{s: s.(fakeSession), signal: signal}, nil
	})
	if err := m.Subscribe(&mail.Mailbox{ID: "hub", Host: "h"}, mail.ModeCreate); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "exists", func() bool { s, _ := m.Status("hub"); return s.State == mail.StateExists })
	time.Sleep(50 * time.Millisecond) // parked in its wait
	srv.add(1, "pushed through the hub")
	if got := sink.got(); len(got) != 0 {
		t.Fatalf("delivered %v before any signal", got)
	}
	signal <- []string{"Sent Items"} // not watched: no catch-up
	time.Sleep(100 * time.Millisecond)
	if got := sink.got(); len(got) != 0 {
		t.Fatalf("a signal for an unwatched folder delivered %v", got)
	}
	if _, ok, _ := st.Cursor(context.Background(), "hub", "Sent Items"); ok {
		t.Fatal("a signal for an unwatched folder started syncing it")
	}
	signal <- []string{"INBOX"}
	waitFor(t, "delivery after the signal", func() bool { return len(sink.got()) == 1 })
}

// markingSession records the messages it was asked to mark.
type markingSession struct {
	hubSession
	marked chan source.Ref
}

func (m markingSession) MarkDelivered(_ context.Context, ref source.Ref) error {
	m.marked <- ref
	return nil
}

// A session that marks delivered messages is told of each one the client
// acknowledged, and of no other (a refused one is skipped, not marked).
func TestMarkerAfterAcknowledgement(t *testing.T) {
	srv := &fakeServer{validity: 1, raw: map[uint32][]byte{}, gone: map[uint32]bool{}}
	signal := make(chan []string, 1)
	marked := make(chan source.Ref, 10)
	m, sink, _, _ := newTestManager(t, srv)
	m.opts.Protocols = fakeProtocol(func(ctx context.Context, mb *mail.Mailbox) (Session, error) {
		s, err := srv.dial(ctx, mb)
		if err != nil {
			return nil, err
		}
		return markingSession{hubSession{s: s.(fakeSession), signal: signal}, marked}, nil
	})
	if err := m.Subscribe(&mail.Mailbox{ID: "mark", Host: "h"}, mail.ModeCreate); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "exists", func() bool { s, _ := m.Status("mark"); return s.State == mail.StateExists })
	srv.add(6, "reject") // the client refuses it for good
	srv.add(7, "to be marked")
	signal <- []string{"INBOX"}
	select {
	case ref := <-marked:
		if ref.ID != "7" || ref.Folder != "INBOX" {
			t.Fatalf("marked %+v, want INBOX/7 only", ref)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the delivered message was never marked")
	}
	if got := sink.got(); len(got) != 1 {
		t.Fatalf("delivered %q, want one message", got)
	}
	select {
	case ref := <-marked:
		t.Fatalf("also marked %+v", ref)
	case <-time.After(100 * time.Millisecond):
	}
}
