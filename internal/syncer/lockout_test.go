// SPDX-License-Identifier: Apache-2.0

package syncer

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/backoff"
	"github.com/emaillistener/emaillistener/internal/lockout"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/obs"
	"github.com/emaillistener/emaillistener/internal/store"
)

// A rejected password is not retried on the reconnect back-off, nor by
// re-registrations with the same credentials (Creatio's failover job sends a
// recreate every minute); new credentials are tried at once.
func TestRejectedCredentialsAreHeld(t *testing.T) {
	srv := &fakeServer{validity: 1, raw: map[uint32][]byte{}, gone: map[uint32]bool{}}
	var logins atomic.Int32
	dial := func(ctx context.Context, mb *mail.Mailbox) (Session, error) {
		logins.Add(1)
		if mb.Password != "right" {
			return nil, mail.Errorf(mail.ClassAuth, "login", "NO [AUTHENTICATIONFAILED] Authentication failed.")
		}
		return srv.dial(ctx, mb)
	}
	sink := &recSink{}
	guard := lockout.New(lockout.Options{Min: time.Hour, Max: time.Hour})
	m, err := New(Options{
		Protocols: fakeProtocol(dial), Sink: sink, Cursors: store.NewMemory(), Parser: parse, Lockout: guard,
		Reconnect: backoff.Policy{Min: time.Millisecond, Max: 2 * time.Millisecond}, Panics: obs.NewPanics(nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.Start(ctx)
	defer func() { cancel(); _ = m.Stop(context.Background()) }()

	wrong := &mail.Mailbox{ID: "m", Host: "h", UserName: "u", Password: "wrong"}
	if err := m.Subscribe(wrong, mail.ModeCreate); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "auth error", func() bool { s, _ := m.Status("m"); return s.State == mail.StateError && s.ErrorClass == "auth" })
	// The reconnect back-off is 1-2 ms: without the hold this would be
	// hundreds of logins.
	for range 5 {
		again := *wrong
		again.FolderIDs = []string{"INBOX"} // another setting changes: a new worker
		if err := m.Subscribe(&again, mail.ModeRecreate); err != nil {
			t.Fatal(err)
		}
		if err := m.Subscribe(&again, mail.ModeUpdate); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := logins.Load(); n != 1 {
		t.Fatalf("%d logins with the rejected password, want 1", n)
	}
	st, _ := m.Status("m")
	if time.Until(st.RetryAt) < 50*time.Minute {
		t.Errorf("RetryAt %v, want about an hour away", st.RetryAt)
	}
	sink.mu.Lock()
	reports := len(sink.states)
	sink.mu.Unlock()
	if reports != 1 {
		t.Errorf("%d failure reports to the client, want 1", reports)
	}
	// The user fixes the password in Creatio: tried at once.
	fixed := *wrong
	fixed.Password = "right"
	if err := m.Subscribe(&fixed, mail.ModeUpdate); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "exists with the new password", func() bool { s, _ := m.Status("m"); return s.State == mail.StateExists })
	if _, _, held := guard.Check(&fixed); held {
		t.Error("still held after a successful login")
	}
}

// Dial slots are per host and port: mailboxes stuck dialling a dead port do
// not starve another port of the same host.
func TestDialSlotsPerHostAndPort(t *testing.T) {
	srv := &fakeServer{validity: 1, raw: map[uint32][]byte{}, gone: map[uint32]bool{}}
	var mu sync.Mutex
	var hanging atomic.Int32
	dial := func(ctx context.Context, mb *mail.Mailbox) (Session, error) {
		if mb.Port == 1 { // a dead port: the attempt hangs until its context ends
			hanging.Add(1)
			<-ctx.Done()
			return nil, ctx.Err()
		}
		mu.Lock()
		defer mu.Unlock()
		return srv.dial(ctx, mb)
	}
	m, err := New(Options{
		Protocols: fakeProtocol(dial), Sink: &recSink{}, Cursors: store.NewMemory(), Parser: parse, DialConcurrency: 2,
		Reconnect: backoff.Policy{Min: time.Millisecond, Max: 2 * time.Millisecond}, Panics: obs.NewPanics(nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.Start(ctx)
	defer func() { cancel(); _ = m.Stop(context.Background()) }()
	for i := range 10 {
		if err := m.Subscribe(&mail.Mailbox{ID: mail.MailboxID(rune('a' + i)), Host: "Mail.Example.com", Port: 1}, mail.ModeCreate); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "both slots of the dead port taken", func() bool { return hanging.Load() == 2 })
	if err := m.Subscribe(&mail.Mailbox{ID: "healthy", Host: "mail.example.com", Port: 993}, mail.ModeCreate); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the healthy mailbox", func() bool { s, _ := m.Status("healthy"); return s.State == mail.StateExists })
	if k1, k2 := dialKey(&mail.Mailbox{Host: "Mail.Example.com:993"}), dialKey(&mail.Mailbox{Host: "mail.example.com", Port: 993}); k1 != k2 {
		t.Errorf("dialKey: %q != %q", k1, k2)
	}
}

// Creatio's failover job recreates a mailbox that is not yet exists: with
// identical settings that must not abandon the login in progress and start
// another.
func TestRecreateKeepsLoginInProgress(t *testing.T) {
	srv := &fakeServer{validity: 1, raw: map[uint32][]byte{}, gone: map[uint32]bool{}}
	release := make(chan struct{})
	var dials atomic.Int32
	dial := func(ctx context.Context, mb *mail.Mailbox) (Session, error) {
		dials.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return srv.dial(ctx, mb)
	}
	m, err := New(Options{
		Protocols: fakeProtocol(dial), Sink: &recSink{}, Cursors: store.NewMemory(), Parser: parse,
		Reconnect: backoff.Policy{Min: time.Millisecond, Max: 2 * time.Millisecond}, Panics: obs.NewPanics(nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.Start(ctx)
	defer func() { cancel(); _ = m.Stop(context.Background()) }()
	mb := &mail.Mailbox{ID: "slow", Host: "h", UserName: "u", Password: "p"}
	if err := m.Subscribe(mb, mail.ModeCreate); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first login", func() bool { return dials.Load() == 1 })
	for range 5 {
		same := *mb
		if err := m.Subscribe(&same, mail.ModeRecreate); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	waitFor(t, "exists", func() bool { s, _ := m.Status("slow"); return s.State == mail.StateExists })
	if n := dials.Load(); n != 1 {
		t.Fatalf("%d logins, want 1", n)
	}
}

// busyErr is a server asking to be left alone for a while (Exchange's
// ErrorServerBusy with BackOffMilliseconds).
type busyErr struct{ d time.Duration }

func (e busyErr) Error() string             { return "server busy" }
func (e busyErr) RetryAfter() time.Duration { return e.d }

// A session that fails with a server's back-off is not retried before the
// server said, whatever the reconnect policy.
func TestReconnectHonoursServerBackOff(t *testing.T) {
	srv := &fakeServer{validity: 1, raw: map[uint32][]byte{}, gone: map[uint32]bool{}}
	var (
		mu    sync.Mutex
		dials []time.Time
	)
	dial := func(ctx context.Context, mb *mail.Mailbox) (Session, error) {
		mu.Lock()
		dials = append(dials, time.Now())
		n := len(dials)
		mu.Unlock()
		if n == 1 {
			return nil, &mail.Error{Class: mail.ClassProtocol, Op: "subscribe", Err: busyErr{400 * time.Millisecond}}
		}
		return srv.dial(ctx, mb)
	}
	m, err := New(Options{
		Protocols: fakeProtocol(dial), Sink: &recSink{}, Cursors: store.NewMemory(), Parser: parse,
		Reconnect: backoff.Policy{Min: time.Millisecond, Max: 2 * time.Millisecond}, Panics: obs.NewPanics(nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.Start(ctx)
	defer func() { cancel(); _ = m.Stop(context.Background()) }()
	if err := m.Subscribe(&mail.Mailbox{ID: "busy", Host: "h"}, mail.ModeCreate); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "exists after the back-off", func() bool { s, _ := m.Status("busy"); return s.State == mail.StateExists })
	mu.Lock()
	defer mu.Unlock()
	if gap := dials[1].Sub(dials[0]); gap < 400*time.Millisecond {
		t.Fatalf("retried after %v, before the server's back-off of 400ms", gap)
	}
}
