// SPDX-License-Identifier: Apache-2.0

package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/emaillistener/emaillistener/internal/obs"
	"github.com/emaillistener/emaillistener/internal/redisconf"
)

// Defaults for Options.
const (
	// DefaultTTL is how long a node's heartbeat key lives: a crashed node
	// leaves the member list at most this long after its last beat.
	DefaultTTL = 10 * time.Second
	// DefaultBeat is the heartbeat interval: about a third of the TTL, so one
	// lost beat does not drop a node.
	DefaultBeat = 3 * time.Second
)

// Client is the part of go-redis the membership uses. *redis.Client,
// *redis.ClusterClient and every redis.UniversalClient satisfy it.
type Client interface {
	Pipeline() redis.Pipeliner
	ZRangeWithScores(ctx context.Context, key string, start, stop int64) *redis.ZSliceCmd
	Publish(ctx context.Context, channel string, message any) *redis.IntCmd
	Subscribe(ctx context.Context, channels ...string) *redis.PubSub
}

var _ Client = redis.UniversalClient(nil)

// Options configures a Membership. NodeID is required.
type Options struct {
	NodeID   string
	Addr     string        // advertised in Node.Addr
	Capacity int           // default DefaultCapacity
	TTL      time.Duration // heartbeat key TTL; default DefaultTTL
	Beat     time.Duration // heartbeat interval; default DefaultBeat; at most TTL/2
	Prefix   string        // default redisconf.DefaultPrefix
	// SubscriberBuffer is the number of messages buffered per Subscribe
	// channel; default 256.
	SubscriberBuffer int
	Logger           *slog.Logger
	Registerer       prometheus.Registerer
	Panics           *obs.Panics
	Clock            Clock // default: the wall clock
}

func (o *Options) setDefaults() {
	if o.Capacity <= 0 {
		o.Capacity = DefaultCapacity
	}
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.Beat <= 0 {
		o.Beat = min(DefaultBeat, o.TTL/3)
	}
	if o.Prefix == "" {
		o.Prefix = redisconf.DefaultPrefix
	}
	if o.SubscriberBuffer <= 0 {
		o.SubscriberBuffer = 256
	}
	if o.Logger == nil {
		o.Logger = obs.Discard()
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
}

func (o *Options) validate() error {
	switch {
	case o.NodeID == "":
		return errors.New("cluster: Options.NodeID is required")
	case strings.ContainsAny(o.NodeID, "|{} \t\r\n"):
		return fmt.Errorf("cluster: Options.NodeID %q contains a reserved character", o.NodeID)
	case o.TTL < 10*time.Millisecond:
		return fmt.Errorf("cluster: Options.TTL %v is below 10ms", o.TTL)
	case 2*o.Beat > o.TTL:
		return fmt.Errorf("cluster: Options.Beat %v must be at most half the TTL %v", o.Beat, o.TTL)
	}
	return nil
}

// Membership keeps this node in the cluster's member list (a heartbeat key
// with a TTL), maintains a cached view of the live members, and carries the
// cluster's events channel. Its methods are safe for concurrent use.
//
// Two goroutines run between Start and Stop: the loop, which beats every Beat
// and refreshes the view after each beat and whenever kicked; and the
// receiver, which reads the events channel, hands messages to subscribers
// and kicks the loop on "nodes" events and reconnects.
type Membership struct {
	client Client
	opts   Options
	keys   keys
	log    *slog.Logger
	met    *metrics

	owned   atomic.Int64
	leaving atomic.Bool
	running atomic.Bool // between Start and Stop
	view    atomic.Pointer[[]Node]
	beat    atomic.Pointer[beatState]

	changes chan struct{} // kick: the member set changed
	kick    chan struct{} // kick: refresh the view now
	actions chan func()   // closures run on the loop goroutine

	subsMu sync.Mutex // guards subs and closed; held while sending to them
	subs   map[*subscriber]struct{}
	closed bool

	mu       sync.Mutex // lifecycle
	started  bool
	cancel   context.CancelFunc
	pubsub   *redis.PubSub
	loopDone chan struct{}
	recvDone chan struct{}
	stopOnce sync.Once
	stopErr  error

	// Owned by the loop goroutine (set up by Start before it runs):
	self         Node // ID, Addr, Started, Capacity; Leaving as last announced
	timer        Timer
	joined       bool              // a beat succeeded and "nodes" was published
	reannounce   bool              // publish "nodes" with the next beat
	sig          string            // member-set signature of the view, for Changes
	recoverUntil time.Time         // after suspected Redis data loss: no removals from the view until then
	lastErr      map[string]string // last error per operation, logged on change
}

type beatState struct {
	at  time.Time // last successful beat (Clock time)
	err error     // last beat error, nil if it succeeded
}

// New checks options and returns a Membership; it does no I/O.
func New(client Client, opts Options) (*Membership, error) {
	if client == nil {
		return nil, errors.New("cluster: client is required")
	}
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	m := &Membership{
		client:   client,
		opts:     opts,
		keys:     keys{opts.Prefix},
		log:      opts.Logger.With("component", "cluster", "node", opts.NodeID),
		met:      newMetrics(opts.Registerer),
		changes:  make(chan struct{}, 1),
		kick:     make(chan struct{}, 1),
		actions:  make(chan func()),
		subs:     make(map[*subscriber]struct{}),
		loopDone: make(chan struct{}),
		recvDone: make(chan struct{}),
		lastErr:  map[string]string{},
	}
	m.view.Store(&[]Node{})
	m.beat.Store(&beatState{err: errors.New("cluster: not started")})
	return m, nil
}

// ID returns this node's id.
func (m *Membership) ID() string { return m.opts.NodeID }

// Start joins the cluster: it subscribes to the events channel, writes the
// first heartbeat, reads the member list, announces the join, and starts the
// loops. Redis trouble is not an error: it is logged and retried, and Ready
// reports it. ctx bounds this first I/O; the loops run until Stop.
func (m *Membership) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started {
		return errors.New("cluster: Start called twice")
	}
	m.started = true
	m.self = Node{ID: m.opts.NodeID, Addr: m.opts.Addr, Started: m.opts.Clock.Now(), Capacity: m.opts.Capacity}

	// Subscribe before the first beat and wait for the confirmation, so no
	// event published after Start returns is missed.
	m.pubsub = m.client.Subscribe(ctx, m.keys.events())
	sctx, cancel := context.WithTimeout(ctx, m.opts.Beat)
	_, err := m.pubsub.Receive(sctx)
	cancel()
	if err != nil {
		m.log.Warn("cluster events: subscribe failed; retrying in the background", "err", err)
	}

	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancelRun
	_ = m.heartbeat(ctx)
	m.refresh(ctx)
	m.timer = m.opts.Clock.NewTimer(m.opts.Beat)
	m.running.Store(true)
	go m.run(runCtx)
	go m.receive(runCtx)
	return nil
}

// Leave marks this node as leaving (the first phase of a graceful shutdown):
// the next heartbeat, written at once, carries Leaving, peers are told, and
// placement skips the node while it hands its mailboxes over. The node stays
// a member, still beating, until Stop.
func (m *Membership) Leave(ctx context.Context) error {
	if !m.running.Load() {
		return errNotRunning
	}
	m.leaving.Store(true)
	var err error
	if derr := m.do(ctx, func() { err = m.heartbeat(ctx); m.refresh(ctx) }); derr != nil {
		return derr
	}
	return err
}

// Stop leaves the cluster: it ends the loops, deletes this node's heartbeat
// key and registry entry, announces the leave, and closes every Subscribe
// channel. Call it last in a shutdown, after the leases were released. It is
// idempotent; ctx bounds it.
func (m *Membership) Stop(ctx context.Context) error {
	m.stopOnce.Do(func() { m.stopErr = m.stop(ctx) })
	return m.stopErr
}

func (m *Membership) stop(ctx context.Context) error {
	m.mu.Lock()
	started, cancel, ps := m.started, m.cancel, m.pubsub
	m.started = true // a later Start fails
	m.mu.Unlock()
	m.running.Store(false)
	defer m.closeSubscribers()
	if !started {
		return nil
	}
	cancel()
	_ = ps.Close() // unblocks the receiver
	for _, done := range []chan struct{}{m.loopDone, m.recvDone} {
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("cluster: stop: waiting for the loops: %w", context.Cause(ctx))
		}
	}
	pipe := m.client.Pipeline()
	pipe.Del(ctx, m.keys.node(m.opts.NodeID))
	pipe.ZRem(ctx, m.keys.registry(), m.opts.NodeID)
	pipe.Publish(ctx, m.keys.events(), EventNodes)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("cluster: leave (peers notice when the heartbeat expires): %w", err)
	}
	m.met.members.Set(0)
	m.log.Info("left the cluster")
	return nil
}

// SetOwned records how many mailboxes this node serves; the next heartbeat
// announces it.
func (m *Membership) SetOwned(n int) { m.owned.Store(int64(n)) }

// View returns the cached list of live members (this node included once its
// first beat succeeded), sorted by id. It does no I/O: it is refreshed after
// every beat and on membership events. Callers must not modify it.
func (m *Membership) View() []Node { return *m.view.Load() }

// Changes receives a value (coalesced, buffered 1) when the view's member set
// changed: a node joined, left, expired, started leaving, or changed capacity.
// Owned counts and timestamps do not count. Meant for one consumer, which
// then reads View.
func (m *Membership) Changes() <-chan struct{} { return m.changes }

// Ready returns nil while the heartbeat works: the last successful one is
// younger than the TTL (so peers see this node). Otherwise it describes the
// trouble, for a readiness probe.
func (m *Membership) Ready() error {
	b := m.beat.Load()
	if b.at.IsZero() {
		return fmt.Errorf("cluster: no heartbeat yet: %w", b.err)
	}
	if age := m.opts.Clock.Now().Sub(b.at); age >= m.opts.TTL {
		return fmt.Errorf("cluster: last heartbeat %v ago: %w", age.Round(time.Millisecond), b.err)
	}
	return nil
}

// Members lists the live members from Redis (not the cache), sorted by id,
// and prunes registry entries of nodes whose heartbeat key is gone.
func (m *Membership) Members(ctx context.Context) ([]Node, error) {
	entries, err := m.client.ZRangeWithScores(ctx, m.keys.registry(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("cluster: list members: %w", err)
	}
	if len(entries) == 0 {
		return []Node{}, nil
	}
	pipe := m.client.Pipeline()
	gets := make([]*redis.StringCmd, len(entries))
	for i, e := range entries {
		gets[i] = pipe.Get(ctx, m.keys.node(fmt.Sprint(e.Member)))
	}
	_, _ = pipe.Exec(ctx) // redis.Nil for missing keys; errors are read per command
	nodes := make([]Node, 0, len(entries))
	var dead []any
	// A registry entry without key is pruned once it is older than the TTL,
	// which keeps a node whose first beat is half-written (Redis Cluster
	// applies the pipeline per slot) in the registry.
	stale := float64(m.opts.Clock.Now().Add(-m.opts.TTL).UnixMilli())
	for i, e := range entries {
		raw, err := gets[i].Bytes()
		switch {
		case errors.Is(err, redis.Nil):
			if e.Score < stale {
				dead = append(dead, e.Member)
			}
			continue
		case err != nil:
			return nil, fmt.Errorf("cluster: read member %v: %w", e.Member, err)
		}
		var n Node
		if err := json.Unmarshal(raw, &n); err != nil || n.ID == "" {
			m.log.Warn("ignoring malformed member record", "member", e.Member, "err", err)
			continue
		}
		nodes = append(nodes, n)
	}
	if len(dead) > 0 {
		// Races with a dead node's comeback heal with its next beat (ZADD).
		if err := m.pipelineZRem(ctx, dead); err != nil {
			m.log.Debug("prune dead members", "err", err)
		}
	}
	slices.SortFunc(nodes, func(a, b Node) int { return cmp.Compare(a.ID, b.ID) })
	return nodes, nil
}

func (m *Membership) pipelineZRem(ctx context.Context, members []any) error {
	pipe := m.client.Pipeline()
	pipe.ZRem(ctx, m.keys.registry(), members...)
	_, err := pipe.Exec(ctx)
	return err
}
