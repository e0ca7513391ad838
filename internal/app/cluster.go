// SPDX-License-Identifier: Apache-2.0

package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/emaillistener/emaillistener/internal/cluster"
	"github.com/emaillistener/emaillistener/internal/config"
	"github.com/emaillistener/emaillistener/internal/lease"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/obs"
	"github.com/emaillistener/emaillistener/internal/redisconf"
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
	nodeTTL    = 6 * time.Second
	nodeBeat   = 2 * time.Second
	leaseTTL   = 6 * time.Second
	leaseRenew = 2 * time.Second
)

// clusterParts are the Redis-backed components of cluster mode.
type clusterParts struct {
	rdb     redis.UniversalClient
	store   *store.Redis
	leases  *lease.Manager
	members *cluster.Membership
}

func newClusterParts(cfg config.Config, log *slog.Logger, reg prometheus.Registerer, panics *obs.Panics) (*clusterParts, error) {
	ropts, err := redisconf.Options(redisconf.Config{
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
	log.Info("cluster mode", "node", cfg.NodeID, "redis", redisconf.Describe(ropts), "encrypted", box != nil)
	return &clusterParts{rdb: rdb, store: st, leases: leases, members: members}, nil
}

// lifecycle returns the Redis parts in start order: the connection, the
// leases, the membership.
func (p *clusterParts) lifecycle(log *slog.Logger) []component {
	return []component{
		{name: "redis", start: func(ctx context.Context) error {
			if err := p.store.Ping(ctx); err != nil {
				log.Warn("Redis unreachable at start; retrying in the background", "err", err)
			}
			return nil
		}, stop: func(context.Context) error { return p.rdb.Close() }},
		{name: "leases", start: p.leases.Start, stop: p.leases.Stop},
		{name: "cluster membership", start: p.members.Start, stop: p.members.Stop},
	}
}

// leaser adapts the lease manager to the syncer (its Obtain returns the
// concrete *lease.Lease).
type leaser struct{ m *lease.Manager }

func (l leaser) Obtain(ctx context.Context, id mail.MailboxID) (syncer.Lease, error) {
	le, err := l.m.Obtain(ctx, id)
	if err != nil {
		return nil, err
	}
	return le, nil
}
