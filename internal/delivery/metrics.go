// SPDX-License-Identifier: Apache-2.0

package delivery

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	requests        *prometheus.CounterVec
	failures        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
}

// ops are the operations we post; labels are pre-initialized for them.
var ops = []string{"ProcessFullEmail", "ProcessMailboxState", "RefreshToken", "WebhookMessage"}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "emaillistener_delivery_requests_total",
			Help: "HTTP requests to the client application, by operation and status class.",
		}, []string{"op", "status"}),
		failures: f.NewCounterVec(prometheus.CounterOpts{
			Name: "emaillistener_delivery_failures_total",
			Help: "Failed delivery attempts, by operation and reason.",
		}, []string{"op", "reason"}),
		requestDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "emaillistener_delivery_request_duration_seconds",
			Help:    "Duration of one HTTP request to the client application.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 120},
		}, []string{"op"}),
	}
	for _, op := range ops {
		for _, r := range Reasons {
			m.failures.WithLabelValues(op, string(r))
		}
		m.requestDuration.WithLabelValues(op)
	}
	return m
}
