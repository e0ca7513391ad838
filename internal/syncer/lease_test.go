// SPDX-License-Identifier: Apache-2.0

package syncer

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/backoff"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/obs"
	"github.com/emaillistener/emaillistener/internal/store"
)

// fakeLeaser hands out leases unless blocked; the real Redis leases are tested
// in internal/lease, this covers the supervisor's reaction to them.
type fakeLeaser struct {
	mu       sync.Mutex
	blocked  bool
	fence    uint64
	current  *fakeLease
	released int
}

type fakeLease struct {
	l     *fakeLeaser
	fence uint64
	done  chan struct{}
	once  sync.Once
}

func (l *fakeLeaser) Obtain(_ context.Context, _ mail.MailboxID) (Lease, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.blocked {
		return nil, errors.New("held by another node")
	}
	l.fence++
	l.current = &fakeLease{l: l, fence: l.fence, done: make(chan struct{})}
	return l.current, nil
}

func (f *fakeLease) Fence() uint64         { return f.fence }
func (f *fakeLease) Done() <-chan struct{} { return f.done }
func (f *fakeLease) Context(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	stop := context.AfterFunc(parent, func() {})
	go func() {
		defer stop()
		select {
		case <-f.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
func (f *fakeLease) Release(context.Context) error {
	f.l.mu.Lock()
	f.l.released++
	f.l.mu.Unlock()
	return nil
}
func (f *fakeLease) lose() { f.once.Do(func() { close(f.done) }) }

func TestLeaseGatesTheSession(t *testing.T) {
	srv := &fakeServer{validity: 1, raw: map[uint32][]byte{}, gone: map[uint32]bool{}}
	leaser := &fakeLeaser{blocked: true}
	var statesMu sync.Mutex
	var states []string
	m, err := New(Options{
		Protocols: fakeProtocol(srv.dial), Sink: &recSink{}, Cursors: store.NewMemory(), Parser: parse, Leaser: leaser,
		Reconnect: backoff.Policy{Min: time.Millisecond, Max: 5 * time.Millisecond}, Panics: obs.NewPanics(nil),
		OnStatus: func(_ *mail.Mailbox, st mail.Status) {
			statesMu.Lock()
			states = append(states, st.State)
			statesMu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.Start(ctx)
	defer func() { cancel(); _ = m.Stop(context.Background()) }()
	if err := m.Subscribe(&mail.Mailbox{ID: "m", Host: "h"}, mail.ModeCreate); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if s, _ := m.Status("m"); s.State == mail.StateExists {
		t.Fatal("session started without the lease")
	}
	leaser.mu.Lock()
	leaser.blocked = false
	leaser.mu.Unlock()
	waitFor(t, "exists with lease", func() bool { s, _ := m.Status("m"); return s.State == mail.StateExists })

	// Losing the lease stops the session; it is re-obtained with a higher fence.
	leaser.mu.Lock()
	first := leaser.current
	leaser.mu.Unlock()
	first.lose()
	waitFor(t, "re-obtained", func() bool {
		leaser.mu.Lock()
		defer leaser.mu.Unlock()
		return leaser.current != first && leaser.released >= 1
	})
	waitFor(t, "exists again", func() bool { s, _ := m.Status("m"); return s.State == mail.StateExists })
	m.Unsubscribe("m")
	waitFor(t, "released on close", func() bool {
		leaser.mu.Lock()
		defer leaser.mu.Unlock()
		return leaser.released >= 2
	})
	statesMu.Lock()
	defer statesMu.Unlock()
	if len(states) == 0 || states[len(states)-1] != mail.StateClosed {
		t.Errorf("published states %v, want the last to be closed", states)
	}
}
