// SPDX-License-Identifier: Apache-2.0

package syncer

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/emaillistener/emaillistener/internal/backoff"
	"github.com/emaillistener/emaillistener/internal/ingest"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/obs"
	"github.com/emaillistener/emaillistener/internal/runner"
)

// Defaults for Options.
const (
	// DefaultIdleMax bounds one wait for a push: well below the 29 minutes
	// after which RFC 2177 lets IMAP servers drop an IDLE client. Each round
	// also proves the link alive and re-checks the watched folder, a safety
	// net for a push the server lost (seen with Dovecot's imap-hibernate
	// under overload); 10 min bounds that delay at ~2 wake-ups/s per 1,000
	// mailboxes.
	DefaultIdleMax = 10 * time.Minute
	// DefaultFolderPoll is how often every watched folder is checked, also
	// those no push covers (cheap for IMAP: one STATUS per folder).
	DefaultFolderPoll = 60 * time.Second
	// DefaultDialConcurrency bounds simultaneous connection attempts per mail
	// server, so ten thousand subscriptions created at once do not look like an
	// attack to the server (and to fail2ban).
	DefaultDialConcurrency = 64
	// DefaultTokenRefreshWait covers Creatio's RefreshToken round trip (it logs
	// in as the user, refreshes with the identity provider, calls update).
	DefaultTokenRefreshWait = 60 * time.Second
	// tokenRefreshLead is how long before a JWT token's expiry a fresh one is
	// requested.
	tokenRefreshLead = 5 * time.Minute
)

// Protocol is what the syncer needs of one mail protocol.
type Protocol struct {
	Dialer Dialer
	// WatchByDefault decides which folders "all folders" means (nil: every
	// selectable folder).
	WatchByDefault FolderLister
}

// Options configures a Manager. Protocols, Sink, Cursors and Parser are
// required.
type Options struct {
	// Protocols serve the mailboxes of each kind; a mailbox of another kind
	// fails with a config-class error.
	Protocols       map[mail.ServerKind]Protocol
	Sink            Sink
	Cursors         Cursors
	Parser          Parser
	IdleMax         time.Duration  // longest wait for a push; default DefaultIdleMax
	FolderPoll      time.Duration  // default DefaultFolderPoll
	Reconnect       backoff.Policy // zero: 1s doubling to 5m, jittered
	DialConcurrency int            // per server host and port; default DefaultDialConcurrency
	// Budget, when set, bounds the raw bytes of messages between fetch and
	// acknowledgement, node-wide (shared with history loads).
	Budget Budget
	// MaxMessageBytes is the size over which only a message's header is
	// fetched (the source's limit); it caps what a message takes of Budget.
	MaxMessageBytes int64
	// DialRate caps new connections per second per server host and port (0: no
	// cap), for servers that throttle or ban bursts of logins.
	DialRate float64
	// TokenRefreshWait is how long a mailbox whose OAuth token was rejected
	// waits for the client's update before reporting the failure.
	TokenRefreshWait time.Duration
	// Lockout, when set, holds rejected credentials: they are retried on its
	// long back-off instead of Reconnect, whatever re-registrations come.
	Lockout Lockout
	// Leaser, when set (cluster mode), must grant a mailbox's lease before its
	// session starts; a lost lease stops the session.
	Leaser Leaser
	// OnStatus, when set, is called on the mailbox's goroutine after every state
	// change (cluster mode publishes it for the other nodes; native accounts
	// get account.state events). It must not block for long.
	OnStatus   func(mb *mail.Mailbox, st mail.Status)
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Panics     *obs.Panics
}

// Manager owns the mailbox supervisors. Its methods are safe for concurrent use.
type Manager struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics
	step    ingest.Step
	runs    runner.Group[mail.MailboxID]

	mu      sync.Mutex
	started bool
	stopped bool
	workers map[mail.MailboxID]*worker
	dials   map[string]*dialGate // per host:port dial limits

	unsavedRetry time.Duration   // how often unsaved cursors are retried (tests shorten it)
	counts       [3]atomic.Int64 // live subscriptions per state, indexed like mail.States
}

// New checks options and returns a Manager; it does no I/O.
func New(opts Options) (*Manager, error) {
	switch {
	case len(opts.Protocols) == 0:
		return nil, errors.New("syncer: Options.Protocols is required")
	case opts.Sink == nil:
		return nil, errors.New("syncer: Options.Sink is required")
	case opts.Cursors == nil:
		return nil, errors.New("syncer: Options.Cursors is required")
	case opts.Parser == nil:
		return nil, errors.New("syncer: Options.Parser is required")
	}
	if opts.IdleMax <= 0 || opts.IdleMax > 29*time.Minute {
		opts.IdleMax = DefaultIdleMax
	}
	if opts.FolderPoll <= 0 {
		opts.FolderPoll = DefaultFolderPoll
	}
	if opts.Reconnect == (backoff.Policy{}) {
		opts.Reconnect = backoff.Policy{Min: time.Second, Max: 5 * time.Minute}
	}
	if opts.TokenRefreshWait <= 0 {
		opts.TokenRefreshWait = DefaultTokenRefreshWait
	}
	if opts.DialConcurrency <= 0 {
		opts.DialConcurrency = DefaultDialConcurrency
	}
	if opts.Logger == nil {
		opts.Logger = obs.Discard()
	}
	return &Manager{
		opts:    opts,
		log:     opts.Logger,
		metrics: newMetrics(opts.Registerer),
		step:    ingest.Step{Parse: opts.Parser, Deliver: opts.Sink.Deliver},
		workers: make(map[mail.MailboxID]*worker),
		dials:   make(map[string]*dialGate),

		unsavedRetry: unsavedRetry,
	}, nil
}

// Start lets subscriptions run under ctx. Subscriptions registered before Start
// begin now.
func (m *Manager) Start(ctx context.Context) {
	m.runs.Start(ctx)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.started = true
	for _, w := range m.workers {
		m.launch(w)
	}
}

// Stop ends every subscription and waits for them to log out, until ctx ends.
func (m *Manager) Stop(ctx context.Context) error {
	m.mu.Lock()
	m.stopped = true
	m.mu.Unlock()
	return m.runs.Stop(ctx)
}

// ErrStopped is returned by Subscribe after Stop.
var ErrStopped = errors.New("syncer: shutting down")

// Subscribe starts, restarts or updates the subscription of mb according to mode.
func (m *Manager) Subscribe(mb *mail.Mailbox, mode mail.Mode) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return ErrStopped
	}
	old := m.workers[mb.ID]
	if old != nil {
		cur := old.mailbox()
		switch {
		case mode == mail.ModeUpdate && onlySecretsDiffer(cur, mb):
			old.setMailbox(mb)
			old.retryNow()
			return nil
		case cur.SameConnection(mb) && sameTarget(cur, mb):
			// Identical settings: restarting would abandon a login in
			// progress and start another (Creatio's failover job recreates
			// every unhealthy mailbox each minute, and each abandoned login
			// still counts against the account's lock-out policy). A
			// recreate of a failed subscription retries now instead, unless
			// its credentials are held (the session then waits again).
			old.setMailbox(mb) // identity fields (user, workspace) may still change
			if mode == mail.ModeRecreate && old.snapshot().State == mail.StateError {
				old.retryNow()
			}
			return nil
		}
	}
	w := m.newWorker(mb)
	w.prev = old
	m.workers[mb.ID] = w
	if m.started {
		m.launch(w)
	} else if old != nil {
		old.finish() // replaced before it ever ran
	}
	return nil
}

// Unsubscribe stops the subscription; unknown ids are not an error.
func (m *Manager) Unsubscribe(id mail.MailboxID) {
	m.mu.Lock()
	w := m.workers[id]
	delete(m.workers, id)
	m.mu.Unlock()
	if w != nil {
		m.runs.Cancel(id)
		if !m.started {
			w.finish() // never launched: take it out of the counts
		}
	}
	if m.opts.Lockout != nil {
		m.opts.Lockout.Forget(id)
	}
}

// Status returns the status of a subscription and whether it exists.
func (m *Manager) Status(id mail.MailboxID) (mail.Status, bool) {
	m.mu.Lock()
	w := m.workers[id]
	m.mu.Unlock()
	if w == nil {
		return mail.Status{State: mail.StateClosed}, false
	}
	return w.snapshot(), true
}

// Counts returns the number of subscriptions per state.
func (m *Manager) Counts() map[string]int {
	out := make(map[string]int, len(mail.States))
	for i, s := range mail.States {
		out[s] = int(m.counts[i].Load())
	}
	return out
}

// Len returns the number of subscriptions.
func (m *Manager) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.workers)
}

// countState moves the per-state count (and gauge) of live subscriptions by
// delta. Kept incrementally: the status endpoint asks for the counts often,
// and walking 10,000 workers each time showed in profiles.
func (m *Manager) countState(state string, delta int64) {
	if i := slices.Index(mail.States, state); i >= 0 {
		m.counts[i].Add(delta)
	}
	m.metrics.subscriptions.WithLabelValues(state).Add(float64(delta))
}

// launch starts w's goroutine; it begins once the replaced worker of the same
// mailbox, if any, has exited, so two supervisors never move one cursor.
// m.mu must be held.
func (m *Manager) launch(w *worker) {
	_, err := m.runs.Go(w.id, func(ctx context.Context, _ *runner.Run) {
		// The runner starts this once the replaced worker's run returned.
		if prev := w.prev; prev != nil {
			// The client was told about prev's failure; the successor owes
			// it the recovery report.
			w.reported, w.prev = prev.reported, nil
		}
		w.run(ctx)
	})
	if err != nil { // stopping: the worker never runs
		w.finish()
	}
}

// acquireDial takes a connection slot for the mailbox's server. Slots are
// per host and port: a dead port of a host must not starve the mailboxes on
// its other ports (measured: 10,000 mailboxes on a dead port held every slot
// of the host for hours).
func (m *Manager) acquireDial(ctx context.Context, mb *mail.Mailbox) (release func(), err error) {
	host := dialKey(mb)
	m.mu.Lock()
	g := m.dials[host]
	if g == nil {
		g = &dialGate{sem: make(chan struct{}, m.opts.DialConcurrency)}
		if m.opts.DialRate > 0 {
			g.rate = rate.NewLimiter(rate.Limit(m.opts.DialRate), 1)
		}
		m.dials[host] = g
	}
	m.mu.Unlock()
	select {
	case g.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if g.rate != nil {
		if err := g.rate.Wait(ctx); err != nil {
			<-g.sem
			return nil, err
		}
	}
	return func() { <-g.sem }, nil
}

// dialKey names a mailbox's server for the dial limits: host and port as
// configured, lower-case.
func dialKey(mb *mail.Mailbox) string {
	host, port := strings.ToLower(mb.Host), mb.Port
	if h, p, err := net.SplitHostPort(host); err == nil {
		host = h
		if port == 0 {
			port, _ = strconv.Atoi(p)
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// dialGate limits the connection attempts to one mail server: at most
// cap(sem) at once and, when rate is set, that many per second.
type dialGate struct {
	sem  chan struct{}
	rate *rate.Limiter
}

func onlySecretsDiffer(a, b *mail.Mailbox) bool {
	x, y := *a, *b
	x.Password, y.Password = "", ""
	x.AccessToken, y.AccessToken = "", ""
	return x.SameConnection(&y) && sameTarget(a, b)
}

func sameTarget(a, b *mail.Mailbox) bool {
	return a.Endpoint == b.Endpoint
}

// IDs returns the ids of the subscriptions this manager runs.
func (m *Manager) IDs() []mail.MailboxID {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]mail.MailboxID, 0, len(m.workers))
	for id := range m.workers {
		out = append(out, id)
	}
	return out
}

// Mailbox returns the registration a subscription runs with.
func (m *Manager) Mailbox(id mail.MailboxID) (*mail.Mailbox, bool) {
	m.mu.Lock()
	w := m.workers[id]
	m.mu.Unlock()
	if w == nil {
		return nil, false
	}
	return w.mailbox(), true
}

// Republish calls OnStatus with the subscription's current state, e.g. after
// the shared state lost it.
func (m *Manager) Republish(id mail.MailboxID) {
	m.mu.Lock()
	w := m.workers[id]
	m.mu.Unlock()
	if w != nil && m.opts.OnStatus != nil {
		w.mu.Lock()
		mb := w.mb
		w.mu.Unlock()
		m.opts.OnStatus(mb, w.snapshot())
	}
}
