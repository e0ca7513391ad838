// SPDX-License-Identifier: Apache-2.0

// Package events sends native accounts their informational webhook events,
// account.state and sync.progress (package webhook builds them). Unlike
// message.new, which the subscription itself delivers before its cursor
// moves, these are fire-and-forget: the hooks that raise them run on mailbox
// and history goroutines and must never block, so events go through a
// bounded queue to a few workers that retry each for a while (Patience) and
// then drop it. A receiver can always read the current state with
// GET /v1/accounts/{id}; events only save it the polling.
package events

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/obs"
	"github.com/emaillistener/emaillistener/internal/webhook"
)

// Poster posts with headers made anew for every attempt, retrying until
// patience has passed (delivery.Client.PostSigned).
type Poster interface {
	PostSigned(ctx context.Context, op, target string, body []byte, headers func() http.Header, patience time.Duration) error
}

// Defaults for Options.
const (
	DefaultQueue    = 4096
	DefaultWorkers  = 4
	DefaultPatience = 5 * time.Minute
	// DefaultProgressEvery is the least time between two sync.progress
	// events of one load while it runs; state changes are always sent.
	DefaultProgressEvery = 5 * time.Second
)

// Options configures New. Post is required.
type Options struct {
	Post          Poster
	Queue         int           // events waiting; more are dropped (and counted)
	Workers       int           // events being sent at once
	Patience      time.Duration // how long one event is retried
	ProgressEvery time.Duration
	Logger        *slog.Logger
	Registerer    prometheus.Registerer
	Panics        *obs.Panics
}

// Emitter queues and sends events. State and Progress are safe for
// concurrent use and never block.
type Emitter struct {
	opts  Options
	log   *slog.Logger
	queue chan item
	sent  *prometheus.CounterVec

	mu       sync.Mutex
	states   map[mail.MailboxID]string    // last state sent per account ("state/class")
	progress map[mail.MailboxID]progState // last progress sent per account

	qmu    sync.RWMutex // closed and closing the queue
	closed bool
	stop   context.CancelFunc
	wg     sync.WaitGroup
}

type item struct {
	mb *mail.Mailbox
	ev webhook.Event
}

type progState struct {
	key string // state and folder: a change is always sent
	at  time.Time
}

// New returns an Emitter; Start starts its workers.
func New(opts Options) (*Emitter, error) {
	if opts.Post == nil {
		return nil, errors.New("events: Options.Post is required")
	}
	if opts.Queue <= 0 {
		opts.Queue = DefaultQueue
	}
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.Patience <= 0 {
		opts.Patience = DefaultPatience
	}
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = DefaultProgressEvery
	}
	if opts.Logger == nil {
		opts.Logger = obs.Discard()
	}
	e := &Emitter{opts: opts, log: opts.Logger, queue: make(chan item, opts.Queue),
		states: map[mail.MailboxID]string{}, progress: map[mail.MailboxID]progState{},
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "emaillistener_webhook_events_total",
			Help: "Native accounts' account.state and sync.progress webhook events, by type and result (sent, failed: given up after retrying, dropped: the queue was full).",
		}, []string{"type", "result"})}
	for _, typ := range []string{webhook.TypeAccountState, webhook.TypeSyncProgress} {
		for _, res := range []string{"sent", "failed", "dropped"} {
			e.sent.WithLabelValues(typ, res)
		}
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(e.sent); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// Start starts the workers; they run until Stop.
func (e *Emitter) Start(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	e.stop = cancel
	for range e.opts.Workers {
		e.wg.Add(1)
		go e.work(ctx)
	}
	return nil
}

// Stop sends what is queued until ctx ends, then gives up on the rest.
func (e *Emitter) Stop(ctx context.Context) error {
	if e.stop == nil {
		return nil
	}
	e.qmu.Lock()
	e.closed = true
	close(e.queue)
	e.qmu.Unlock()
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		e.stop()
		<-done
	}
	e.stop()
	return nil
}

// State is the subscriptions' status hook: an account.state event when a
// native account that wants them reaches exists or error, once per state and
// error class (a retry that fails the same way again is not news).
// Connecting is passing and closed is the client's own doing, or a hand-over
// to another node, which then reports the state anew.
func (e *Emitter) State(mb *mail.Mailbox, st mail.Status) {
	if mb == nil || !mb.Native() {
		return
	}
	e.mu.Lock()
	if st.State == mail.StateClosed {
		delete(e.states, mb.ID)
		delete(e.progress, mb.ID)
		e.mu.Unlock()
		return
	}
	key := st.State + "/" + st.ErrorClass
	if st.State == mail.StateConnecting || e.states[mb.ID] == key {
		e.mu.Unlock()
		return
	}
	e.states[mb.ID] = key
	e.mu.Unlock()
	if mb.Wants(webhook.TypeAccountState) {
		e.enqueue(mb, webhook.NewStateEvent(mb.ID, st, time.Now()))
	}
}

// Progress is the history loads' progress hook: a sync.progress event when
// a load changes state or folder, and at most every ProgressEvery while it
// delivers.
func (e *Emitter) Progress(mb *mail.Mailbox, p mail.HistoryProgress) {
	if mb == nil || !mb.Native() || !mb.Wants(webhook.TypeSyncProgress) {
		return
	}
	now := time.Now()
	key := p.State + "/" + p.Folder
	e.mu.Lock()
	last, seen := e.progress[mb.ID]
	if seen && last.key == key && now.Sub(last.at) < e.opts.ProgressEvery {
		e.mu.Unlock()
		return
	}
	e.progress[mb.ID] = progState{key: key, at: now}
	e.mu.Unlock()
	e.enqueue(mb, webhook.NewProgressEvent(mb.ID, p, now))
}

func (e *Emitter) enqueue(mb *mail.Mailbox, ev webhook.Event) {
	e.qmu.RLock()
	defer e.qmu.RUnlock()
	if e.closed {
		e.sent.WithLabelValues(ev.Type, "dropped").Inc()
		return
	}
	select {
	case e.queue <- item{mb: mb, ev: ev}:
	default:
		e.sent.WithLabelValues(ev.Type, "dropped").Inc()
		e.log.Warn("webhook event dropped: queue full", "account", mb.ID, "type", ev.Type)
	}
}

func (e *Emitter) work(ctx context.Context) {
	defer e.wg.Done()
	for it := range e.queue {
		e.send(ctx, it)
	}
}

func (e *Emitter) send(ctx context.Context, it item) {
	defer e.opts.Panics.Recover(e.log, "webhook events", nil)
	body, err := webhook.Marshal(it.ev)
	if err != nil {
		e.sent.WithLabelValues(it.ev.Type, "failed").Inc()
		return
	}
	headers := func() http.Header { return webhook.Headers(it.mb.WebhookSecret, it.ev.ID, body, time.Now()) }
	if err := e.opts.Post.PostSigned(ctx, "WebhookEvent", it.mb.WebhookURL, body, headers, e.opts.Patience); err != nil {
		e.sent.WithLabelValues(it.ev.Type, "failed").Inc()
		e.log.Warn("webhook event not delivered", "account", it.mb.ID, "type", it.ev.Type, "err", err)
		return
	}
	e.sent.WithLabelValues(it.ev.Type, "sent").Inc()
}
