// SPDX-License-Identifier: Apache-2.0

package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// latencyOptions configures the latency scenario.
type latencyOptions struct {
	commonOptions
	Rate     float64       // APPENDs per second, all mailboxes together
	Duration time.Duration // how long to send
	Settle   time.Duration // wait after all exist, so that Dovecot hibernates them (>= 3 s)
	Size     int           // message size in bytes
	Drain    time.Duration // how long after the last APPEND a message may still arrive
	Trace    string        // if set, write one CSV line per message here
}

// minSettle: Dovecot hibernates an IDLE connection after imap_hibernate_timeout (2 s).
const minSettle = 3 * time.Second

// runLatency measures APPEND-to-Creatio latency at a fixed open-loop rate over N
// mailboxes. Every mailbox has its own pre-logged-in appender connection; message i
// goes to mailbox i mod N, so each mailbox sees one message every N/rate seconds.
func runLatency(ctx context.Context, o latencyOptions) (res *Result, err error) {
	o.Settle = max(o.Settle, minSettle)
	p := o.params()
	p["rate"], p["duration"], p["size"], p["settle"], p["drain"] = o.Rate, o.Duration.String(), o.Size, o.Settle.String(), o.Drain.String()
	res = newResult("latency", p)
	defer res.finish()
	s, err := startStack(ctx, o.stackOptions)
	if err != nil {
		return res, err
	}
	defer s.closeInto(res)
	if err := registerAll(ctx, s, o.commonOptions, res); err != nil {
		return res, err
	}
	pl, err := s.openAppenders(ctx, o.commonOptions, res)
	if err != nil {
		return res, err
	}
	defer pl.close()
	hib, err := s.settle(ctx, o.Settle, o.N, 15*time.Second)
	if err != nil {
		return res, err
	}
	res.Metrics.Add("hibernated_before_send", float64(hib), "", "service connections in imap-hibernate when sending starts")

	total := max(1, int(o.Rate*o.Duration.Seconds()))
	o.Logf("sending %d messages at %.1f/s to %d mailboxes", total, o.Rate, o.N)
	msgs := newMessages(o.Size, false)
	recs := make([]sendRecord, total)
	w := startCPUWindow(s.svc.Pid(), s.dc.PIDs)
	t0 := time.Now()
	maxLag, sendErr := sendAtRate(ctx, pl, msgs, recs, 0, o.Rate)
	sendWall := time.Since(t0)
	if sendErr != nil {
		return res, sendErr
	}

	okSent := 0
	for _, r := range recs {
		if !r.sent.IsZero() && !r.failed {
			okSent++
		}
	}
	o.Logf("sent %d in %v; waiting up to %v for arrivals", okSent, sendWall.Round(time.Millisecond), o.Drain)
	dctx, cancel := context.WithTimeout(ctx, o.Drain)
	s.arrivals.waitDistinct(dctx, okSent)
	cancel()
	cpu := w.stop()
	if ctx.Err() != nil {
		return res, ctx.Err()
	}

	if o.Trace != "" {
		if err := writeTrace(o.Trace, s.arrivals, recs); err != nil {
			res.warn("trace: %v", err)
		}
	}
	lat, lost, slow := latencies(s.arrivals, recs)
	st := s.arrivals.stats()
	m := &res.Metrics
	m.Add("sent", float64(okSent), "", "APPENDs that succeeded")
	m.Add("append_errors", float64(total-okSent), "", "")
	m.Add("send_rate_per_s", float64(okSent)/sendWall.Seconds(), "/s", "achieved APPEND rate")
	m.Add("schedule_lag_max_ms", ms(maxLag), "ms", "worst delay of the open-loop schedule (appender saturation)")
	m.Add("arrived", float64(len(lat)), "", "distinct messages seen at the Collector")
	m.Add("lost", float64(lost), "", "sent but not arrived within drain")
	m.Add("duplicates", float64(st.Duplicates), "", "arrivals beyond the first per Message-ID")
	m.Add("foreign_emails", float64(st.Foreign), "", "emails not sent by this run")
	addLatencies(m, "latency", lat, "APPEND start to Collector arrival")
	addLatencies(m, "append", appendDurations(recs), "APPEND command round trip")
	m.Add("service_cpu_seconds", cpu.ServiceSec, "s", "send + drain window")
	m.Add("service_cpu_pct_of_core", cpu.ServicePct(), "%", "")
	m.Add("bench_cpu_seconds", cpu.SelfSec, "s", "this process (appenders, Collector)")
	m.Add("dovecot_cpu_seconds", cpu.DovecotSec, "s", "whole Dovecot instance, same window")
	m.Add("machine_busy_pct", 100*cpu.MachineBusy, "%", "all CPUs")
	m.Add("other_cpu_seconds", cpu.OtherSec, "s", "CPU of everything else (other engineers' runs, kernel threads, softirq); ~0 on a quiet machine")
	m.Add("steal_cpu_seconds", cpu.StealSec, "s", "hypervisor steal (counted in machine_busy_pct)")
	if rss, err := rssBytes(s.svc.Pid()); err == nil {
		m.Add("service_rss_mib", mib(rss), "MiB", "at the end")
	}
	addServiceLatency(ctx, s, res)
	res.Notes["collector_requests"] = st.Ops
	res.Notes["slowest"] = slow
	if lost > 0 {
		res.fail("%d of %d messages did not arrive within %v", lost, okSent, o.Drain)
	}
	if st.Duplicates > 0 {
		res.fail("%d duplicate deliveries", st.Duplicates)
	}
	if okSent < total {
		res.warn("%d APPENDs failed", total-okSent)
	}
	if hib < o.N {
		res.warn("only %d of %d service connections hibernated before sending", hib, o.N)
	}
	return res, nil
}

// sendAtRate sends len(recs) messages on an open-loop schedule: message i (sequence
// number first+i, recorded in recs[i]) is due at start + i/rate and goes to the
// connection of mailbox i mod len(pool). One goroutine per connection sends its
// messages in order; the timestamp is taken just before the APPEND. It returns the
// worst lateness of the schedule.
func sendAtRate(ctx context.Context, pl *pool, msgs *messages, recs []sendRecord, first int, rate float64) (time.Duration, error) {
	queues := make([]chan int, len(pl.conns))
	var wg sync.WaitGroup
	for i, c := range pl.conns {
		queues[i] = make(chan int, 64)
		wg.Go(func() {
			for k := range queues[i] {
				raw := msgs.build(first+k, c.mailbox)
				sent, dur, err := c.append(raw)
				recs[k] = sendRecord{sent: sent, dur: dur, failed: err != nil, mailbox: c.mailbox}
			}
		})
	}
	defer func() {
		for _, q := range queues {
			close(q)
		}
		wg.Wait()
	}()
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now().Add(20 * time.Millisecond)
	timer := time.NewTimer(time.Hour)
	timer.Stop() // re-armed per message (Go >= 1.23: Reset after Stop needs no drain)
	defer timer.Stop()
	var maxLag time.Duration
	for i := range recs {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				return maxLag, ctx.Err()
			case <-timer.C:
			}
		}
		maxLag = max(maxLag, time.Since(due))
		select {
		case queues[i%len(queues)] <- i:
		case <-ctx.Done():
			return maxLag, ctx.Err()
		}
	}
	return maxLag, nil
}

// slowMessage describes one of the slowest deliveries, for the report.
type slowMessage struct {
	Seq       int     `json:"seq"`
	Mailbox   int     `json:"mailbox"`
	LatencyMS float64 `json:"latency_ms"`
	SentAtS   float64 `json:"sent_at_s"` // seconds after the first APPEND
}

// latencies pairs sends with first arrivals: the latencies of arrived messages, the
// number of successful sends that never arrived, and the five slowest.
func latencies(a *arrivals, recs []sendRecord) ([]time.Duration, int, []slowMessage) {
	return latenciesFrom(a, recs, 0)
}

// latenciesFrom is latencies of messages whose sequence numbers start at firstSeq
// (recs[i] is message firstSeq+i).
func latenciesFrom(a *arrivals, recs []sendRecord, firstSeq int) ([]time.Duration, int, []slowMessage) {
	var first time.Time
	for _, r := range recs {
		if !r.sent.IsZero() && (first.IsZero() || r.sent.Before(first)) {
			first = r.sent
		}
	}
	var lat []time.Duration
	var slow []slowMessage
	lost := 0
	for i, r := range recs {
		seq := firstSeq + i
		if r.sent.IsZero() || r.failed {
			continue
		}
		at, ok := a.first(seq)
		if !ok {
			lost++
			continue
		}
		d := at.Sub(r.sent)
		lat = append(lat, d)
		slow = append(slow, slowMessage{Seq: seq, Mailbox: r.mailbox, LatencyMS: ms(d), SentAtS: r.sent.Sub(first).Seconds()})
	}
	slices.SortFunc(slow, func(x, y slowMessage) int { return cmp.Compare(y.LatencyMS, x.LatencyMS) })
	return lat, lost, slow[:min(5, len(slow))]
}

func appendDurations(recs []sendRecord) []time.Duration {
	var ds []time.Duration
	for _, r := range recs {
		if !r.sent.IsZero() && !r.failed {
			ds = append(ds, r.dur)
		}
	}
	return ds
}

// String renders a slowMessage compactly in the human table.
func (s slowMessage) String() string {
	return fmt.Sprintf("#%d mb%d %.1fms@%.1fs", s.Seq, s.Mailbox, s.LatencyMS, s.SentAtS)
}

// addServiceLatency adds the service's own view of delivery latency: its histogram
// emaillistener_delivery_latency_seconds runs from the server's EXISTS push (as the
// service saw it) to Creatio's acknowledgement. Compared with the end-to-end numbers
// it tells Dovecot-side delay (APPEND until the push) from service-side delay.
func addServiceLatency(ctx context.Context, s *stack, res *Result) {
	h, err := s.api.scrapeHistogram(ctx, "emaillistener_delivery_latency_seconds")
	if err != nil {
		res.warn("service metrics: %v", err)
		return
	}
	m := &res.Metrics
	if h.Count > 0 {
		m.Add("service_push_to_ack_mean_ms", 1000*h.Sum/h.Count, "ms", "service histogram: EXISTS push seen -> Creatio ack")
	}
	m.Add("service_push_to_ack_p50_le_ms", 1000*h.quantile(0.5), "ms", "bucket upper bound")
	m.Add("service_push_to_ack_p99_le_ms", 1000*h.quantile(0.99), "ms", "bucket upper bound")
	res.Notes["service_delivery_latency_histogram"] = h
}
