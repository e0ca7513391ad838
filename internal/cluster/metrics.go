// SPDX-License-Identifier: Apache-2.0

package cluster

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	members        prometheus.Gauge
	changes        prometheus.Counter
	beatFailures   prometheus.Counter
	eventsReceived prometheus.Counter
	eventsDropped  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		members: f.NewGauge(prometheus.GaugeOpts{
			Name: "emaillistener_cluster_members",
			Help: "Live cluster members in this node's view.",
		}),
		changes: f.NewCounter(prometheus.CounterOpts{
			Name: "emaillistener_cluster_member_changes_total",
			Help: "Changes of the member set (join, leave, expiry, leaving, capacity) seen by this node.",
		}),
		beatFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "emaillistener_cluster_heartbeat_failures_total",
			Help: "Heartbeats that could not be written to Redis.",
		}),
		eventsReceived: f.NewCounter(prometheus.CounterOpts{
			Name: "emaillistener_cluster_events_received_total",
			Help: "Messages received on the cluster events channel.",
		}),
		eventsDropped: f.NewCounter(prometheus.CounterOpts{
			Name: "emaillistener_cluster_events_dropped_total",
			Help: "Event deliveries dropped because a subscriber's buffer was full (it is told to resync).",
		}),
	}
}
