// SPDX-License-Identifier: Apache-2.0

package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/obs"
	"github.com/emaillistener/emaillistener/internal/redisconf"
)

// Defaults for Options.
const (
	// DefaultTTL is how long Redis keeps a lease without renewal, and so bounds
	// the failover time after a node crash.
	DefaultTTL = 15 * time.Second
	// DefaultSkew is the safety margin between the local deadline and the Redis
	// expiry: clock rate differences over one TTL, a GC pause, and the time the
	// holder needs to stop acting after Done. Capped at TTL/10 for short TTLs.
	DefaultSkew = time.Second
)

// Options configures a Manager. The zero value is valid.
type Options struct {
	// Prefix starts every key; default redisconf.DefaultPrefix ("el:").
	Prefix string
	// TTL is the lease lifetime in Redis; default DefaultTTL.
	TTL time.Duration
	// RenewEvery is the renewal round interval; default TTL/3. It must leave
	// room for at least two rounds before the deadline: RenewEvery*2 + Skew < TTL.
	RenewEvery time.Duration
	// Skew is subtracted from the TTL for the local deadline; default
	// min(DefaultSkew, TTL/10).
	Skew time.Duration
	// RestoreMissing lets renewal re-create a lease whose key vanished (Redis
	// restart without persistence, failover to a lagging replica, eviction) as
	// long as no newer fence was issued for the mailbox since. Off: such a lease
	// is lost (ReasonMissing) and the holder must obtain it again.
	RestoreMissing bool
	// HoldWhileUnreachable keeps a lease whose local deadline passed without
	// an answer from Redis (Redis down, failing over, or cut off from this
	// node) instead of losing it: the lease becomes unconfirmed, Done stays
	// open, and renewal keeps trying. The first answer settles it: renewed or
	// restored if no other node obtained the lease meanwhile (the fence counter
	// proves it), lost otherwise. Off: the lease is lost at the deadline.
	//
	// The trade: while Redis is down for every node, nobody can obtain the
	// lease, so holding on is safe and keeps the mailbox served. If only this
	// node is cut off, a peer obtains the lease after the Redis TTL and both
	// serve the mailbox until this node reaches Redis again; fencing then
	// rejects this node's writes and ends its hold. Use it where a duplicate
	// delivery is harmless (the client deduplicates) and a stalled mailbox is
	// not.
	HoldWhileUnreachable bool
	Logger               *slog.Logger
	Registerer           prometheus.Registerer
	Panics               *obs.Panics
	Clock                Clock // default: the wall clock
}

func (o *Options) setDefaults() {
	if o.Prefix == "" {
		o.Prefix = redisconf.DefaultPrefix
	}
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.RenewEvery <= 0 {
		o.RenewEvery = o.TTL / 3
	}
	if o.Skew <= 0 {
		o.Skew = min(DefaultSkew, o.TTL/10)
	}
	if o.Logger == nil {
		o.Logger = obs.Discard()
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
}

// Validate checks the options after defaults were applied.
func (o *Options) validate() error {
	if o.TTL < 10*time.Millisecond || o.TTL%time.Millisecond != 0 {
		return fmt.Errorf("lease: Options.TTL %v must be whole milliseconds, at least 10ms", o.TTL)
	}
	if 2*o.RenewEvery+o.Skew >= o.TTL {
		return fmt.Errorf("lease: Options.RenewEvery %v and Skew %v leave no second renewal before the TTL %v", o.RenewEvery, o.Skew, o.TTL)
	}
	return nil
}

// Manager obtains mailbox leases for one node and renews all of them in
// batches: one pipeline per round, whatever the number of leases. Its methods
// are safe for concurrent use.
//
// Timing: a renewal sent at time t, once confirmed, moves the local deadline
// to t + TTL - Skew; Redis expires the key no earlier than t + TTL. While Redis
// is unreachable renewals fail and leases are kept until their local deadline,
// then lost (ReasonExpired). So another node, which can only obtain after the
// Redis-side expiry, never overlaps with this one, given clocks that do not
// drift apart by more than Skew per TTL and a holder that stops within Skew of
// Done. Fencing tokens settle whatever escapes these bounds (a paused process).
type Manager struct {
	client Client
	node   string
	opts   Options
	log    *slog.Logger
	met    *metrics

	actions  chan func()   // closures run on the loop goroutine
	loopDone chan struct{} // closed when the loop exited
	running  atomic.Bool
	stats    atomic.Pointer[Stats]

	mu       sync.Mutex // guards the lifecycle fields below
	started  bool
	cancel   context.CancelFunc
	stopErr  error
	stopOnce sync.Once

	// Owned by the loop goroutine (and by Stop after the loop exited):
	timer     Timer
	held      map[mail.MailboxID]*Lease
	pending   map[mail.MailboxID]struct{} // Obtain in flight
	nextRound time.Time
	rounds    uint64
	last      Stats  // of the last round, published by publishStats
	lastErr   string // last renewal error, logged on change
}

// New returns a Manager for node; it does no I/O. The node id must be unique
// among live processes: a lease held by the same id is taken over by Obtain
// (so a restarted pod need not wait for its old leases to expire).
func New(client Client, node string, opts Options) (*Manager, error) {
	switch {
	case client == nil:
		return nil, errors.New("lease: client is required")
	case node == "":
		return nil, errors.New("lease: node id is required")
	case strings.ContainsAny(node, "|"):
		return nil, fmt.Errorf("lease: node id %q must not contain '|'", node)
	}
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	m := &Manager{
		client:   client,
		node:     node,
		opts:     opts,
		log:      opts.Logger.With("component", "lease", "node", node),
		met:      newMetrics(opts.Registerer),
		actions:  make(chan func()),
		loopDone: make(chan struct{}),
		held:     make(map[mail.MailboxID]*Lease),
		pending:  make(map[mail.MailboxID]struct{}),
	}
	m.stats.Store(&Stats{})
	return m, nil
}

// Node returns the node id the Manager obtains leases for.
func (m *Manager) Node() string { return m.node }

// Start begins the renewal loop. ctx is used for its values only; the loop
// runs until Stop.
func (m *Manager) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started {
		return errors.New("lease: Start called twice")
	}
	m.started = true
	ctx, m.cancel = context.WithCancel(context.WithoutCancel(ctx))
	m.nextRound = m.opts.Clock.Now().Add(m.opts.RenewEvery)
	m.timer = m.opts.Clock.NewTimer(m.opts.RenewEvery) // armed before Start returns, for simulated clocks
	m.running.Store(true)
	go m.run(ctx)
	return nil
}

// Stop ends the renewal loop and releases every held lease (their Done is
// closed first, then one pipeline deletes the keys), so that peers can take
// over at once. Call it after the holders stopped acting for their mailboxes.
// It is idempotent; ctx bounds the wait for the loop and the release.
func (m *Manager) Stop(ctx context.Context) error {
	m.stopOnce.Do(func() { m.stopErr = m.stop(ctx) })
	return m.stopErr
}

func (m *Manager) stop(ctx context.Context) error {
	m.mu.Lock()
	started, cancel := m.started, m.cancel
	m.started = true // a later Start fails
	m.mu.Unlock()
	m.running.Store(false)
	if !started {
		return nil
	}
	cancel()
	select {
	case <-m.loopDone:
	case <-ctx.Done():
		return fmt.Errorf("lease: stop: waiting for the renewal loop: %w", context.Cause(ctx))
	}
	// The loop has exited: its state is ours now.
	leases := make([]*Lease, 0, len(m.held))
	for id, l := range m.held {
		delete(m.held, id)
		if l.finish(ErrReleased) {
			leases = append(leases, l)
		}
	}
	m.met.held.Set(0)
	m.met.unconfirmed.Set(0)
	return m.releaseAll(ctx, leases)
}

// releaseAll deletes the keys of leases in one pipeline.
func (m *Manager) releaseAll(ctx context.Context, leases []*Lease) error {
	if len(leases) == 0 {
		return nil
	}
	keys := make([][]string, len(leases))
	args := make([][]any, len(leases))
	for i, l := range leases {
		keys[i] = []string{LeaseKey(m.opts.Prefix, l.id)}
		args[i] = []any{l.value}
	}
	var failed int
	var first error
	for _, cmd := range evalBatch(ctx, m.client, releaseScript, keys, args) {
		if err := cmd.Err(); err != nil {
			failed++
			if first == nil {
				first = err
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("lease: release: %d of %d leases not released (they expire after the TTL): %w", failed, len(leases), first)
	}
	m.log.Info("leases released", "count", len(leases))
	return nil
}

// Obtain takes the lease on id for this node. It fails with a *HeldError
// (errors.Is ErrHeld) while another node holds it, ErrHeldLocally while this
// Manager holds it, ErrNotRunning outside Start..Stop, or a Redis error.
func (m *Manager) Obtain(ctx context.Context, id mail.MailboxID) (*Lease, error) {
	if id == "" || strings.ContainsAny(string(id), "{}") {
		return nil, fmt.Errorf("lease: invalid mailbox id %q", id)
	}
	var reserved error
	if err := m.do(ctx, func() { reserved = m.reserve(id) }); err != nil {
		return nil, err
	}
	if reserved != nil {
		return nil, reserved
	}
	// From here on the loop must hear back whatever ctx says.
	bg := context.WithoutCancel(ctx)
	l, err := m.obtain(ctx, id)
	if err != nil {
		_ = m.do(bg, func() { delete(m.pending, id) })
		return nil, err
	}
	if err := m.do(bg, func() { m.add(l) }); err != nil {
		// Stopped while obtaining: give it back rather than leave it to expire.
		l.finish(ErrReleased)
		_ = releaseScript.Run(bg, m.client, []string{LeaseKey(m.opts.Prefix, id)}, l.value).Err()
		return nil, err
	}
	return l, nil
}

// obtain runs the obtain script.
func (m *Manager) obtain(ctx context.Context, id mail.MailboxID) (*Lease, error) {
	start := m.opts.Clock.Now()
	keys := []string{LeaseKey(m.opts.Prefix, id), FenceKey(m.opts.Prefix, id)}
	res, err := obtainScript.Run(ctx, m.client, keys, m.node, m.opts.TTL.Milliseconds()).Slice()
	if err != nil {
		return nil, fmt.Errorf("lease: obtain %s: %w", id, err)
	}
	if len(res) != 3 {
		return nil, fmt.Errorf("lease: obtain %s: unexpected reply %v", id, res)
	}
	fence, _ := res[0].(int64)
	holder, _ := res[1].(string)
	if fence <= 0 {
		node, f, _ := ParseValue(holder)
		pttl, _ := res[2].(int64)
		return nil, &HeldError{ID: id, Holder: node, Fence: f, TTL: time.Duration(pttl) * time.Millisecond}
	}
	m.met.obtained.Inc()
	return newLease(m, id, uint64(fence), start.Add(m.opts.TTL-m.opts.Skew)), nil
}

// do runs f on the loop goroutine and waits for it. The loop may be busy with
// a renewal round (bounded by RenewEvery); ctx bounds the wait for its turn.
func (m *Manager) do(ctx context.Context, f func()) error {
	if !m.running.Load() {
		return ErrNotRunning
	}
	done := make(chan struct{})
	select {
	case m.actions <- func() { defer close(done); f() }:
		<-done
		return nil
	case <-m.loopDone:
		return ErrNotRunning
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// reserve marks id as being obtained; loop goroutine.
func (m *Manager) reserve(id mail.MailboxID) error {
	if _, ok := m.pending[id]; ok {
		return ErrHeldLocally
	}
	if l, ok := m.held[id]; ok && l.Err() == nil {
		return ErrHeldLocally
	}
	m.pending[id] = struct{}{}
	return nil
}

// add starts renewing l; loop goroutine.
func (m *Manager) add(l *Lease) {
	delete(m.pending, l.id)
	m.held[l.id] = l
	m.met.held.Set(float64(len(m.held)))
}

// forget stops renewing l (after Release). If ctx ends first, the loop drops
// the ended lease at its next tick instead.
func (m *Manager) forget(ctx context.Context, l *Lease) {
	_ = m.do(ctx, func() {
		if m.held[l.id] == l {
			delete(m.held, l.id)
			m.met.held.Set(float64(len(m.held)))
		}
	})
}

// Stats describes the renewal loop, for status pages and tests.
type Stats struct {
	Held          int           // leases held after the last round
	Unconfirmed   int           // held past their deadline without an answer from Redis (HoldWhileUnreachable)
	Rounds        uint64        // renewal rounds run (an empty round costs no I/O)
	LastRound     time.Duration // wall time of the last round's Redis I/O
	LastRoundSize int           // leases renewed (or attempted) in the last round
	LastErr       string        // last round's error, "" if it succeeded
}

// Stats returns a snapshot taken after the last round.
func (m *Manager) Stats() Stats { return *m.stats.Load() }
