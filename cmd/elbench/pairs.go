// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// pairsOptions configures the pairs scenario.
type pairsOptions struct {
	commonOptions
	Settle time.Duration   // wait after all exist: the re-checks after connecting end, connections hibernate
	Idle   time.Duration   // idle window in which the service's writes are counted
	Gaps   []time.Duration // gap between a pair's two mails, cycled over the mailboxes
	Spread time.Duration   // the pairs' starts are spread over this window
	Drain  time.Duration   // how long to wait for the second mails
}

// defaultGaps are the gaps of the pairs: 2.0 s is the moment Dovecot moves a
// connection to imap-hibernate (imap_hibernate_timeout = 2s) and drops the
// push of mail that arrives then.
var defaultGaps = []time.Duration{500 * time.Millisecond, time.Second, 1500 * time.Millisecond, 2 * time.Second,
	2 * time.Second, 2500 * time.Millisecond, 3 * time.Second, 4 * time.Second, 5 * time.Second}

// runPairs measures lost pushes: every mailbox gets one mail, and once that
// arrived at the Collector, a second one after a gap (0.5–5 s, 2.0 s twice
// as often). The second mails' latency shows how long a dropped push delays
// mail. Before that, the service's write system calls in an idle window,
// per idle mailbox and hour, show what the re-checks cost a quiet mailbox
// (every IMAP command is at least one write).
func runPairs(ctx context.Context, o pairsOptions) (res *Result, err error) {
	p := o.params()
	gaps := make([]string, len(o.Gaps))
	for i, g := range o.Gaps {
		gaps[i] = g.String()
	}
	p["settle"], p["idle"], p["gaps"], p["spread"] = o.Settle.String(), o.Idle.String(), strings.Join(gaps, ","), o.Spread.String()
	res = newResult("pairs", p)
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
	m := &res.Metrics
	m.Add("hibernated_before_idle", float64(hib), "", "service connections in imap-hibernate after settling")

	pid := s.svc.Pid()
	w0, err := writeSyscalls(pid)
	if err != nil {
		return res, err
	}
	o.Logf("counting the service's writes for %v of idle", o.Idle)
	t0 := time.Now()
	if err := sleepCtx(ctx, o.Idle); err != nil {
		return res, err
	}
	w1, err := writeSyscalls(pid)
	if err != nil {
		return res, err
	}
	perHour := float64(w1-w0) / float64(o.N) / time.Since(t0).Hours()
	m.Add("idle_writes_per_mailbox_hour", perHour, "1/h", "service write syscalls (every IMAP command is one or more) per idle mailbox per hour, HTTP probes included")

	msgs := newMessages(2048, false)
	n := len(pl.conns)
	recs := make([]sendRecord, 2*n)
	o.Logf("sending %d pairs, gaps %v, starts spread over %v", n, gaps, o.Spread)
	var wg sync.WaitGroup
	for i, c := range pl.conns {
		gap := o.Gaps[i%len(o.Gaps)]
		start := time.Duration(int64(o.Spread) * int64(i) / int64(max(n, 1)))
		wg.Go(func() {
			if sleepCtx(ctx, start) != nil {
				return
			}
			a, b := 2*i, 2*i+1
			sent, dur, err := c.append(msgs.build(a, c.mailbox))
			recs[a] = sendRecord{sent: sent, dur: dur, failed: err != nil, mailbox: c.mailbox}
			if err != nil {
				return
			}
			for deadline := time.Now().Add(o.Drain); ; {
				if _, ok := s.arrivals.first(a); ok {
					break
				}
				if time.Now().After(deadline) || sleepCtx(ctx, 5*time.Millisecond) != nil {
					return
				}
			}
			if sleepCtx(ctx, gap) != nil {
				return
			}
			sent, dur, err = c.append(msgs.build(b, c.mailbox))
			recs[b] = sendRecord{sent: sent, dur: dur, failed: err != nil, mailbox: c.mailbox}
		})
	}
	wg.Wait()
	sent := 0
	for _, r := range recs {
		if !r.sent.IsZero() && !r.failed {
			sent++
		}
	}
	dctx, cancel := context.WithTimeout(ctx, o.Drain)
	s.arrivals.waitDistinct(dctx, sent)
	cancel()
	var second []time.Duration
	byGap := map[time.Duration]time.Duration{}
	lost := 0
	for i := range n {
		r := recs[2*i+1]
		if r.sent.IsZero() || r.failed {
			continue
		}
		at, ok := s.arrivals.first(2*i + 1)
		if !ok {
			lost++
			continue
		}
		d := at.Sub(r.sent)
		second = append(second, d)
		g := o.Gaps[i%len(o.Gaps)]
		byGap[g] = max(byGap[g], d)
	}
	st := s.arrivals.stats()
	m.Add("pairs", float64(n), "", "mailboxes, one pair each")
	m.Add("sent", float64(sent), "", "APPENDs that succeeded")
	m.Add("second_lost", float64(lost), "", "second mails not arrived within drain")
	m.Add("duplicates", float64(st.Duplicates), "", "arrivals beyond the first per Message-ID")
	addLatencies(m, "second", second, "second mail: APPEND to Collector arrival")
	for _, g := range o.Gaps {
		if d, ok := byGap[g]; ok {
			res.Notes["second_max_gap_"+g.String()] = fmt.Sprintf("%.0f ms", ms(d))
		}
	}
	if lost > 0 {
		res.fail("%d second mails did not arrive within %v", lost, o.Drain)
	}
	if st.Duplicates > 0 {
		res.fail("%d duplicate deliveries", st.Duplicates)
	}
	return res, nil
}

// writeSyscalls reads the write system calls a process made (syscw in
// /proc/<pid>/io).
func writeSyscalls(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "syscw: "); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("no syscw in /proc/%d/io", pid)
}
