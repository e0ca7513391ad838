// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/emaillistener/emaillistener/internal/testenv"
	"github.com/emaillistener/emaillistener/internal/testenv/graphfake"
)

// graphOptions configures the graph scenario.
type graphOptions struct {
	commonOptions
	Poll     time.Duration // EL_GRAPH_POLL_INTERVAL
	Webhook  bool          // change notifications to the service (EL_GRAPH_NOTIFICATION_URL)
	Settle   time.Duration // wait after all exist before the memory sample
	Idle     time.Duration // idle window: CPU and Graph requests per mailbox
	Rate     float64       // messages per second over all mailboxes
	Duration time.Duration // how long to deliver
	Drain    time.Duration // how long to wait for stragglers
	Size     int           // message size
}

// runGraph measures Exchange Online mailboxes served over Microsoft Graph
// with the service's application credentials, against the fake Graph server
// in this process: bringing N subscriptions up, memory per mailbox, Graph
// requests per mailbox and minute at idle (the cost of polling, or of
// notifications and their safety polls), idle CPU, then messages delivered
// at a fixed open-loop rate: arrival at Graph → Creatio latency.
func runGraph(ctx context.Context, o graphOptions) (res *Result, err error) {
	p := o.params()
	p["poll"], p["webhook"], p["rate"], p["duration"], p["size"] = o.Poll.String(), o.Webhook, o.Rate, o.Duration.String(), o.Size
	res = newResult("graph", p)
	defer res.finish()
	dir, err := os.MkdirTemp(o.WorkDir, "elbench-")
	if err != nil {
		return res, err
	}
	defer func() {
		if !o.Keep {
			_ = os.RemoveAll(dir)
		}
	}()
	bin := o.Bin
	if bin == "" {
		if bin, err = buildService(ctx, dir); err != nil {
			return res, err
		}
	}
	// Outlook's limits stay on (4 concurrent requests per mailbox); the
	// per-mailbox request budget is Outlook's 10,000 per 10 minutes.
	fake, err := graphfake.Start(graphfake.Options{})
	if err != nil {
		return res, err
	}
	defer fake.Close()
	for i := range o.N {
		if err := fake.AddMailbox(userName(i)); err != nil {
			return res, err
		}
	}
	col := testenv.NewCollector()
	defer col.Close()
	arr := newArrivals()
	col.OnRequest(arr.record)

	env := []string{"EL_LOG_LEVEL=warn", "EL_EWS_CLOCK_SKEW=0s", "EL_GRAPH_URL=" + fake.URL(), "EL_GRAPH_LOGIN_URL=" + fake.LoginURL(),
		"EL_GRAPH_TENANT_ID=" + fake.Tenant(), "EL_GRAPH_CLIENT_ID=" + fake.ClientID(), "EL_GRAPH_CLIENT_SECRET=" + fake.ClientSecret(),
		"EL_GRAPH_POLL_INTERVAL=" + o.Poll.String()}
	if o.Webhook {
		port, err := freePort()
		if err != nil {
			return res, err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		env = append(env, "EL_LISTEN_ADDR="+addr, "EL_GRAPH_NOTIFICATION_URL=http://"+addr+"/graph/notifications")
	}
	sv, err := startSolo(ctx, bin, dir, append(env, o.Env...), res)
	if err != nil {
		return res, err
	}
	defer sv.close(res)
	api, pid, rss0, g0 := sv.api, sv.pid, sv.rss0, sv.g0
	none := func() []int { return nil }

	o.Logf("registering %d Exchange Online mailboxes (Graph, %s)", o.N, map[bool]string{false: "polling", true: "webhook"}[o.Webhook])
	t0 := time.Now()
	w := startCPUWindow(pid, none)
	t := exchangeTarget{url: "outlook.office365.com", endpoint: col.Endpoint()}
	if err := api.registerWith(ctx, t.createBody, o.N, o.Batch, o.Parallel); err != nil {
		return res, err
	}
	out, err := api.waitExists(ctx, o.N, o.ExistsTimeout, api.localExists)
	took := time.Since(t0)
	cpu := w.stop()
	m := &res.Metrics
	m.Add("exists", float64(out.Exists), "", "mailboxes in state exists")
	m.Add("exists_ms", ms(took), "ms", "first create call until all mailboxes exist")
	m.Add("register_service_cpu_s", cpu.ServiceSec, "s", "service CPU until all exist")
	if err != nil {
		return res, err
	}
	o.Logf("%d exist after %v; settling %v", o.N, took.Round(time.Millisecond), o.Settle)
	if err := sleepCtx(ctx, o.Settle); err != nil {
		return res, err
	}
	rss1, err := rssBytes(pid)
	if err != nil {
		return res, err
	}
	g1, err := api.goroutines(ctx)
	if err != nil {
		return res, err
	}
	o.Logf("measuring idle CPU and Graph requests for %v", o.Idle)
	st0 := fake.Stats()
	w = startCPUWindow(pid, none)
	if err := sleepCtx(ctx, o.Idle); err != nil {
		return res, err
	}
	idle := w.stop()
	st1 := fake.Stats()
	rss2, err := rssBytes(pid)
	if err != nil {
		return res, err
	}
	mem, err := api.scrapeGauges(ctx, "go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes")
	if err != nil {
		return res, err
	}
	n := float64(o.N)
	minutes := idle.Wall.Minutes()
	m.Add("graph_requests_per_mailbox_min", float64(st1.Requests-st0.Requests)/n/minutes, "1/min",
		"Graph requests (each batched one counted) per mailbox and minute at idle")
	m.Add("http_requests_per_mailbox_min", float64(st1.HTTPRequests-st0.HTTPRequests)/n/minutes, "1/min",
		"HTTP requests to Graph ($batch = 1) per mailbox and minute at idle")
	m.Add("throttled_idle", float64(st1.Throttled-st0.Throttled), "", "429s in the idle window")
	m.Add("subscriptions", float64(len(fake.Subscriptions())), "", "change notification subscriptions at the fake")
	m.Add("heap_inuse_per_mailbox_kib", mem["go_memstats_heap_inuse_bytes"]/1024/n, "KiB", "Go heap in use at idle end / N (includes the base)")
	m.Add("stack_inuse_per_mailbox_kib", mem["go_memstats_stack_inuse_bytes"]/1024/n, "KiB", "goroutine stacks at idle end / N")
	m.Add("rss_before_mib", mib(rss0), "MiB", "service VmRSS before registering")
	m.Add("rss_per_mailbox_kib", float64(rss1-rss0)/1024/n, "KiB", "(after settle - before) / N")
	m.Add("rss_per_mailbox_idle_end_kib", float64(rss2-rss0)/1024/n, "KiB", "(idle end - before) / N")
	m.Add("goroutines_per_mailbox", float64(g1-g0)/n, "", "(after - before) / N")
	m.Add("idle_cpu_pct_of_core", idle.ServicePct(), "%", "service CPU / idle window, one core = 100")
	if o.Duration <= 0 || o.Rate <= 0 {
		return res, nil
	}

	o.Logf("delivering %d messages at %.1f/s into %d mailboxes", max(1, int(o.Rate*o.Duration.Seconds())), o.Rate, o.N)
	if _, err := deliverToFake(ctx, func(user string, raw []byte) error {
		_, err := fake.Deliver(user, "inbox", raw)
		return err
	}, arr, pid, o.N, o.Rate, o.Duration, o.Drain, o.Size, false, res); err != nil {
		return res, err
	}
	res.Notes["fake_requests"] = fake.Stats().Requests
	return res, nil
}
