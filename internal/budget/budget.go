// SPDX-License-Identifier: Apache-2.0

// Package budget bounds the memory of messages in flight: every message being
// fetched, parsed and delivered holds a share of one node-wide budget, counted
// in raw message bytes, and waits while the budget is spent. A message takes
// several times its raw size while in flight (raw bytes, decoded parts, the
// base64 JSON body), so without a bound a burst of large messages in many
// mailboxes at once could exhaust the node's memory.
package budget

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/sync/semaphore"
)

// Budget is a weighted semaphore over bytes. Its methods are safe for
// concurrent use.
type Budget struct {
	size  int64
	sem   *semaphore.Weighted
	inUse prometheus.Gauge
}

// New returns a budget of size bytes (at least 1), registering its gauge with
// reg (may be nil).
func New(size int64, reg prometheus.Registerer) *Budget {
	size = max(size, 1)
	return &Budget{
		size: size,
		sem:  semaphore.NewWeighted(size),
		inUse: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "emaillistener_inflight_message_bytes",
			Help: "Raw bytes of the messages being fetched, parsed and delivered (bounded by EL_MAX_INFLIGHT_BYTES).",
		}),
	}
}

// Acquire waits until n bytes of the budget are free and takes them; a
// message larger than the whole budget takes all of it (it runs alone). It
// returns the release function, or ctx's error.
func (b *Budget) Acquire(ctx context.Context, n int64) (release func(), err error) {
	n = min(max(n, 1), b.size)
	if err := b.sem.Acquire(ctx, n); err != nil {
		return nil, err
	}
	b.inUse.Add(float64(n))
	return func() {
		b.inUse.Sub(float64(n))
		b.sem.Release(n)
	}, nil
}

// Size returns the budget in bytes.
func (b *Budget) Size() int64 { return b.size }
