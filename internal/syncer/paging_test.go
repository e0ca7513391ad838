// SPDX-License-Identifier: Apache-2.0

package syncer

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/source"
)

// pagedSession lists at most page refs per Changes call, as a source does for
// a large backlog, and records the calls.
type pagedSession struct {
	fakeSession
	page  int
	mu    *sync.Mutex
	calls *int
}

func (p pagedSession) Changes(ctx context.Context, folder, cur string) (source.Changes, error) {
	p.mu.Lock()
	*p.calls++
	p.mu.Unlock()
	ch, err := p.fakeSession.Changes(ctx, folder, cur)
	if err != nil || len(ch.Refs) <= p.page {
		return ch, err
	}
	ch.Refs, ch.More = ch.Refs[:p.page], true
	ch.Next = ch.Refs[p.page-1].Cursor
	return ch, nil
}

// A source that lists a backlog in pages (More) is asked again until it has
// said everything; every message is delivered once and the cursor ends at the
// last one.
func TestPagedChanges(t *testing.T) {
	srv := &fakeServer{validity: 1, raw: map[uint32][]byte{}, gone: map[uint32]bool{}}
	for uid := uint32(1); uid <= 2500; uid++ {
		if uid%3 == 0 {
			continue // sparse UIDs
		}
		srv.msgs = append(srv.msgs, uid)
		srv.raw[uid] = fmt.Appendf(nil, "%d", uid)
	}
	var mu sync.Mutex
	calls := 0
	m, sink, st, _ := newTestManager(t, srv)
	m.opts.Protocols = fakeProtocol(func(ctx context.Context, mb *mail.Mailbox) (Session, error) {
		s, err := srv.dial(ctx, mb)
		if err != nil {
			return nil, err
		}
		return pagedSession{fakeSession: s.(fakeSession), page: 1000, mu: &mu, calls: &calls}, nil
	})
	if err := st.PutCursor(context.Background(), "big", "INBOX", mail.Cursor{Data: fakeCursor(1, 0)}); err != nil {
		t.Fatal(err)
	}
	if err := m.Subscribe(&mail.Mailbox{ID: "big", Host: "h"}, mail.ModeCreate); err != nil {
		t.Fatal(err)
	}
	want := len(srv.msgs)
	waitFor(t, "the backlog", func() bool { return len(sink.got()) >= want })
	got := sink.got()
	seen := map[string]bool{}
	for _, g := range got {
		if seen[g] {
			t.Fatalf("%s delivered twice", g)
		}
		seen[g] = true
	}
	if len(got) != want {
		t.Errorf("delivered %d, want %d", len(got), want)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls < 2 {
		t.Errorf("%d Changes calls: the pages were not asked for", calls)
	}
	c, _, _ := st.Cursor(context.Background(), "big", "INBOX")
	if last := srv.msgs[len(srv.msgs)-1]; cursorUID(c) != last {
		t.Errorf("cursor at %d, want %d", cursorUID(c), last)
	}
}
