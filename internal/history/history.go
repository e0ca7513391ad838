// SPDX-License-Identifier: Apache-2.0

// Package history loads a mailbox's existing mail on the client's request
// (Creatio's synchronize call), whatever its protocol: for every watched
// folder, INBOX first, it searches the messages matching the query and
// delivers them through the same step as live mail (ingest). Messages are
// fetched in the order the source lists them, in batches (few round trips;
// messages over the size limit with their header only), and delivered by a
// few parallel deliverers, so they arrive roughly, not strictly, in order.
//
// A load runs on its own session, so live subscriptions are not disturbed.
// At most Concurrency loads run at once per node; each has one fetcher and a
// few deliverers joined by a small channel, so memory stays bounded however
// large the mailbox is. A repeated request with the same query while a load
// runs is merged into it; one with another query restarts it. A broken
// session resumes, skipping what was already handled in each folder. A load
// whose client stops taking emails gives its slot to the next load and comes
// back later.
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
	"github.com/emaillistener/emaillistener/internal/ingest"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/obs"
	"github.com/emaillistener/emaillistener/internal/runner"
	"github.com/emaillistener/emaillistener/internal/source"
)

// Session is the part of a mail-server session a load needs.
type Session interface {
	Folders(ctx context.Context) ([]mail.Folder, error)
	// Search returns the messages of folder matching q.
	Search(ctx context.Context, folder string, q mail.Query) ([]source.Ref, error)
	// FetchMany downloads refs (one folder, as Search returned them) and
	// calls fn with each, in order; f is nil for a message deleted meanwhile.
	FetchMany(ctx context.Context, refs []source.Ref, fn func(ref source.Ref, f *source.Fetched) error) error
	Close() error
}

// Marker is a Session that marks a message on the server once the client
// has it (see syncer.Marker). A failed mark is logged, not retried.
type Marker interface {
	MarkDelivered(ctx context.Context, ref source.Ref) error
}

// Dialer opens a session for a mailbox.
type Dialer func(ctx context.Context, mb *mail.Mailbox) (Session, error)

// Protocol is what a load needs of one mail protocol.
type Protocol struct {
	Dial           Dialer
	WatchByDefault func(mail.Folder) bool // nil: every selectable folder
}

// Defaults for Options.
const (
	DefaultConcurrency = 4
	DefaultDeliverers  = 4
	DefaultAttempts    = 6
)

// Options configures a Loader. Protocols, Deliver and Parse are required.
type Options struct {
	Protocols   map[mail.ServerKind]Protocol
	Deliver     func(ctx context.Context, mb *mail.Mailbox, msg *mail.Message) error
	Parse       func(raw []byte) (*mail.Message, error)
	Concurrency int // loads running at once on this node
	Deliverers  int // parallel deliveries per load
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
	Lockout Lockout
	// OnProgress, when set, is called after every change of a load's
	// progress (native accounts get sync.progress events); it must not block.
	OnProgress func(mb *mail.Mailbox, p mail.HistoryProgress)
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

// Loader runs history loads. Its methods are safe for concurrent use.
type Loader struct {
	opts    Options
	log     *slog.Logger
	step    ingest.Step
	slots   chan struct{}
	metrics *metrics
	runs    runner.Group[mail.MailboxID]

	mu   sync.Mutex
	jobs map[mail.MailboxID]*job
}

// New checks options; it does no I/O.
func New(opts Options) (*Loader, error) {
	if len(opts.Protocols) == 0 || opts.Deliver == nil || opts.Parse == nil {
		return nil, errors.New("history: Options.Protocols, Deliver and Parse are required")
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
	return &Loader{opts: opts, log: opts.Logger, step: ingest.Step{Parse: opts.Parse, Deliver: opts.Deliver},
		slots: make(chan struct{}, opts.Concurrency), metrics: newMetrics(opts.Registerer),
		jobs: make(map[mail.MailboxID]*job)}, nil
}

// Start lets loads run under ctx.
func (l *Loader) Start(ctx context.Context) { l.runs.Start(ctx) }

// ErrStopped is returned by Load after Stop or before Start.
var ErrStopped = errors.New("history: not running")

// Load loads mb's history matching q in the background. A load already
// running for mb with the same query absorbs the request; with another query
// it is cancelled and replaced.
func (l *Loader) Load(_ context.Context, mb *mail.Mailbox, q mail.Query) error {
	proto, ok := l.opts.Protocols[mb.Kind]
	if !ok {
		return mail.Errorf(mail.ClassConfig, "synchronize", "%s mailboxes are not supported by this service", mb.Kind)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if prev := l.jobs[mb.ID]; prev != nil && !prev.finished() && reflect.DeepEqual(prev.query, q) {
		l.log.Info("history load already running with the same filter, merged", "mailbox", string(mb.ID))
		return nil
	}
	j := &job{l: l, mb: mb, proto: proto, query: q, done: make(chan struct{}),
		log:  l.log.With("mailbox", string(mb.ID)),
		prog: mail.HistoryProgress{State: mail.HistoryQueued, Filter: Describe(q), Started: time.Now()}}
	if _, err := l.runs.Go(mb.ID, func(ctx context.Context, _ *runner.Run) { j.run(ctx) }); err != nil {
		return ErrStopped
	}
	l.jobs[mb.ID] = j
	j.update(func(*mail.HistoryProgress) {}) // announce it queued
	return nil
}

// Progress returns the state of mb's last load.
func (l *Loader) Progress(id mail.MailboxID) (mail.HistoryProgress, bool) {
	l.mu.Lock()
	j := l.jobs[id]
	l.mu.Unlock()
	if j == nil {
		return mail.HistoryProgress{}, false
	}
	return j.progress(), true
}

// Forget drops a mailbox's load (cancelling it if it runs), e.g. on close.
func (l *Loader) Forget(id mail.MailboxID) {
	l.mu.Lock()
	delete(l.jobs, id)
	l.mu.Unlock()
	l.runs.Cancel(id)
}

// Stop cancels every load and waits for them, until ctx ends.
func (l *Loader) Stop(ctx context.Context) error {
	if err := l.runs.Stop(ctx); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	return nil
}

// Describe renders a query the way the client writes it.
func Describe(q mail.Query) string {
	var parts []string
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
	for _, r := range []string{mail.HistoryDone, mail.HistoryFailed, "cancelled"} {
		m.loads.WithLabelValues(r)
	}
	m.parked = f.NewCounter(prometheus.CounterOpts{
		Name: "emaillistener_history_parked_total",
		Help: "Times a history load gave its slot back because the client did not accept its emails.",
	})
	return m
}
