// SPDX-License-Identifier: Apache-2.0

package syncer

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/emaillistener/emaillistener/internal/ingest"
	"github.com/emaillistener/emaillistener/internal/mail"
)

type metrics struct {
	subscriptions  *prometheus.GaugeVec
	delivered      prometheus.Counter
	latency        prometheus.Histogram
	skipped        *prometheus.CounterVec
	reconnects     *prometheus.CounterVec
	cursorResets   prometheus.Counter
	tokenRefreshes prometheus.Counter
	unsavedCursors prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		subscriptions: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "emaillistener_subscriptions",
			Help: "Subscriptions held by this node, by state (exists = live).",
		}, []string{"state"}),
		delivered: f.NewCounter(prometheus.CounterOpts{
			Name: "emaillistener_emails_delivered_total",
			Help: "Emails acknowledged by the client application.",
		}),
		latency: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "emaillistener_delivery_latency_seconds",
			Help:    "From the server's new-mail notification (or discovery) to the client's acknowledgement.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		skipped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "emaillistener_emails_skipped_total",
			Help: "Emails not delivered for good, by reason (rejected by the client, unparseable, expunged).",
		}, []string{"reason"}),
		reconnects: f.NewCounterVec(prometheus.CounterOpts{
			Name: "emaillistener_reconnects_total",
			Help: "Mail server sessions that ended in an error and will be retried, by error class.",
		}, []string{"class"}),
		cursorResets: f.NewCounter(prometheus.CounterOpts{
			Name: "emaillistener_cursor_resets_total",
			Help: "Folders whose sync position became invalid (IMAP UIDVALIDITY changed), triggering a conservative re-delivery.",
		}),
	}
	m.tokenRefreshes = f.NewCounter(prometheus.CounterOpts{
		Name: "emaillistener_token_refresh_requests_total",
		Help: "RefreshToken calls to the client for OAuth mailboxes (token rejected or about to expire).",
	})
	m.unsavedCursors = f.NewGauge(prometheus.GaugeOpts{
		Name: "emaillistener_cursors_unsaved",
		Help: "Folder sync positions kept in memory because the store (Redis) did not take them; written when it answers.",
	})
	for _, s := range mail.States {
		m.subscriptions.WithLabelValues(s)
	}
	for _, r := range ingest.SkipReasons {
		m.skipped.WithLabelValues(r)
	}
	for _, c := range mail.Classes {
		m.reconnects.WithLabelValues(string(c))
	}
	return m
}
