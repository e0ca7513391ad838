// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"time"
)

// fakeDelivery is the delivery phase of a scenario against an in-process fake
// mail server (exchange, graph): what it measured beyond the metrics it adds.
type fakeDelivery struct {
	busy cpuUse          // the service's CPU over send + drain
	lat  []time.Duration // latency of each message that arrived
	wall time.Duration   // send + drain
}

// deliverToFake stores rate × duration messages (of size bytes, with an
// attachment filling it if attachment) at the fake with deliver, on an
// open-loop schedule over n mailboxes, waits up to drain for them at the
// Collector (arr), and adds to res the metrics every such scenario reports:
// sent, schedule lag, arrivals, losses, duplicates and the latency
// distribution; losses and duplicates fail the result.
func deliverToFake(ctx context.Context, deliver func(user string, raw []byte) error, arr *arrivals, pid int,
	n int, rate float64, duration, drain time.Duration, size int, attachment bool, res *Result) (fakeDelivery, error) {
	total := max(1, int(rate*duration.Seconds()))
	msgs := newMessages(size, attachment)
	recs := make([]sendRecord, total)
	w := startCPUWindow(pid, func() []int { return nil })
	t1 := time.Now()
	lag, err := deliverAtRate(ctx, deliver, msgs, recs, rate, n)
	if err != nil {
		return fakeDelivery{}, err
	}
	sent := 0
	for _, r := range recs {
		if !r.sent.IsZero() && !r.failed {
			sent++
		}
	}
	dctx, cancel := context.WithTimeout(ctx, drain)
	arr.waitDistinct(dctx, sent)
	cancel()
	d := fakeDelivery{busy: w.stop(), wall: time.Since(t1)}
	var lost int
	var slow []slowMessage
	d.lat, lost, slow = latencies(arr, recs)
	as := arr.stats()
	m := &res.Metrics
	m.Add("sent", float64(sent), "", "messages stored at the fake")
	m.Add("schedule_lag_max_ms", ms(lag), "ms", "worst delay of the open-loop schedule")
	m.Add("arrived", float64(len(d.lat)), "", "distinct messages seen at the Collector")
	m.Add("lost", float64(lost), "", "stored but not arrived within drain")
	m.Add("duplicates", float64(as.Duplicates), "", "arrivals beyond the first per Message-ID")
	addLatencies(m, "latency", d.lat, "message stored at the fake (events fired) to Collector arrival")
	m.Add("service_cpu_seconds", d.busy.ServiceSec, "s", "send + drain window")
	m.Add("window_s", d.wall.Seconds(), "s", "send + drain")
	res.Notes["slowest"] = slow
	res.Notes["collector_requests"] = as.Ops
	if lost > 0 {
		res.fail("%d of %d messages did not arrive within %v", lost, sent, drain)
	}
	if as.Duplicates > 0 {
		res.fail("%d duplicate deliveries", as.Duplicates)
	}
	return d, nil
}
