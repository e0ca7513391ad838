// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// throughputOptions configures the throughput scenario.
type throughputOptions struct {
	commonOptions
	Size     int           // message size in bytes (one base64 attachment fills it)
	Duration time.Duration // how long the appenders run
	Workers  int           // parallel appenders (closed loop)
	Settle   time.Duration
	Drain    time.Duration // how long after the last APPEND a message may still arrive
	Trace    string        // if set, write one CSV line per message here
}

// runThroughput saturates the pipeline: Workers appenders APPEND back to back for
// Duration, spread round-robin over the N mailboxes (each through that mailbox's own
// connection), and the scenario reports how many emails per second reached the
// Collector end to end and how much service CPU each one cost.
func runThroughput(ctx context.Context, o throughputOptions) (res *Result, err error) {
	p := o.params()
	p["size"], p["duration"], p["workers"], p["drain"] = o.Size, o.Duration.String(), o.Workers, o.Drain.String()
	res = newResult("throughput", p)
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
	if _, err := s.settle(ctx, o.Settle, 0, 0); err != nil {
		return res, err
	}

	msgs := newMessages(o.Size, true)
	msgBytes := len(msgs.build(0, 0))
	res.Metrics.Add("message_bytes", float64(msgBytes), "B", "size of one message as appended")
	o.Logf("appending for %v with %d workers", o.Duration, o.Workers)
	pid := s.svc.Pid()
	w := startCPUWindow(pid, s.dc.PIDs)
	peak := sampleRSS(pid, 250*time.Millisecond)
	t0 := time.Now()
	recs := appendFor(ctx, pl, msgs, o.Workers, o.Duration)
	sendWall := time.Since(t0)
	okSent := 0
	for _, r := range recs {
		if !r.sent.IsZero() && !r.failed {
			okSent++
		}
	}
	inWindow := s.arrivals.stats().Distinct
	o.Logf("appended %d in %v (%d already arrived); draining up to %v", okSent, sendWall.Round(time.Millisecond), inWindow, o.Drain)
	dctx, cancel := context.WithTimeout(ctx, o.Drain)
	s.arrivals.waitDistinct(dctx, okSent)
	cancel()
	cpu := w.stop()
	peakRSS := peak.Stop()
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
	e2e := st.Last.Sub(t0)
	m := &res.Metrics
	m.Add("appended", float64(okSent), "", "APPENDs that succeeded")
	m.Add("append_errors", float64(len(recs)-okSent), "", "")
	m.Add("append_rate_per_s", float64(okSent)/sendWall.Seconds(), "/s", "what the appenders (and Dovecot) managed")
	m.Add("delivered", float64(len(lat)), "", "distinct messages at the Collector")
	m.Add("lost", float64(lost), "", "appended but not arrived within drain")
	m.Add("duplicates", float64(st.Duplicates), "", "")
	m.Add("delivered_in_window_per_s", float64(inWindow)/sendWall.Seconds(), "/s", "arrivals while appending / append time")
	m.Add("end_to_end_s", e2e.Seconds(), "s", "first APPEND until last arrival")
	m.Add("delivered_per_s", float64(len(lat))/e2e.Seconds(), "/s", "delivered / end_to_end_s")
	m.Add("delivered_mib_per_s", float64(len(lat))*float64(msgBytes)/(1<<20)/e2e.Seconds(), "MiB/s", "message bytes")
	m.Add("service_cpu_seconds", cpu.ServiceSec, "s", "append + drain window")
	m.Add("service_cpu_ms_per_email", 1000*cpu.ServiceSec/float64(max(len(lat), 1)), "ms", "")
	m.Add("service_cpu_pct_of_core", cpu.ServicePct(), "%", "average over the window")
	m.Add("bench_cpu_seconds", cpu.SelfSec, "s", "this process (appenders, Collector JSON decoding)")
	m.Add("dovecot_cpu_seconds", cpu.DovecotSec, "s", "whole Dovecot instance, same window")
	m.Add("machine_busy_pct", 100*cpu.MachineBusy, "%", "all CPUs, incl. Dovecot")
	m.Add("other_cpu_seconds", cpu.OtherSec, "s", "CPU of everything else (other engineers' runs, kernel threads, softirq); ~0 on a quiet machine")
	m.Add("steal_cpu_seconds", cpu.StealSec, "s", "hypervisor steal (counted in machine_busy_pct)")
	m.Add("service_rss_peak_mib", mib(peakRSS), "MiB", "sampled every 250 ms")
	addLatencies(m, "latency", lat, "APPEND start to Collector arrival, under load")
	addServiceLatency(ctx, s, res)
	res.Notes["collector_requests"] = st.Ops
	res.Notes["slowest"] = slow
	if lost > 0 {
		res.fail("%d of %d messages did not arrive within %v", lost, okSent, o.Drain)
	}
	if st.Duplicates > 0 {
		res.fail("%d duplicate deliveries", st.Duplicates)
	}
	return res, nil
}

// appendFor runs workers closed-loop appenders until d has passed: each takes the next
// sequence number and appends it to mailbox seq mod len(pool). It returns one record per
// APPEND attempt, indexed by sequence number.
func appendFor(ctx context.Context, pl *pool, msgs *messages, workers int, d time.Duration) []sendRecord {
	deadline := time.Now().Add(d)
	var next atomic.Int64
	var mu sync.Mutex
	var recs []sendRecord
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(deadline) {
				seq := int(next.Add(1) - 1)
				c := pl.conns[seq%len(pl.conns)]
				raw := msgs.build(seq, c.mailbox)
				sent, dur, err := c.append(raw)
				r := sendRecord{sent: sent, dur: dur, failed: err != nil, mailbox: c.mailbox}
				mu.Lock()
				for len(recs) <= seq {
					recs = append(recs, sendRecord{})
				}
				recs[seq] = r
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return recs
}
