// Package history loads a mailbox's existing mail on the client's request
// (Creatio's synchronize call): for every watched folder, INBOX first, it
// searches the messages matching the filter and delivers them through the
// same sink as live mail. Messages are fetched in UID order, in batches (few
// round trips; messages over the size limit with their header only), and
// delivered by a few parallel deliverers, so they arrive roughly, not
// strictly, in UID order.
//
// A load runs on its own connection, so live subscriptions are not disturbed.
// At most Concurrency loads run at once per node; each has one fetcher and a
// few deliverers joined by a small channel, so memory stays bounded however
// large the mailbox is. A repeated request with the same filter while a load
// runs is merged into it; one with another filter restarts it. A broken
// connection resumes after the last delivered UID of each folder.
package history

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/emaillistener/emaillistener/internal/backoff"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/obs"
	"github.com/emaillistener/emaillistener/internal/source"
)

// Session is the part of a mail-server connection a load needs.
type Session interface {
	Folders(ctx context.Context) ([]source.Folder, error)
	Examine(ctx context.Context, folder string) (source.FolderStatus, error)
	Search(ctx context.Context, q source.Query) ([]uint32, error)
	// FetchMany downloads the messages uids (ascending) and calls fn with
	// each, in UID order; f is nil for a message expunged meanwhile.
	FetchMany(ctx context.Context, uids []uint32, fn func(uid uint32, f *source.Fetched) error) error
	Close() error
}

// Dialer opens a session for a mailbox.
type Dialer func(ctx context.Context, mb *mail.Mailbox) (Session, error)

// Deliverer hands one message to the client; see syncer.Sink.Deliver.
type Deliverer func(ctx context.Context, mb *mail.Mailbox, msg *mail.Message) error

// Defaults for Options.
const (
	DefaultConcurrency = 4
	DefaultDeliverers  = 4
	DefaultAttempts    = 6
)

// Options configures a Loader. Dial, Deliver and Parse are required.
type Options struct {
	Dial           Dialer
	Deliver        Deliverer
	Parse          func(raw []byte) (*mail.Message, error)
	WatchByDefault func(source.Folder) bool
	Concurrency    int // loads running at once on this node
	Deliverers     int // parallel deliveries per load
	// Budget, when set, bounds the raw bytes of messages between fetch and
	// acknowledgement, shared with the live subscriptions.
	Budget   Budget
	Attempts int            // connection attempts per load before it fails
	Retry    backoff.Policy // between attempts
	// Park is the wait of a load whose deliveries fail (the client is down):
	// it gives its slot to the next load meanwhile (default 30s doubling to
	// 10m). Deliver must then return instead of retrying for ever, e.g. after
	// a short patience.
	Park backoff.Policy
	// Lockout, when set, holds credentials the server rejected: a load with
	// held credentials fails at once, without a login.
	Lockout    Lockout
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Panics     *obs.Panics
}

// Lockout holds rejected credentials (see package lockout).
type Lockout interface {
	Check(mb *mail.Mailbox) (until time.Time, reason string, held bool)
	Failed(mb *mail.Mailbox, reason string) time.Time
	Succeeded(mb *mail.Mailbox)
}

// Budget is a node-wide allowance of message bytes in flight.
type Budget interface {
	Acquire(ctx context.Context, n int64) (release func(), err error)
}

// Filter is what to load.
type Filter struct {
	Query source.Query
}

// Progress is the visible state of a mailbox's last load.
type Progress struct {
	State     string // queued, running, done, failed
	Filter    string
	Folder    string // being loaded
	Found     int    // matching messages found so far
	Delivered int
	Skipped   int // unparseable, expunged or refused for good
	Started   time.Time
	Finished  time.Time
	Error     string
}

// Load states.
const (
	StateQueued  = "queued" // waiting for a slot, also after stepping aside while the client was down
	StateRunning = "running"
	StateDone    = "done"
	StateFailed  = "failed"
)

// Loader runs history loads. Its methods are safe for concurrent use.
type Loader struct {
	opts    Options
	log     *slog.Logger
	slots   chan struct{}
	metrics *metrics

	mu      sync.Mutex
	ctx     context.Context
	stopped bool
	jobs    map[mail.MailboxID]*job
	wg      sync.WaitGroup
}

// New checks options; it does no I/O.
func New(opts Options) (*Loader, error) {
	if opts.Dial == nil || opts.Deliver == nil || opts.Parse == nil {
		return nil, errors.New("history: Options.Dial, Deliver and Parse are required")
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.Deliverers <= 0 {
		opts.Deliverers = DefaultDeliverers
	}
	if opts.Attempts <= 0 {
		opts.Attempts = DefaultAttempts
	}
	if opts.Retry == (backoff.Policy{}) {
		opts.Retry = backoff.Policy{Min: time.Second, Max: time.Minute}
	}
	if opts.Park == (backoff.Policy{}) {
		opts.Park = backoff.Policy{Min: 30 * time.Second, Max: 10 * time.Minute}
	}
	if opts.Logger == nil {
		opts.Logger = obs.Discard()
	}
	return &Loader{opts: opts, log: opts.Logger, slots: make(chan struct{}, opts.Concurrency),
		metrics: newMetrics(opts.Registerer), jobs: make(map[mail.MailboxID]*job)}, nil
}

// Begin lets loads run under ctx.
func (l *Loader) Begin(ctx context.Context) {
	l.mu.Lock()
	l.ctx = ctx
	l.mu.Unlock()
}

// ErrStopped is returned by Start after Stop or before Begin.
var ErrStopped = errors.New("history: not running")

// Start loads mb's history matching f in the background. A load already
// running for mb with the same filter absorbs the request; with another filter
// it is cancelled and replaced.
func (l *Loader) Start(_ context.Context, mb *mail.Mailbox, f Filter) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped || l.ctx == nil {
		return ErrStopped
	}
	prev := l.jobs[mb.ID]
	if prev != nil && !prev.finished() && reflect.DeepEqual(prev.filter, f) {
		l.log.Info("history load already running with the same filter, merged", "mailbox", string(mb.ID))
		return nil
	}
	ctx, cancel := context.WithCancel(l.ctx)
	j := &job{l: l, mb: mb, filter: f, cancel: cancel, done: make(chan struct{}),
		log:  l.log.With("mailbox", string(mb.ID)),
		prog: Progress{State: StateQueued, Filter: describe(f), Started: time.Now()}}
	l.jobs[mb.ID] = j
	if prev != nil {
		prev.cancel()
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		if prev != nil {
			<-prev.done // never two loads of one mailbox at once
		}
		j.run(ctx)
	}()
	return nil
}

// Progress returns the state of mb's last load.
func (l *Loader) Progress(id mail.MailboxID) (Progress, bool) {
	l.mu.Lock()
	j := l.jobs[id]
	l.mu.Unlock()
	if j == nil {
		return Progress{}, false
	}
	return j.progress(), true
}

// Forget drops a mailbox's load (cancelling it if it runs), e.g. on close.
func (l *Loader) Forget(id mail.MailboxID) {
	l.mu.Lock()
	j := l.jobs[id]
	delete(l.jobs, id)
	l.mu.Unlock()
	if j != nil {
		j.cancel()
	}
}

// Stop cancels every load and waits for them, until ctx ends.
func (l *Loader) Stop(ctx context.Context) error {
	l.mu.Lock()
	l.stopped = true
	for _, j := range l.jobs {
		j.cancel()
	}
	l.mu.Unlock()
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("history: stop: %w", context.Cause(ctx))
	}
}

func describe(f Filter) string {
	var parts []string
	q := f.Query
	if !q.Since.IsZero() {
		k := "SINCE"
		if q.SentSince {
			k = "SENTSINCE"
		}
		parts = append(parts, k+" "+q.Since.Format("02-Jan-2006"))
	}
	for _, fl := range q.NotFlags {
		parts = append(parts, "NOT "+fl)
	}
	if q.UIDFrom > 0 {
		parts = append(parts, fmt.Sprintf("UID %d:*", q.UIDFrom))
	}
	if len(parts) == 0 {
		return "ALL"
	}
	return strings.Join(parts, " ")
}

type metrics struct {
	emails *prometheus.CounterVec
	loads  *prometheus.CounterVec
	active prometheus.Gauge
	parked prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		emails: f.NewCounterVec(prometheus.CounterOpts{
			Name: "emaillistener_history_emails_total",
			Help: "Emails handled by history loads (synchronize), by outcome.",
		}, []string{"outcome"}),
		loads: f.NewCounterVec(prometheus.CounterOpts{
			Name: "emaillistener_history_loads_total",
			Help: "Finished history loads, by result.",
		}, []string{"result"}),
		active: f.NewGauge(prometheus.GaugeOpts{
			Name: "emaillistener_history_loads_running",
			Help: "History loads running now.",
		}),
	}
	for _, o := range []string{"delivered", "skipped"} {
		m.emails.WithLabelValues(o)
	}
	for _, r := range []string{StateDone, StateFailed, "cancelled"} {
		m.loads.WithLabelValues(r)
	}
	m.parked = f.NewCounter(prometheus.CounterOpts{
		Name: "emaillistener_history_parked_total",
		Help: "Times a history load gave its slot back because the client did not accept its emails.",
	})
	return m
}
