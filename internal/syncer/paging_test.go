package syncer

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/source"
)

// pagedSession adds ListRange to the fake and records how messages were
// listed.
type pagedSession struct {
	fakeSession
	mu      *sync.Mutex
	ranges  *[][2]uint32
	largest *int // most refs one ListAfter returned
}

func (p pagedSession) ListRange(_ context.Context, from, to uint32) ([]source.MessageRef, error) {
	p.mu.Lock()
	*p.ranges = append(*p.ranges, [2]uint32{from, to})
	p.mu.Unlock()
	refs, _ := p.fakeSession.ListAfter(context.Background(), from-1)
	var out []source.MessageRef
	for _, r := range refs {
		if r.UID <= to {
			out = append(out, r)
		}
	}
	return out, nil
}

func (p pagedSession) ListAfter(ctx context.Context, uid uint32) ([]source.MessageRef, error) {
	refs, err := p.fakeSession.ListAfter(ctx, uid)
	p.mu.Lock()
	*p.largest = max(*p.largest, len(refs))
	p.mu.Unlock()
	return refs, err
}

// A backlog larger than a page (a mailbox that was not served for a long
// time) is listed in pages, never in one response the server may not be
// allowed to send.
func TestLargeBacklogListedInPages(t *testing.T) {
	const n = 2*listPage + 5000
	srv := &fakeServer{validity: 1, raw: map[uint32][]byte{}, gone: map[uint32]bool{}}
	for uid := uint32(1); uid <= n; uid++ {
		if uid%3 == 0 {
			continue // sparse UIDs: expunged long ago
		}
		srv.msgs = append(srv.msgs, uid)
		srv.raw[uid] = fmt.Appendf(nil, "Subject: %d\r\n\r\nx", uid)
	}
	var mu sync.Mutex
	var ranges [][2]uint32
	largest := 0
	m, sink, st, _ := newTestManager(t, srv)
	m.opts.Dialer = DialerFunc(func(ctx context.Context, mb *mail.Mailbox, onExists func()) (Session, error) {
		s, err := srv.dial(ctx, mb, onExists)
		if err != nil {
			return nil, err
		}
		return pagedSession{fakeSession: s.(fakeSession), mu: &mu, ranges: &ranges, largest: &largest}, nil
	})
	if err := st.PutCursor(context.Background(), "big", "INBOX", mail.Cursor{UIDValidity: 1}); err != nil {
		t.Fatal(err)
	}
	if err := m.Subscribe(&mail.Mailbox{ID: "big", Host: "h"}, ModeCreate); err != nil {
		t.Fatal(err)
	}
	want := len(srv.msgs)
	waitFor(t, "the backlog", func() bool { return len(sink.got()) >= want })
	mu.Lock()
	defer mu.Unlock()
	last := srv.msgs[len(srv.msgs)-1] // UIDNEXT - 1
	if len(ranges) != 3 || ranges[0] != [2]uint32{1, listPage} || ranges[2][1] != last {
		t.Errorf("ranges %v, want 3 pages of %d up to %d", ranges, listPage, last)
	}
	if largest > listPage {
		t.Errorf("ListAfter returned %d refs at once", largest)
	}
	if got := len(sink.got()); got != want {
		t.Errorf("delivered %d, want %d", got, want)
	}
	c, _, _ := st.Cursor(context.Background(), "big", "INBOX")
	if c.LastUID != last {
		t.Errorf("cursor at %d, want %d", c.LastUID, last)
	}
}
