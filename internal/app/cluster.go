package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/emaillistener/emaillistener/internal/cluster"
	"github.com/emaillistener/emaillistener/internal/config"
	"github.com/emaillistener/emaillistener/internal/lease"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/obs"
	"github.com/emaillistener/emaillistener/internal/secret"
	"github.com/emaillistener/emaillistener/internal/store"
	"github.com/emaillistener/emaillistener/internal/syncer"
)

// Cluster timing. A crashed node's heartbeat expires after nodeTTL, its
// leases after leaseTTL at the latest; survivors then re-open its mailboxes
// within about max(nodeTTL + nodeBeat, leaseTTL), ~8 s, plus the logins. A
// short lease costs nothing during Redis trouble: leases are held through it
// (lease.Options.HoldWhileUnreachable).
const (
	nodeTTL        = 6 * time.Second
	nodeBeat       = 2 * time.Second
	leaseTTL       = 6 * time.Second
	leaseRenew     = 2 * time.Second
	reconcileEvery = 10 * time.Second
	statusTimeout  = 2 * time.Second
)

// clusterParts are the Redis-backed components of cluster mode.
type clusterParts struct {
	rdb     redis.UniversalClient
	store   *store.Redis
	leases  *lease.Manager
	members *cluster.Membership
}

func newClusterParts(cfg config.Config, log *slog.Logger, reg prometheus.Registerer, panics *obs.Panics) (*clusterParts, error) {
	ropts, err := store.RedisOptionsFromConfig(store.RedisConfig{
		URL: cfg.RedisURL.Reveal(), Connection: cfg.RedisConnection.Reveal(), Host: cfg.RedisHost, DB: cfg.RedisDatabase,
		Password: cfg.RedisPassword.Reveal(), TLSCAFile: cfg.RedisTLSCAFile, TLSInsecure: cfg.RedisTLSInsecure,
	})
	if err != nil {
		return nil, err
	}
	var box *secret.Box
	key, err := secret.LoadKey(cfg.SecretKey.Reveal(), cfg.SecretKeyFile)
	if err != nil {
		return nil, err
	}
	if key != nil {
		if box, err = secret.New(key); err != nil {
			return nil, err
		}
	}
	rdb := redis.NewUniversalClient(ropts)
	st, err := store.NewRedis(rdb, &store.RedisOptions{Prefix: cfg.RedisPrefix, Box: box, AllowPlaintext: cfg.AllowPlaintextSecrets,
		Logger: log, Registerer: reg})
	if err != nil {
		rdb.Close()
		return nil, err
	}
	// RestoreMissing: after Redis loses its data, a node re-creates the leases
	// it holds instead of dropping every subscription (no churn).
	// HoldWhileUnreachable: a Redis outage stops no subscription; Creatio
	// deduplicates the mail a node cut off alone may deliver twice meanwhile.
	leases, err := lease.New(rdb, cfg.NodeID, lease.Options{Prefix: cfg.RedisPrefix, TTL: leaseTTL, RenewEvery: leaseRenew,
		RestoreMissing: true, HoldWhileUnreachable: true, Logger: log, Registerer: reg, Panics: panics})
	if err != nil {
		rdb.Close()
		return nil, err
	}
	members, err := cluster.New(rdb, cluster.Options{NodeID: cfg.NodeID, Addr: cfg.ListenAddr, Capacity: cfg.MaxSubscriptions,
		TTL: nodeTTL, Beat: nodeBeat, Prefix: cfg.RedisPrefix, Logger: log, Registerer: reg, Panics: panics})
	if err != nil {
		rdb.Close()
		return nil, err
	}
	log.Info("cluster mode", "node", cfg.NodeID, "redis", store.DescribeRedisOptions(ropts), "encrypted", box != nil)
	return &clusterParts{rdb: rdb, store: st, leases: leases, members: members}, nil
}

// leaser adapts the lease manager to the syncer.
type leaser struct{ m *lease.Manager }

func (l leaser) Obtain(ctx context.Context, id mail.MailboxID) (syncer.Lease, error) {
	le, err := l.m.Obtain(ctx, id)
	if err != nil {
		return nil, err
	}
	return le, nil
}

// Event messages on the cluster channel: "sub:<mode>:<id>" after a
// registration, "close:<id>" after a close. Other nodes may publish them; the
// owner applies them at once, everyone else ignores them (reconcile is the
// backstop for lost messages).
func subEvent(mode syncer.Mode, id mail.MailboxID) string {
	return "sub:" + strconv.Itoa(int(mode)) + ":" + string(id)
}

// coordinator decides which registered mailboxes run on this node: those that
// rendezvous hashing over the live members places here. Its loop goroutine
// owns nothing but its channels; the syncer keeps the workers.
type coordinator struct {
	self    string
	reg     *store.Redis
	members *cluster.Membership
	syncer  *syncer.Manager
	log     *slog.Logger
	panics  *obs.Panics
	kick    chan struct{}
	done    chan struct{}
	rdb     redis.UniversalClient
	prefix  string
	epoch   string // registry epoch seen at the last reconcile; owned by the loop
	rounds  int    // reconciles run; owned by the loop
	// unreachable: the last reconcile could not read the registry; owned by
	// the loop.
	unreachable bool
	// unplaced counts registered mailboxes no node has room for (every node
	// at EL_MAX_SUBSCRIPTIONS); lastUnplaced is owned by the loop.
	unplaced     prometheus.Gauge
	lastUnplaced int
}

func (c *coordinator) owner(id mail.MailboxID) (string, bool) {
	view := c.members.View()
	for _, n := range view {
		if n.ID == c.self {
			return cluster.Owner(id, view), true
		}
	}
	return "", false // we are not (yet) in the view: decide nothing
}

// announce tells the cluster about a registration or close, applying it here
// first when this node owns the mailbox.
func (c *coordinator) announce(ctx context.Context, msg string) {
	c.apply(ctx, msg)
	if err := c.members.Publish(ctx, msg); err != nil {
		c.log.Warn("cluster event not published; the owner picks the change up on its next reconcile", "err", err)
	}
}

func (c *coordinator) run(ctx context.Context) {
	defer close(c.done)
	defer c.panics.Recover(c.log, "coordinator", nil)
	events := c.members.Subscribe(ctx)
	t := time.NewTicker(reconcileEvery)
	defer t.Stop()
	for {
		c.reconcile(ctx)
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-c.members.Changes():
			case <-c.kick:
			case msg, ok := <-events:
				if !ok {
					events = nil
					continue
				}
				if msg == cluster.Resync || msg == "nodes" {
					break
				}
				c.apply(ctx, msg)
				continue
			}
			break
		}
	}
}

// apply handles one event if this node owns the mailbox.
func (c *coordinator) apply(ctx context.Context, msg string) {
	kind, rest, _ := strings.Cut(msg, ":")
	switch kind {
	case "sub":
		modeS, id, _ := strings.Cut(rest, ":")
		mode, _ := strconv.Atoi(modeS)
		if owner, ok := c.owner(mail.MailboxID(id)); !ok || owner != c.self {
			return
		}
		mb, err := c.reg.Mailbox(ctx, mail.MailboxID(id))
		if err != nil {
			obs.Check(c.log, err, "load registered mailbox", "mailbox", id)
			return
		}
		obs.Check(c.log, c.syncer.Subscribe(mb, syncer.Mode(mode)), "subscribe", "mailbox", id)
		// An unchanged healthy subscription publishes no state change; publish
		// anyway, the caller (Creatio's failover) may be asking because the
		// shared state lost it.
		c.syncer.Republish(mb.ID)
	case "close":
		c.syncer.Unsubscribe(mail.MailboxID(rest))
	}
}

// fullReconcileEvery: every 6th reconcile (about once a minute) reads and
// compares every registry record, the backstop for a lost update event; the
// others read only the ids and fetch the records of mailboxes newly placed
// here, so a node with 10,000 mailboxes does not decrypt and decode all of
// them every 10 s.
const fullReconcileEvery = 6

// reconcile starts what this node should own and stops what it should not.
// With Redis unreachable it changes nothing: held subscriptions keep running.
func (c *coordinator) reconcile(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ids, err := c.reg.MailboxIDs(rctx)
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
		running := c.syncer.IDs()
		for _, id := range running {
			c.syncer.Republish(id)
		}
		c.log.Info("reconcile: registry reachable again", "republished", len(running))
	}
	if _, ok := c.owner(""); !ok {
		return // not in the member view yet: decide nothing
	}
	// Assign honours each node's capacity (EL_MAX_SUBSCRIPTIONS): a full node's
	// overflow goes to the next-ranked node; all nodes compute the same result.
	placed := cluster.Assign(ids, c.members.View(), 0)
	if n := len(ids) - len(placed); n != c.lastUnplaced {
		c.unplaced.Set(float64(n))
		if n > 0 {
			c.log.Warn("the cluster is full: mailboxes not served by any node (raise EL_MAX_SUBSCRIPTIONS or add nodes)", "unplaced", n)
		}
		c.lastUnplaced = n
	}
	full := c.rounds%fullReconcileEvery == 0
	c.rounds++
	mine, want, err := c.placedHere(rctx, ids, placed, full)
	if err != nil {
		c.log.Warn("reconcile: registry unreadable, keeping current subscriptions", "err", err)
		return
	}
	for _, mb := range mine {
		if err := c.syncer.Subscribe(mb, syncer.ModeCreate); err != nil && !errors.Is(err, syncer.ErrStopped) {
			c.log.Warn("reconcile: subscribe failed", "mailbox", string(mb.ID), "err", err)
		}
	}
	running := c.syncer.IDs()
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
			c.syncer.Unsubscribe(id) // releases the lease: the new owner takes over
			moved++
		}
	}
	if moved > 0 {
		c.log.Info("mailboxes handed over", "count", moved)
	}
	c.members.SetOwned(len(want))
}

// placedHere returns the registrations to (re)subscribe on this node and the
// set of mailboxes it should own. In a full round every record placed here is
// read (Subscribe keeps an identical running subscription); otherwise only
// those not running yet.
func (c *coordinator) placedHere(ctx context.Context, ids []mail.MailboxID, placed map[mail.MailboxID]string, full bool) ([]*mail.Mailbox, map[mail.MailboxID]bool, error) {
	want := make(map[mail.MailboxID]bool)
	var mine []*mail.Mailbox
	if full {
		mbs, err := c.reg.Mailboxes(ctx)
		if err != nil {
			return nil, nil, err
		}
		for _, mb := range mbs {
			if placed[mb.ID] == c.self {
				want[mb.ID] = true
				mine = append(mine, mb)
			}
		}
		return mine, want, nil
	}
	for _, id := range ids {
		if placed[id] != c.self {
			continue
		}
		if _, running := c.syncer.Status(id); running {
			want[id] = true
			continue
		}
		mb, err := c.reg.Mailbox(ctx, id)
		var re *store.RecordError
		if errors.Is(err, store.ErrNotFound) || errors.As(err, &re) {
			continue // listed without a record (a half-done write), or quarantined
		}
		if err != nil {
			return nil, nil, err
		}
		want[id] = true
		mine = append(mine, mb)
	}
	return mine, want, nil
}

// dataLost reports whether the registry's epoch marker changed since the last
// reconcile: the marker is created once per data set (SETNX), so its absence
// or a new value means Redis lost everything since.
func (c *coordinator) dataLost(ctx context.Context) (bool, error) {
	key := c.prefix + "epoch"
	cur, err := c.rdb.Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		if err := c.rdb.SetNX(ctx, key, strconv.FormatInt(time.Now().UnixNano(), 36)+"-"+c.self, 0).Err(); err != nil {
			return false, err
		}
		if cur, err = c.rdb.Get(ctx, key).Result(); err != nil {
			return false, err
		}
	} else if err != nil {
		return false, err
	}
	lost := c.epoch != "" && cur != c.epoch
	c.epoch = cur
	return lost, nil
}

func (c *coordinator) writeBack(ctx context.Context, ids []mail.MailboxID) {
	n := 0
	for _, id := range ids {
		mb, ok := c.syncer.Mailbox(id)
		if !ok {
			continue
		}
		if err := c.reg.PutMailbox(ctx, mb); err != nil {
			c.log.Warn("write-back after Redis data loss failed", "err", err)
			return
		}
		c.syncer.Republish(id)
		n++
	}
	c.log.Warn("the registry was empty (Redis lost its data?): wrote back the mailboxes this node serves", "count", n)
}

// publishStatus writes a subscription's state to Redis so every node can
// answer subscriptionsstate. Closed is not written: after a hand-over the new
// owner's state must not be overwritten by the old owner's exit.
func publishStatus(st *store.Redis, node string, log *slog.Logger) func(mail.MailboxID, syncer.Status) {
	return func(id mail.MailboxID, s syncer.Status) {
		if s.State == syncer.StateClosed {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
		defer cancel()
		err := st.PutStatus(ctx, id, mail.Status{State: s.State, ErrorClass: s.ErrorClass, LastError: s.LastError, Node: node,
			Since: s.Since, RetryAt: s.RetryAt, LastEventAt: s.LastEventAt, Delivered: s.Delivered, Folders: s.Folders})
		if err != nil {
			log.Debug("status not published", "mailbox", string(id), "err", fmt.Sprint(err))
		}
	}
}

// clusterAPI serves the cluster view and readiness.
type clusterAPI struct{ p *clusterParts }

func (c clusterAPI) Nodes(ctx context.Context) (any, error) { return c.p.members.Members(ctx) }

func (c clusterAPI) Ready(ctx context.Context) error {
	// A hung Redis must fail the probe quickly, not after the client's retries.
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := c.p.store.Ping(ctx); err != nil {
		return err
	}
	if err := c.p.store.Health(); err != nil {
		return err
	}
	return c.p.members.Ready()
}
