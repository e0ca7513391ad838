// SPDX-License-Identifier: Apache-2.0

package history

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/backoff"
	"github.com/emaillistener/emaillistener/internal/lockout"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/obs"
)

// Loads whose client is down give their slot back: with every slot taken by
// such loads, a load for a healthy client still runs, and the parked ones
// finish, each email once, when their client comes back.
func TestDeadClientDoesNotHoldSlots(t *testing.T) {
	var down sync.Map // mailbox id -> true while its client is down
	var mu sync.Mutex
	got := map[string]int{}
	deliver := func(ctx context.Context, mb *mail.Mailbox, m *mail.Message) error {
		if _, ok := down.Load(mb.ID); ok {
			return errors.New("delivery: gave up retrying for now") // what a patient Deliver returns
		}
		mu.Lock()
		got[string(mb.ID)+"/"+m.Text]++
		mu.Unlock()
		return nil
	}
	l, err := New(Options{
		Protocols: imapOnly(func(context.Context, *mail.Mailbox) (Session, error) { return fakeSession{n: 20}, nil }),
		Deliver:   deliver,
		Parse: func(raw []byte) (*mail.Message, error) {
			return &mail.Message{MessageID: "<x>", Text: string(raw)}, nil
		},
		Concurrency: 2,
		Retry:       backoff.Policy{Min: time.Millisecond, Max: 2 * time.Millisecond},
		Park:        backoff.Policy{Min: 20 * time.Millisecond, Max: 40 * time.Millisecond},
		Panics:      obs.NewPanics(nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.Start(ctx)
	defer func() { cancel(); _ = l.Stop(context.Background()) }()

	for _, id := range []mail.MailboxID{"dead1", "dead2", "dead3", "dead4"} {
		down.Store(id, true)
		if err := l.Load(ctx, &mail.Mailbox{ID: id}, mail.Query{}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	if err := l.Load(ctx, &mail.Mailbox{ID: "live"}, mail.Query{}); err != nil {
		t.Fatal(err)
	}
	if p := waitDone(t, l, "live"); p.State != mail.HistoryDone || p.Delivered != 20 {
		t.Fatalf("live load: %+v", p)
	}
	t.Logf("the healthy load finished %v after its start, behind 4 dead clients", time.Since(start))
	// A dead client's load alternates between a try (running) and parking
	// (queued, with the reason); it must be seen parked.
	var p mail.HistoryProgress
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if p, _ = l.Progress("dead1"); p.State == mail.HistoryQueued && p.Error != "" {
			break
		}
	}
	if p.State != mail.HistoryQueued || p.Error == "" {
		t.Errorf("a parked load shows %+v, want queued with the reason", p)
	}
	for _, id := range []string{"dead1", "dead2", "dead3", "dead4"} {
		down.Delete(mail.MailboxID(id))
	}
	for _, id := range []mail.MailboxID{"dead1", "dead2", "dead3", "dead4"} {
		if p := waitDone(t, l, id); p.State != mail.HistoryDone || p.Delivered != 20 {
			t.Fatalf("%s after recovery: %+v", id, p)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for k, n := range got {
		if n != 1 {
			t.Errorf("%s delivered %d times", k, n)
		}
	}
	if len(got) != 5*20 {
		t.Errorf("%d emails delivered, want %d", len(got), 5*20)
	}
}

// A load for credentials the server rejected fails at once, without a login,
// until the hold ends.
func TestHeldCredentialsNotTried(t *testing.T) {
	var dials atomic.Int32
	guard := lockout.New(lockout.Options{Min: time.Hour})
	l, err := New(Options{
		Protocols: imapOnly(func(context.Context, *mail.Mailbox) (Session, error) {
			dials.Add(1)
			return nil, mail.Errorf(mail.ClassAuth, "login", "NO authentication failed")
		}),
		Deliver: func(context.Context, *mail.Mailbox, *mail.Message) error { return nil },
		Parse:   func(raw []byte) (*mail.Message, error) { return &mail.Message{}, nil },
		Lockout: guard,
		Retry:   backoff.Policy{Min: time.Millisecond, Max: 2 * time.Millisecond},
		Panics:  obs.NewPanics(nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.Start(ctx)
	defer func() { cancel(); _ = l.Stop(context.Background()) }()
	mb := &mail.Mailbox{ID: "m", Host: "h", UserName: "u", Password: "wrong"}
	for i := range 3 {
		if err := l.Load(ctx, mb, mail.Query{UIDFrom: uint32(i + 1)}); err != nil {
			t.Fatal(err)
		}
		if p := waitDone(t, l, "m"); p.State != mail.HistoryFailed {
			t.Fatalf("load %d: %+v", i, p)
		}
	}
	if n := dials.Load(); n != 1 {
		t.Fatalf("%d logins, want 1", n)
	}
	p, _ := l.Progress("m")
	if !strings.Contains(p.Error, "not tried again") {
		t.Errorf("error %q does not say the credentials are held", p.Error)
	}
}
