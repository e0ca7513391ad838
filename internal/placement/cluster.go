// SPDX-License-Identifier: Apache-2.0

package placement

import (
	"context"

	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/emaillistener/emaillistener/internal/cluster"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/obs"
)

// Store is the registry shared by the nodes (Redis).
type Store interface {
	PutMailbox(ctx context.Context, m *mail.Mailbox) error
	DeleteMailbox(ctx context.Context, id mail.MailboxID) error
	Mailbox(ctx context.Context, id mail.MailboxID) (*mail.Mailbox, error)
	Mailboxes(ctx context.Context) ([]*mail.Mailbox, error)
	MailboxIDs(ctx context.Context) ([]mail.MailboxID, error)
	Statuses(ctx context.Context, ids []mail.MailboxID) (map[mail.MailboxID]mail.Status, error)
	// Epoch returns the marker of the store's data set: created once per data
	// set, so a new value means the store lost everything since.
	Epoch(ctx context.Context) (string, error)
	// Ping checks the store answers; Health that it can open its records.
	Ping(ctx context.Context) error
	Health() error
}

// Members is the live cluster view and its event channel.
type Members interface {
	View() []cluster.Node
	Changes() <-chan struct{}
	Subscribe(ctx context.Context) <-chan string
	Publish(ctx context.Context, msg string) error
	SetOwned(n int)
	// Members lists the live nodes (the cluster view of the API); Ready
	// fails while this node's heartbeat does not reach the store.
	Members(ctx context.Context) ([]cluster.Node, error)
	Ready() error
}

// Holders tells which node holds each mailbox's lease right now.
type Holders interface {
	Holders(ctx context.Context, ids []mail.MailboxID) (map[mail.MailboxID]string, error)
}

// ClusterOptions configures NewCluster; every field but Logger, Registerer
// and Panics is required.
type ClusterOptions struct {
	Store   Store
	Members Members
	Holders Holders
	Runner  Runner
	Node    string
	// Skip reports whether a record error means "not there to run": listed
	// without a record (a half-done write) or unreadable (quarantined).
	Skip       func(error) bool
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Panics     *obs.Panics
}

// Cluster timing: reconcile every reconcileEvery; every fullReconcileEvery-th
// round reads and compares every record (the backstop for a lost update
// event), the others read only the ids and fetch the records of mailboxes
// newly placed here, so a node with 10,000 mailboxes does not decrypt and
// decode all of them every 10 s.
const (
	reconcileEvery     = 10 * time.Second
	fullReconcileEvery = 6
	reconcileTimeout   = 30 * time.Second
)

// Cluster places mailboxes over the live nodes. Its loop goroutine owns the
// fields marked so; the rest is set before Start.
type Cluster struct {
	opts     ClusterOptions
	log      *slog.Logger
	kick     chan struct{}
	cancel   context.CancelFunc
	done     chan struct{}
	unplaced prometheus.Gauge

	// owned by the loop
	epoch        string // the store's epoch at the last reconcile
	rounds       int    // reconciles run
	unreachable  bool   // the last reconcile could not read the registry
	lastUnplaced int
}

// NewCluster returns a Cluster; it does no I/O.
func NewCluster(opts ClusterOptions) *Cluster {
	return &Cluster{opts: opts, log: discard(opts.Logger).With("node", opts.Node),
		kick: make(chan struct{}, 1), done: make(chan struct{}),
		unplaced: promauto.With(opts.Registerer).NewGauge(prometheus.GaugeOpts{
			Name: "emaillistener_cluster_unplaced_mailboxes",
			Help: "Registered mailboxes no node serves because every node is at EL_MAX_SUBSCRIPTIONS.",
		})}
}

// Start runs the reconcile loop until Stop.
func (c *Cluster) Start(ctx context.Context) error {
	ctx, c.cancel = context.WithCancel(ctx)
	go c.run(ctx)
	return nil
}

// Stop ends the loop and waits for it (the runner's subscriptions go on until
// the runner stops).
func (c *Cluster) Stop(ctx context.Context) error {
	if c.cancel == nil {
		return nil
	}
	c.cancel()
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("placement: stop: %w", context.Cause(ctx))
	}
}

// owner returns the node mailbox id is placed on; ok is false while this
// node is not in the view yet (then it decides nothing).
func (c *Cluster) owner(id mail.MailboxID) (string, bool) {
	view := c.opts.Members.View()
	for _, n := range view {
		if n.ID == c.opts.Node {
			return cluster.Owner(id, view), true
		}
	}
	return "", false
}

// Subscribe stores mb and announces it; it starts here at once when this node
// owns it.
func (c *Cluster) Subscribe(ctx context.Context, mb *mail.Mailbox, mode mail.Mode) error {
	if err := c.opts.Store.PutMailbox(ctx, mb); err != nil {
		return err
	}
	ev := cluster.Event{Kind: cluster.EventSubscribe, Mode: mode, ID: mb.ID}
	if owner, ok := c.owner(mb.ID); ok && owner == c.opts.Node {
		c.run1(mb, mode) // the mailbox in hand: no read back through the store
	}
	c.publish(ctx, ev)
	return nil
}

// Close forgets id and announces it; its owner stops it.
func (c *Cluster) Close(ctx context.Context, id mail.MailboxID) error {
	c.opts.Runner.Unsubscribe(id)
	if err := c.opts.Store.DeleteMailbox(ctx, id); err != nil {
		return err
	}
	c.publish(ctx, cluster.Event{Kind: cluster.EventClose, ID: id})
	return nil
}

func (c *Cluster) publish(ctx context.Context, ev cluster.Event) {
	if err := c.opts.Members.Publish(ctx, ev.String()); err != nil {
		c.log.Warn("cluster event not published; the owner picks the change up on its next reconcile", "err", err)
	}
}

// run1 (re)subscribes mb here. An unchanged healthy subscription publishes
// no state change; it is republished anyway: the caller (Creatio's failover)
// may be asking because the shared state lost it.
func (c *Cluster) run1(mb *mail.Mailbox, mode mail.Mode) {
	obs.Check(c.log, c.opts.Runner.Subscribe(mb, mode), "subscribe", "mailbox", string(mb.ID))
	c.opts.Runner.Republish(mb.ID)
}

func (c *Cluster) run(ctx context.Context) {
	defer close(c.done)
	defer c.opts.Panics.Recover(c.log, "placement", nil)
	events := c.opts.Members.Subscribe(ctx)
	t := time.NewTicker(reconcileEvery)
	defer t.Stop()
	for {
		c.reconcile(ctx)
		if !c.waitRound(ctx, t.C, &events) {
			return
		}
	}
}

// waitRound applies events until the next reconcile is due; false when ctx
// ended.
func (c *Cluster) waitRound(ctx context.Context, tick <-chan time.Time, events *<-chan string) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case <-tick:
			return true
		case <-c.opts.Members.Changes():
			return true
		case <-c.kick:
			return true
		case msg, ok := <-*events:
			if !ok {
				*events = nil
				continue
			}
			ev, isEvent := cluster.ParseEvent(msg)
			if !isEvent { // node changes, or messages lost: reconcile now
				return true
			}
			c.apply(ctx, ev)
		}
	}
}

// apply handles one event if this node owns the mailbox.
func (c *Cluster) apply(ctx context.Context, ev cluster.Event) {
	switch ev.Kind {
	case cluster.EventSubscribe:
		if owner, ok := c.owner(ev.ID); !ok || owner != c.opts.Node {
			return
		}
		mb, err := c.opts.Store.Mailbox(ctx, ev.ID)
		if err != nil {
			obs.Check(c.log, err, "load registered mailbox", "mailbox", string(ev.ID))
			return
		}
		c.run1(mb, ev.Mode)
	case cluster.EventClose:
		c.opts.Runner.Unsubscribe(ev.ID)
	}
}

// reconcile starts what this node should own and stops what it should not.
// With Redis unreachable it changes nothing: held subscriptions keep running.
func (c *Cluster) reconcile(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, reconcileTimeout)
	defer cancel()
	ids, err := c.opts.Store.MailboxIDs(rctx)
	if err != nil {
		if !c.unreachable {
			c.log.Warn("reconcile: registry unreachable, keeping current subscriptions", "err", err)
		}
		c.unreachable = true
		return
	}
	if c.unreachable {
		// State changes during the outage were not published: publish them now
		// so every node answers subscriptionsstate correctly again.
		c.unreachable = false
		running := c.opts.Runner.IDs()
		for _, id := range running {
			c.opts.Runner.Republish(id)
		}
		c.log.Info("reconcile: registry reachable again", "republished", len(running))
	}
	if _, ok := c.owner(""); !ok {
		return // not in the member view yet: decide nothing
	}
	// Assign honours each node's capacity (EL_MAX_SUBSCRIPTIONS): a full node's
	// overflow goes to the next-ranked node; all nodes compute the same result.
	placed := cluster.Assign(ids, c.opts.Members.View(), 0)
	c.countUnplaced(len(ids) - len(placed))
	full := c.rounds%fullReconcileEvery == 0
	c.rounds++
	mine, want, err := c.placedHere(rctx, ids, placed, full)
	if err != nil {
		c.log.Warn("reconcile: registry unreadable, keeping current subscriptions", "err", err)
		return
	}
	for _, mb := range mine {
		if err := c.opts.Runner.Subscribe(mb, mail.ModeCreate); err != nil && ctx.Err() == nil {
			c.log.Warn("reconcile: subscribe failed", "mailbox", string(mb.ID), "err", err)
		}
	}
	running := c.opts.Runner.IDs()
	if lost, err := c.dataLost(rctx); err != nil {
		c.log.Warn("reconcile: cannot check the registry epoch, keeping current subscriptions", "err", err)
		return
	} else if lost {
		// Redis lost its data (restart without persistence, failover to an
		// empty replica): that is not every mailbox being closed. Each node
		// writes back what it serves instead of dropping live subscriptions;
		// Creatio's failover job re-creates anything else.
		c.writeBack(rctx, running)
		return
	}
	moved := 0
	for _, id := range running {
		if !want[id] {
			c.opts.Runner.Unsubscribe(id) // releases the lease: the new owner takes over
			moved++
		}
	}
	if moved > 0 {
		c.log.Info("mailboxes handed over", "count", moved)
	}
	c.opts.Members.SetOwned(len(want))
}

// countUnplaced keeps the gauge of mailboxes no node has room for and logs a
// change.
func (c *Cluster) countUnplaced(n int) {
	if n == c.lastUnplaced {
		return
	}
	c.unplaced.Set(float64(n))
	if n > 0 {
		c.log.Warn("the cluster is full: mailboxes not served by any node (raise EL_MAX_SUBSCRIPTIONS or add nodes)", "unplaced", n)
	}
	c.lastUnplaced = n
}

// placedHere returns the registrations to (re)subscribe on this node and the
// set of mailboxes it should own. In a full round every record placed here is
// read (Subscribe keeps an identical running subscription); otherwise only
// those not running yet.
func (c *Cluster) placedHere(ctx context.Context, ids []mail.MailboxID, placed map[mail.MailboxID]string, full bool) ([]*mail.Mailbox, map[mail.MailboxID]bool, error) {
	want := make(map[mail.MailboxID]bool)
	var mine []*mail.Mailbox
	if full {
		mbs, err := c.opts.Store.Mailboxes(ctx)
		if err != nil {
			return nil, nil, err
		}
		for _, mb := range mbs {
			if placed[mb.ID] == c.opts.Node {
				want[mb.ID] = true
				mine = append(mine, mb)
			}
		}
		return mine, want, nil
	}
	for _, id := range ids {
		if placed[id] != c.opts.Node {
			continue
		}
		if _, running := c.opts.Runner.Status(id); running {
			want[id] = true
			continue
		}
		mb, err := c.opts.Store.Mailbox(ctx, id)
		if err != nil && c.opts.Skip != nil && c.opts.Skip(err) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		want[id] = true
		mine = append(mine, mb)
	}
	return mine, want, nil
}

// dataLost reports whether the store's epoch changed since the last
// reconcile: it is created once per data set, so a new value means Redis lost
// everything since.
func (c *Cluster) dataLost(ctx context.Context) (bool, error) {
	cur, err := c.opts.Store.Epoch(ctx)
	if err != nil {
		return false, err
	}
	lost := c.epoch != "" && cur != c.epoch
	c.epoch = cur
	return lost, nil
}

func (c *Cluster) writeBack(ctx context.Context, ids []mail.MailboxID) {
	n := 0
	for _, id := range ids {
		mb, ok := c.opts.Runner.Mailbox(id)
		if !ok {
			continue
		}
		if err := c.opts.Store.PutMailbox(ctx, mb); err != nil {
			c.log.Warn("write-back after Redis data loss failed", "err", err)
			return
		}
		c.opts.Runner.Republish(id)
		n++
	}
	c.log.Warn("the registry was empty (Redis lost its data?): wrote back the mailboxes this node serves", "count", n)
}

// States returns the state of ids wherever they run: this node's own, the
// others' as published in the store. A published "exists" counts only while
// its node holds the mailbox's lease and has been running since before it
// was published (a node restarted under the same name holds the lease of its
// previous process until it expires); otherwise the status is marked Stale.
func (c *Cluster) States(ctx context.Context, ids []mail.MailboxID) (map[mail.MailboxID]mail.Status, error) {
	remote, err := c.opts.Store.Statuses(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("%w: read subscription states (Redis unreachable?): %v", ErrUnreadable, err)
	}
	local := nodeStates(c.opts.Runner, c.opts.Node, ids)
	var check []mail.MailboxID
	for id, r := range remote {
		if _, ok := local[id]; ok {
			delete(remote, id)
		} else if r.State == mail.StateExists {
			check = append(check, id)
		}
	}
	if len(check) > 0 {
		held, err := c.opts.Holders.Holders(ctx, check)
		if err != nil {
			return nil, fmt.Errorf("%w: read mailbox leases (Redis unreachable?): %v", ErrUnreadable, err)
		}
		for _, id := range check {
			if r := remote[id]; !c.liveClaim(r, held[id]) {
				r.Stale = true
				remote[id] = r
			}
		}
	}
	for id, st := range local {
		remote[id] = st
	}
	return remote, nil
}

// liveClaim reports whether a published exists state is backed by a live
// process: its node holds the lease and started before the state was
// published.
func (c *Cluster) liveClaim(r mail.Status, holder string) bool {
	if holder != r.Node {
		return false
	}
	for _, n := range c.opts.Members.View() {
		if n.ID == r.Node {
			return !r.Since.Add(time.Millisecond).Before(n.Started) // Since is stored in ms
		}
	}
	return false
}

// Nodes lists the live nodes with what they hold (GET /api/cluster).
func (c *Cluster) Nodes(ctx context.Context) (any, error) { return c.opts.Members.Members(ctx) }

// Ready fails while this node cannot serve as a cluster member: Redis does
// not answer (within a second: a hung Redis must fail the probe quickly, not
// after the client's retries), none of the mailbox records opens with the
// configured key, or the heartbeat does not reach Redis.
func (c *Cluster) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := c.opts.Store.Ping(ctx); err != nil {
		return err
	}
	if err := c.opts.Store.Health(); err != nil {
		return err
	}
	return c.opts.Members.Ready()
}

// StatusPublisher writes a subscription's state changes to the store so that
// every node can answer subscriptionsstate; it is the runner's OnStatus in a
// cluster. Closed is not written: after a hand-over the new owner's state
// must not be overwritten by the old owner's exit.
func StatusPublisher(put func(ctx context.Context, id mail.MailboxID, st mail.Status) error, node string, log *slog.Logger) func(*mail.Mailbox, mail.Status) {
	log = discard(log)
	return func(mb *mail.Mailbox, st mail.Status) {
		id := mb.ID
		if st.State == mail.StateClosed {
			return
		}
		st.Node = node
		ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
		defer cancel()
		if err := put(ctx, id, st); err != nil {
			log.Debug("status not published", "mailbox", string(id), "err", fmt.Sprint(err))
		}
	}
}

// statusTimeout bounds one status write: it runs on the mailbox's goroutine.
const statusTimeout = 2 * time.Second
