// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"time"
)

// densityOptions configures the density scenario.
type densityOptions struct {
	commonOptions
	Baseline time.Duration // wait after start-up before the "before" RSS sample
	Settle   time.Duration // wait after all exist before the "after" sample
	Idle     time.Duration // CPU measurement window with every mailbox idle
}

// runDensity measures what N idle IDLE subscriptions cost: time to bring them all to
// "exists", resident memory and goroutines per mailbox, and CPU while idle.
func runDensity(ctx context.Context, o densityOptions) (res *Result, err error) {
	p := o.params()
	p["settle"], p["idle"] = o.Settle.String(), o.Idle.String()
	res = newResult("density", p)
	defer res.finish()
	s, err := startStack(ctx, o.stackOptions)
	if err != nil {
		return res, err
	}
	defer s.closeInto(res)
	pid := s.svc.Pid()
	if err := sleepCtx(ctx, o.Baseline); err != nil {
		return res, err
	}
	rss0, err := rssBytes(pid)
	if err != nil {
		return res, err
	}
	g0, err := s.api.goroutines(ctx)
	if err != nil {
		return res, err
	}

	if err := registerAll(ctx, s, o.commonOptions, res); err != nil {
		return res, err
	}
	o.Logf("settling %v", o.Settle)
	hib, err := s.settle(ctx, o.Settle, o.N, 10*time.Second)
	if err != nil {
		return res, err
	}
	rss1, err := rssBytes(pid)
	if err != nil {
		return res, err
	}
	g1, err := s.api.goroutines(ctx)
	if err != nil {
		return res, err
	}
	dcRSS := sumRSS(s.dc.PIDs())

	o.Logf("measuring idle CPU for %v", o.Idle)
	w := startCPUWindow(pid, s.dc.PIDs)
	if err := sleepCtx(ctx, o.Idle); err != nil {
		return res, err
	}
	cpu := w.stop()
	// Memory after the idle window: the runtime has had time to shrink
	// goroutine stacks (at each GC) and return freed pages to the OS, so this
	// is closer to a long-running node than the sample right after settling.
	rss2, err := rssBytes(pid)
	if err != nil {
		return res, err
	}
	mem, err := s.api.scrapeGauges(ctx, "go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes", "go_memstats_heap_alloc_bytes")
	if err != nil {
		return res, err
	}

	n := float64(o.N)
	m := &res.Metrics
	m.Add("rss_before_mib", mib(rss0), "MiB", "service VmRSS before registering")
	m.Add("rss_after_mib", mib(rss1), "MiB", "service VmRSS after all exist + settle")
	m.Add("rss_per_mailbox_kib", float64(rss1-rss0)/1024/n, "KiB", "(after - before) / N")
	m.Add("rss_idle_end_mib", mib(rss2), "MiB", "service VmRSS at the end of the idle window")
	m.Add("rss_per_mailbox_idle_end_kib", float64(rss2-rss0)/1024/n, "KiB", "(idle end - before) / N")
	m.Add("heap_inuse_per_mailbox_kib", mem["go_memstats_heap_inuse_bytes"]/1024/n, "KiB", "Go heap in use at idle end / N (includes the base)")
	m.Add("heap_alloc_per_mailbox_kib", mem["go_memstats_heap_alloc_bytes"]/1024/n, "KiB", "Go heap objects (live + not yet collected) at idle end / N")
	m.Add("stack_inuse_per_mailbox_kib", mem["go_memstats_stack_inuse_bytes"]/1024/n, "KiB", "goroutine stacks at idle end / N")
	m.Add("goroutines_before", float64(g0), "", "")
	m.Add("goroutines_after", float64(g1), "", "")
	m.Add("goroutines_per_mailbox", float64(g1-g0)/n, "", "(after - before) / N")
	m.Add("idle_cpu_seconds", cpu.ServiceSec, "s", "service CPU in the idle window")
	m.Add("idle_cpu_pct_of_core", cpu.ServicePct(), "%", "service CPU / window, one core = 100")
	m.Add("dovecot_cpu_seconds", cpu.DovecotSec, "s", "whole Dovecot instance, same window")
	m.Add("idle_window_s", cpu.Wall.Seconds(), "s", "")
	m.Add("machine_busy_pct", 100*cpu.MachineBusy, "%", "all CPUs busy share in the idle window (other load)")
	m.Add("other_cpu_seconds", cpu.OtherSec, "s", "CPU of everything else (other engineers' runs, kernel threads, softirq); ~0 on a quiet machine")
	m.Add("steal_cpu_seconds", cpu.StealSec, "s", "hypervisor steal (counted in machine_busy_pct)")
	m.Add("dovecot_hibernated", float64(hib), "", "connections in imap-hibernate after settle")
	m.Add("dovecot_rss_sum_mib", mib(dcRSS), "MiB", "sum of VmRSS of all Dovecot processes (shared pages counted repeatedly)")
	if hib < o.N {
		res.warn("only %d of %d connections hibernated: Dovecot notifies them ~500 ms late", hib, o.N)
	}
	return res, nil
}
