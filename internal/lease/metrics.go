// SPDX-License-Identifier: Apache-2.0

package lease

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	held          prometheus.Gauge
	unconfirmed   prometheus.Gauge
	obtained      prometheus.Counter
	renewFailures prometheus.Counter
	restored      prometheus.Counter
	lost          *prometheus.CounterVec
	roundDuration prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		held: f.NewGauge(prometheus.GaugeOpts{
			Name: "emaillistener_leases_held",
			Help: "Mailbox leases this node holds.",
		}),
		unconfirmed: f.NewGauge(prometheus.GaugeOpts{
			Name: "emaillistener_leases_unconfirmed",
			Help: "Held leases whose renewal Redis has not confirmed within their TTL (held through a Redis outage).",
		}),
		obtained: f.NewCounter(prometheus.CounterOpts{
			Name: "emaillistener_lease_obtained_total",
			Help: "Mailbox leases obtained by this node.",
		}),
		renewFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "emaillistener_lease_renew_failures_total",
			Help: "Lease renewals that did not extend the lease (Redis error, timeout or rejection), per lease.",
		}),
		restored: f.NewCounter(prometheus.CounterOpts{
			Name: "emaillistener_lease_restored_total",
			Help: "Leases re-created by renewal after their key vanished (Redis restart or failover).",
		}),
		lost: f.NewCounterVec(prometheus.CounterOpts{
			Name: "emaillistener_leases_lost_total",
			Help: "Leases lost before release, by reason (expired, missing, taken).",
		}, []string{"reason"}),
		roundDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "emaillistener_lease_renew_round_duration_seconds",
			Help:    "Duration of one batched renewal round (one pipeline for all held leases).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
	}
	for _, r := range reasons {
		m.lost.WithLabelValues(string(r))
	}
	return m
}
