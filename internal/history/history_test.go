// SPDX-License-Identifier: Apache-2.0

package history

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/backoff"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/obs"
	"github.com/emaillistener/emaillistener/internal/source"
)

// fakeSession serves one folder with UIDs 1..n. failAt makes the connection
// "drop" when that UID is fetched, once. The protocol paths run against
// Dovecot in test/e2e; this covers merge, restart and resume.
type fakeSession struct {
	n      uint32
	failAt *atomic.Uint32
	dials  *atomic.Int32
}

func (s fakeSession) Folders(context.Context) ([]mail.Folder, error) {
	return []mail.Folder{{Name: "INBOX", Selectable: true}, {Name: "Trash", Selectable: true}}, nil
}
func (s fakeSession) Search(_ context.Context, folder string, q mail.Query) ([]source.Ref, error) {
	var out []source.Ref
	for u := max(q.UIDFrom, 1); u <= s.n; u++ {
		out = append(out, source.Ref{Folder: folder, ID: fmt.Sprint(u)})
	}
	return out, nil
}
func (s fakeSession) FetchMany(_ context.Context, refs []source.Ref, fn func(source.Ref, *source.Fetched) error) error {
	for _, r := range refs {
		var uid uint32
		fmt.Sscan(r.ID, &uid)
		if s.failAt != nil && s.failAt.CompareAndSwap(uid, 0) {
			return mail.Errorf(mail.ClassConnect, "fetch", "connection reset")
		}
		if err := fn(r, &source.Fetched{Ref: r, Raw: []byte(r.ID)}); err != nil {
			return err
		}
	}
	return nil
}
func (s fakeSession) Close() error { return nil }

type recorder struct {
	mu    sync.Mutex
	got   map[string]int
	delay time.Duration
}

func (r *recorder) deliver(ctx context.Context, _ *mail.Mailbox, m *mail.Message) error {
	if r.delay > 0 {
		select {
		case <-time.After(r.delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	r.got[m.Text]++
	r.mu.Unlock()
	return nil
}

func newLoader(t *testing.T, sess fakeSession, rec *recorder) *Loader {
	t.Helper()
	l, err := New(Options{
		Protocols: imapOnly(func(context.Context, *mail.Mailbox) (Session, error) {
			if sess.dials != nil {
				sess.dials.Add(1)
			}
			return sess, nil
		}),
		Deliver: rec.deliver,
		Parse: func(raw []byte) (*mail.Message, error) {
			return &mail.Message{MessageID: "<x>", Text: string(raw)}, nil
		},
		Retry:  backoff.Policy{Min: time.Millisecond, Max: 2 * time.Millisecond},
		Panics: obs.NewPanics(nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.Start(ctx)
	t.Cleanup(func() { cancel(); _ = l.Stop(context.Background()) })
	return l
}

// imapOnly registers dial for IMAP mailboxes (the zero ServerKind of the
// tests' mailboxes is mapped too), every folder but Trash by default.
func imapOnly(dial Dialer) map[mail.ServerKind]Protocol {
	p := Protocol{Dial: dial, WatchByDefault: func(f mail.Folder) bool { return f.Name != "Trash" }}
	return map[mail.ServerKind]Protocol{mail.ServerIMAP: p, mail.ServerUnknown: p}
}

func waitDone(t *testing.T, l *Loader, id mail.MailboxID) mail.HistoryProgress {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if p, ok := l.Progress(id); ok && (p.State == mail.HistoryDone || p.State == mail.HistoryFailed) {
			return p
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("load did not finish")
	return mail.HistoryProgress{}
}

func TestResumeAfterDropDeliversEachOnce(t *testing.T) {
	var failAt atomic.Uint32
	failAt.Store(600)
	dials := &atomic.Int32{}
	rec := &recorder{got: map[string]int{}}
	l := newLoader(t, fakeSession{n: 1000, failAt: &failAt, dials: dials}, rec)
	if err := l.Load(context.Background(), &mail.Mailbox{ID: "m"}, mail.Query{}); err != nil {
		t.Fatal(err)
	}
	p := waitDone(t, l, "m")
	if p.State != mail.HistoryDone || dials.Load() != 2 {
		t.Fatalf("progress %+v after %d dials", p, dials.Load())
	}
	if len(rec.got) != 1000 {
		t.Fatalf("delivered %d distinct, want 1000", len(rec.got))
	}
	// Parallel deliverers may re-deliver a few in flight at the drop, never skip.
	dups := 0
	for _, n := range rec.got {
		dups += n - 1
	}
	if dups > 2*DefaultDeliverers+2 {
		t.Errorf("%d re-deliveries after one resume", dups)
	}
}

func TestRepeatedRequestIsMergedAndNewFilterRestarts(t *testing.T) {
	rec := &recorder{got: map[string]int{}, delay: time.Millisecond}
	dials := &atomic.Int32{}
	l := newLoader(t, fakeSession{n: 300, dials: dials}, rec)
	mb := &mail.Mailbox{ID: "m"}
	for i := 0; i < 5; i++ {
		if err := l.Load(context.Background(), mb, mail.Query{}); err != nil {
			t.Fatal(err)
		}
	}
	p := waitDone(t, l, "m")
	if dials.Load() != 1 || p.Delivered != 300 {
		t.Fatalf("5 identical requests: %d loads, progress %+v; want one load of 300", dials.Load(), p)
	}
	total := 0
	for _, n := range rec.got {
		total += n
	}
	if total != 300 {
		t.Fatalf("delivered %d, want 300 (merged, not doubled)", total)
	}
	// A different filter while running replaces the load.
	dials.Store(0)
	if err := l.Load(context.Background(), mb, mail.Query{UIDFrom: 1}); err != nil {
		t.Fatal(err)
	}
	if err := l.Load(context.Background(), mb, mail.Query{UIDFrom: 250}); err != nil {
		t.Fatal(err)
	}
	p = waitDone(t, l, "m")
	if p.State != mail.HistoryDone || p.Filter != "UID 250:*" || p.Delivered != 51 {
		t.Fatalf("restarted load: %+v", p)
	}
}

func TestStartAfterStop(t *testing.T) {
	rec := &recorder{got: map[string]int{}}
	l := newLoader(t, fakeSession{n: 1}, rec)
	_ = l.Stop(context.Background())
	if err := l.Load(context.Background(), &mail.Mailbox{ID: "m"}, mail.Query{}); !errors.Is(err, ErrStopped) {
		t.Fatalf("err = %v", err)
	}
}
