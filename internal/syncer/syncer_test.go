// SPDX-License-Identifier: Apache-2.0

package syncer

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
	"github.com/emaillistener/emaillistener/internal/store"
)

// fakeServer is an in-memory mailbox for supervisor edge cases that a real
// Dovecot cannot produce on demand (expunge races, exotic failures). The
// protocol paths themselves are covered against Dovecot in test/e2e.
type fakeServer struct {
	mu       sync.Mutex
	validity uint32
	msgs     []uint32          // UIDs in INBOX
	gone     map[uint32]bool   // listed but expunged before FETCH
	raw      map[uint32][]byte // message bodies
	dialErr  error
	panicOn  uint32
	wake     func()
}

// fakeSession serves the fake through the source contract: a cursor is
// "validity:uid", pushes come through Wait.
type fakeSession struct {
	s      *fakeServer
	pushed chan struct{}
}

func (f *fakeServer) dial(_ context.Context, _ *mail.Mailbox) (Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dialErr != nil {
		return nil, f.dialErr
	}
	sess := fakeSession{s: f, pushed: make(chan struct{}, 1)}
	f.wake = func() {
		select {
		case sess.pushed <- struct{}{}:
		default:
		}
	}
	return sess, nil
}

func (f *fakeServer) add(uid uint32, raw string) {
	f.mu.Lock()
	f.msgs = append(f.msgs, uid)
	f.raw[uid] = []byte(raw)
	wake := f.wake
	f.mu.Unlock()
	if wake != nil {
		wake()
	}
}

func (s fakeSession) Folders(context.Context) ([]mail.Folder, error) {
	return []mail.Folder{{Name: "INBOX", Selectable: true}}, nil
}

func fakeCursor(validity, uid uint32) string { return fmt.Sprintf("%d:%d", validity, uid) }

func parseFakeCursor(c string) (validity, uid uint32) {
	fmt.Sscanf(c, "%d:%d", &validity, &uid)
	return
}

func (s fakeSession) Changes(_ context.Context, folder, cur string) (source.Changes, error) {
	s.s.mu.Lock()
	defer s.s.mu.Unlock()
	last := uint32(0)
	if n := len(s.s.msgs); n > 0 {
		last = s.s.msgs[n-1]
	}
	if cur == "" {
		return source.Changes{Next: fakeCursor(s.s.validity, last)}, nil
	}
	validity, after := parseFakeCursor(cur)
	ch := source.Changes{}
	if validity != s.s.validity { // renumbered: everything again
		ch.Reset, after = true, 0
	}
	for _, u := range s.s.msgs {
		if u > after {
			ch.Refs = append(ch.Refs, source.Ref{Folder: folder, ID: fmt.Sprint(u), Cursor: fakeCursor(s.s.validity, u)})
		}
	}
	return ch, nil
}

func (s fakeSession) Fetch(_ context.Context, ref source.Ref) (*source.Fetched, error) {
	s.s.mu.Lock()
	defer s.s.mu.Unlock()
	var uid uint32
	fmt.Sscan(ref.ID, &uid)
	if uid == s.s.panicOn {
		panic("fetch exploded")
	}
	if s.s.gone[uid] {
		return nil, source.ErrGone
	}
	return &source.Fetched{Ref: ref, Raw: s.s.raw[uid], Date: time.Unix(int64(uid), 0)}, nil
}

func (s fakeSession) Wait(ctx context.Context, folders []string, max time.Duration) ([]string, error) {
	t := time.NewTimer(max)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.pushed:
		return folders[:1], nil
	case <-t.C:
		return nil, nil
	}
}

func (s fakeSession) Close() error { return nil }

type permErr struct{}

func (permErr) Error() string          { return "refused for good" }
func (permErr) PermanentFailure() bool { return true }

// recSink acknowledges every message except those whose body is "reject".
type recSink struct {
	mu        sync.Mutex
	delivered []string
	states    []error
}

func (r *recSink) Deliver(_ context.Context, _ *mail.Mailbox, m *mail.Message) error {
	if m.Text == "reject" {
		return permErr{}
	}
	r.mu.Lock()
	r.delivered = append(r.delivered, m.Text)
	r.mu.Unlock()
	return nil
}

func (r *recSink) ReportState(_ context.Context, _ *mail.Mailbox, err error) error {
	r.mu.Lock()
	r.states = append(r.states, err)
	r.mu.Unlock()
	return nil
}

func (r *recSink) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.delivered...)
}

func parse(raw []byte) (*mail.Message, error) {
	if string(raw) == "garbage" {
		return nil, errors.New("unparseable")
	}
	return &mail.Message{MessageID: "<x>", Text: string(raw)}, nil
}

func newTestManager(t *testing.T, srv *fakeServer) (*Manager, *recSink, *store.Memory, *obs.Panics) {
	t.Helper()
	sink := &recSink{}
	st := store.NewMemory()
	panics := obs.NewPanics(nil)
	m, err := New(Options{
		Protocols: fakeProtocol(srv.dial), Sink: sink, Cursors: st, Parser: parse,
		Reconnect: backoff.Policy{Min: time.Millisecond, Max: 5 * time.Millisecond}, Panics: panics,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.Start(ctx)
	t.Cleanup(func() {
		cancel()
		_ = m.Stop(context.Background())
	})
	return m, sink, st, panics
}

// fakeProtocol serves IMAP mailboxes and those of the tests that leave the
// kind unset.
func fakeProtocol(dial func(ctx context.Context, mb *mail.Mailbox) (Session, error)) map[mail.ServerKind]Protocol {
	p := Protocol{Dialer: DialerFunc(dial)}
	return map[mail.ServerKind]Protocol{mail.ServerIMAP: p, mail.ServerUnknown: p}
}

// cursorUID is the UID a fake cursor points at.
func cursorUID(c mail.Cursor) uint32 { _, uid := parseFakeCursor(c.Data); return uid }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestSkipsAndAdvancesPastUndeliverable(t *testing.T) {
	srv := &fakeServer{validity: 7, raw: map[uint32][]byte{}, gone: map[uint32]bool{}}
	m, sink, st, _ := newTestManager(t, srv)
	mb := &mail.Mailbox{ID: "m1", Host: "h"}
	if err := m.Subscribe(mb, mail.ModeCreate); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "exists", func() bool { s, _ := m.Status("m1"); return s.State == mail.StateExists })
	srv.mu.Lock()
	srv.gone[2] = true
	srv.mu.Unlock()
	srv.add(1, "one")
	srv.add(2, "expunged before fetch")
	srv.add(3, "garbage")
	srv.add(4, "reject")
	srv.add(5, "five")
	waitFor(t, "delivery of 5", func() bool { return len(sink.got()) == 2 })
	if got := sink.got(); got[0] != "one" || got[1] != "five" {
		t.Fatalf("delivered %v", got)
	}
	waitFor(t, "cursor 5", func() bool { c, _, _ := st.Cursor(context.Background(), "m1", "INBOX"); return cursorUID(c) == 5 })
	for reason, want := range map[string]float64{"expunged": 1, "unparseable": 1, "rejected": 1} {
		if got := obs.Value(m.metrics.skipped.WithLabelValues(reason)); got != want {
			t.Errorf("skipped{%s} = %v, want %v", reason, got, want)
		}
	}
}

// A source that says the cursor is no longer valid (IMAP: UIDVALIDITY
// changed) re-delivers; the syncer counts it and moves on from its refs.
func TestCursorResetRedelivers(t *testing.T) {
	srv := &fakeServer{validity: 1, raw: map[uint32][]byte{}, gone: map[uint32]bool{}}
	srv.add(1, "old")
	m, sink, st, _ := newTestManager(t, srv)
	if err := m.Subscribe(&mail.Mailbox{ID: "m2", Host: "h"}, mail.ModeCreate); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "exists", func() bool { s, _ := m.Status("m2"); return s.State == mail.StateExists })
	if c, _, _ := st.Cursor(context.Background(), "m2", "INBOX"); c.Data != "1:1" {
		t.Fatalf("new subscription cursor = %+v, want at UIDNEXT-1", c)
	}
	// The server renumbers: same message under a new UIDVALIDITY, plus a new one.
	// No push: a real server ends the session of a renumbered folder.
	srv.mu.Lock()
	srv.validity, srv.msgs = 2, []uint32{1, 2}
	srv.raw[2] = []byte("new")
	srv.mu.Unlock()
	// Force a reconnect so EXAMINE sees the new UIDVALIDITY.
	m.Subscribe(&mail.Mailbox{ID: "m2", Host: "h", FolderIDs: []string{"INBOX"}}, mail.ModeRecreate)
	waitFor(t, "re-delivery", func() bool { return len(sink.got()) == 2 })
	if got := sink.got(); got[0] != "old" || got[1] != "new" {
		t.Fatalf("delivered %v", got)
	}
	if c, _, _ := st.Cursor(context.Background(), "m2", "INBOX"); c.Data != "2:2" {
		t.Fatalf("cursor after change = %+v", c)
	}
}

func TestPanicInSessionIsRecoveredAndRetried(t *testing.T) {
	srv := &fakeServer{validity: 1, raw: map[uint32][]byte{}, gone: map[uint32]bool{}, panicOn: 1}
	m, sink, _, panics := newTestManager(t, srv)
	if err := m.Subscribe(&mail.Mailbox{ID: "m3", Host: "h"}, mail.ModeCreate); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "exists", func() bool { s, _ := m.Status("m3"); return s.State == mail.StateExists })
	srv.add(1, "boom")
	waitFor(t, "panic", func() bool { return panics.Count("syncer") >= 1 })
	waitFor(t, "error state", func() bool { s, _ := m.Status("m3"); return s.State == mail.StateError || s.State == mail.StateExists })
	srv.mu.Lock()
	srv.panicOn = 0
	srv.mu.Unlock()
	waitFor(t, "delivery after recovery", func() bool { return len(sink.got()) == 1 })
}

func TestDialFailureReportedOnceThenRecovery(t *testing.T) {
	srv := &fakeServer{validity: 1, raw: map[uint32][]byte{}, gone: map[uint32]bool{},
		dialErr: mail.Errorf(mail.ClassAuth, "login", "bad password")}
	m, sink, _, _ := newTestManager(t, srv)
	if err := m.Subscribe(&mail.Mailbox{ID: "m4", Host: "h"}, mail.ModeCreate); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "error", func() bool { s, _ := m.Status("m4"); return s.State == mail.StateError && s.ErrorClass == "auth" })
	time.Sleep(50 * time.Millisecond) // many retries at 1-5 ms
	srv.mu.Lock()
	srv.dialErr = nil
	srv.mu.Unlock()
	waitFor(t, "exists", func() bool { s, _ := m.Status("m4"); return s.State == mail.StateExists })
	waitFor(t, "recovery report", func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		return len(sink.states) == 2
	})
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if mail.ClassOf(sink.states[0]) != mail.ClassAuth || sink.states[1] != nil {
		t.Fatalf("reports = %v, want [auth failure, recovery]", sink.states)
	}
}

func TestUnsubscribeAndCounts(t *testing.T) {
	srv := &fakeServer{validity: 1, raw: map[uint32][]byte{}, gone: map[uint32]bool{}}
	m, _, _, _ := newTestManager(t, srv)
	for _, id := range []mail.MailboxID{"a", "b", "c"} {
		if err := m.Subscribe(&mail.Mailbox{ID: id, Host: "h"}, mail.ModeCreate); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "3 exist", func() bool { return m.Counts()[mail.StateExists] == 3 })
	m.Unsubscribe("b")
	m.Unsubscribe("unknown")
	if s, ok := m.Status("b"); ok || s.State != mail.StateClosed {
		t.Fatalf("status after unsubscribe = %+v %v", s, ok)
	}
	waitFor(t, "gauge", func() bool { return obs.Value(m.metrics.subscriptions.WithLabelValues(mail.StateExists)) == 2 })
}

func (r *recSink) RefreshToken(context.Context, *mail.Mailbox) error { return nil }

// flakyCursors is a cursor store that can be made unreachable, like Redis
// during an outage.
type flakyCursors struct {
	*store.Memory
	down atomic.Bool
}

var errUnreachable = errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")

func (f *flakyCursors) Cursor(ctx context.Context, id mail.MailboxID, folder string) (mail.Cursor, bool, error) {
	if f.down.Load() {
		return mail.Cursor{}, false, errUnreachable
	}
	return f.Memory.Cursor(ctx, id, folder)
}

func (f *flakyCursors) PutCursor(ctx context.Context, id mail.MailboxID, folder string, c mail.Cursor) error {
	if f.down.Load() {
		return errUnreachable
	}
	return f.Memory.PutCursor(ctx, id, folder, c)
}

// An unreachable cursor store does not stop delivery: positions are kept in
// memory (each message delivered once, the session stays up) and written when
// the store answers again, without waiting for new mail.
func TestCursorStoreOutageKeepsDelivering(t *testing.T) {
	srv := &fakeServer{validity: 1, raw: map[uint32][]byte{}, gone: map[uint32]bool{}}
	sink := &recSink{}
	st := &flakyCursors{Memory: store.NewMemory()}
	m, err := New(Options{
		Protocols: fakeProtocol(srv.dial), Sink: sink, Cursors: st, Parser: parse,
		Reconnect: backoff.Policy{Min: time.Millisecond, Max: 5 * time.Millisecond}, Panics: obs.NewPanics(nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	m.unsavedRetry = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	m.Start(ctx)
	defer func() { cancel(); _ = m.Stop(context.Background()) }()
	if err := m.Subscribe(&mail.Mailbox{ID: "m", Host: "h"}, mail.ModeCreate); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "exists", func() bool { s, _ := m.Status("m"); return s.State == mail.StateExists })
	srv.add(1, "one")
	waitFor(t, "one", func() bool { return len(sink.got()) == 1 })

	st.down.Store(true)
	srv.add(2, "two")
	srv.add(3, "three")
	waitFor(t, "two and three", func() bool { return len(sink.got()) == 3 })
	waitFor(t, "unsaved gauge", func() bool { return obs.Value(m.metrics.unsavedCursors) == 1 })
	time.Sleep(100 * time.Millisecond) // several retry rounds against the dead store
	if got := sink.got(); len(got) != 3 || got[1] != "two" || got[2] != "three" {
		t.Fatalf("delivered %v during the outage, want each once", got)
	}
	if s, _ := m.Status("m"); s.State != mail.StateExists {
		t.Fatalf("state %s during the outage", s.State)
	}
	if c, _, _ := st.Memory.Cursor(ctx, "m", "INBOX"); cursorUID(c) != 1 {
		t.Fatalf("store cursor %d during the outage, want 1", cursorUID(c))
	}

	st.down.Store(false)
	waitFor(t, "cursor saved after the outage", func() bool {
		c, _, _ := st.Memory.Cursor(ctx, "m", "INBOX")
		return cursorUID(c) == 3
	})
	if got := obs.Value(m.metrics.unsavedCursors); got != 0 {
		t.Fatalf("unsaved gauge %v after the flush", got)
	}
	if got := sink.got(); len(got) != 3 {
		t.Fatalf("delivered %v, want no re-delivery", got)
	}
}

// DialRate spaces connection attempts to one host: 6 dials at 20/s cannot
// take less than 5 intervals of 50 ms (only the lower bound is checked; a
// slow machine only makes it longer).
func TestDialRate(t *testing.T) {
	srv := &fakeServer{validity: 1, raw: map[uint32][]byte{}, gone: map[uint32]bool{}}
	var mu sync.Mutex
	var at []time.Time
	dial := func(ctx context.Context, mb *mail.Mailbox) (Session, error) {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
		return srv.dial(ctx, mb)
	}
	m, err := New(Options{
		Protocols: fakeProtocol(dial), Sink: &recSink{}, Cursors: store.NewMemory(), Parser: parse, DialRate: 20,
		Reconnect: backoff.Policy{Min: time.Millisecond, Max: 5 * time.Millisecond}, Panics: obs.NewPanics(nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.Start(ctx)
	defer func() { cancel(); _ = m.Stop(context.Background()) }()
	for i := range 6 {
		if err := m.Subscribe(&mail.Mailbox{ID: mail.MailboxID(fmt.Sprint("m", i)), Host: "imap.example.com"}, mail.ModeCreate); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "6 exist", func() bool { return m.Counts()[mail.StateExists] == 6 })
	mu.Lock()
	defer mu.Unlock()
	if span := at[len(at)-1].Sub(at[0]); len(at) != 6 || span < 240*time.Millisecond {
		t.Fatalf("%d dials within %v, want 6 spread over at least 250 ms", len(at), span)
	}
}

// The per-state counters are an array sized for States.
func TestCountsCoverStates(t *testing.T) {
	if n := len((&Manager{}).counts); n != len(mail.States) {
		t.Fatalf("Manager.counts has %d slots for %d States", n, len(mail.States))
	}
}

// slowSink records how many deliveries run at once.
type slowSink struct {
	recSink
	mu           sync.Mutex
	now, maxSeen int
}

func (s *slowSink) Deliver(ctx context.Context, mb *mail.Mailbox, m *mail.Message) error {
	s.mu.Lock()
	s.now++
	s.maxSeen = max(s.maxSeen, s.now)
	s.mu.Unlock()
	time.Sleep(20 * time.Millisecond)
	s.mu.Lock()
	s.now--
	s.mu.Unlock()
	return s.recSink.Deliver(ctx, mb, m)
}

type oneAtATime struct{ sem chan struct{} }

func (b oneAtATime) Acquire(ctx context.Context, _ int64) (func(), error) {
	select {
	case b.sem <- struct{}{}:
		return func() { <-b.sem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// With a budget that fits one message, deliveries across mailboxes run one at
// a time; each message still arrives.
func TestBudgetBoundsDeliveries(t *testing.T) {
	for _, bounded := range []bool{false, true} {
		sink := &slowSink{}
		opts := Options{
			Sink: sink, Cursors: store.NewMemory(), Parser: parse, Panics: obs.NewPanics(nil),
			Reconnect: backoff.Policy{Min: time.Millisecond, Max: 5 * time.Millisecond},
		}
		if bounded {
			opts.Budget = oneAtATime{make(chan struct{}, 1)}
		}
		servers := make([]*fakeServer, 4)
		opts.Protocols = fakeProtocol(func(ctx context.Context, mb *mail.Mailbox) (Session, error) {
			var i int
			fmt.Sscan(mb.Host, &i)
			return servers[i].dial(ctx, mb)
		})
		m, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		m.Start(ctx)
		for i := range servers {
			servers[i] = &fakeServer{validity: 1, raw: map[uint32][]byte{}, gone: map[uint32]bool{}}
			if err := m.Subscribe(&mail.Mailbox{ID: mail.MailboxID(fmt.Sprint("b", i)), Host: fmt.Sprint(i)}, mail.ModeCreate); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "4 exist", func() bool { return m.Counts()[mail.StateExists] == 4 })
		for _, srv := range servers {
			srv.add(1, "one")
			srv.add(2, "two")
		}
		waitFor(t, "8 deliveries", func() bool { return len(sink.got()) == 8 })
		cancel()
		_ = m.Stop(context.Background())
		sink.mu.Lock()
		seen := sink.maxSeen
		sink.mu.Unlock()
		if bounded && seen != 1 {
			t.Errorf("with a one-message budget %d deliveries ran at once", seen)
		}
		if !bounded && seen < 2 {
			t.Errorf("without a budget only %d delivery ran at once; the test cannot tell the difference", seen)
		}
	}
}
