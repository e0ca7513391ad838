// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/emaillistener/emaillistener/internal/testenv"
	"github.com/emaillistener/emaillistener/internal/testenv/ewsfake"
)

const exchangeServerType = "3490bd45-4f4d-4613-aa06-454546f3342a"

// exchangeOptions configures the exchange scenario.
type exchangeOptions struct {
	commonOptions
	Impersonation bool          // an impersonation account holds shared streams
	GroupSize     int           // mailboxes per shared stream (EL_EWS_GROUP_SIZE)
	Heartbeat     time.Duration // the fake's stream keep-alive
	Settle        time.Duration // wait after all exist before the memory sample
	Idle          time.Duration // idle CPU window
	Rate          float64       // items per second over all mailboxes
	Duration      time.Duration // how long to deliver
	Drain         time.Duration // how long to wait for stragglers
	Size          int           // item size
	Attachment    bool          // items carry one base64 attachment
}

// runExchange measures Exchange mailboxes against the fake EWS server, in one
// run: bringing N subscriptions up, memory, goroutines and streaming
// connections per idle mailbox, idle CPU, then items delivered into the
// mailboxes at a fixed open-loop rate: item → Creatio latency and the service's
// CPU per delivered item. The fake runs in this process, so the service's
// numbers are its own.
func runExchange(ctx context.Context, o exchangeOptions) (res *Result, err error) {
	p := o.params()
	p["impersonation"], p["group_size"], p["heartbeat"] = o.Impersonation, o.GroupSize, o.Heartbeat.String()
	p["rate"], p["duration"], p["size"], p["attachment"] = o.Rate, o.Duration.String(), o.Size, o.Attachment
	res = newResult("exchange", p)
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
	fo := ewsfake.Options{TLS: o.TLS, Heartbeat: o.Heartbeat, HangingConnectionLimit: 1000}
	if o.Impersonation {
		fo.ServiceAccount, fo.ServicePassword = "svc-listener@bench.example", benchPassword
	}
	fake, err := ewsfake.Start(fo)
	if err != nil {
		return res, err
	}
	defer fake.Close()
	for i := range o.N {
		if err := fake.AddMailbox(userName(i), "", benchPassword); err != nil {
			return res, err
		}
	}
	col := testenv.NewCollector()
	defer col.Close()
	arr := newArrivals()
	col.OnRequest(arr.record)

	env := []string{"EL_LOG_LEVEL=warn", "EL_EWS_CLOCK_SKEW=0s"}
	if o.TLS {
		ca := filepath.Join(dir, "ews-ca.pem")
		if err := os.WriteFile(ca, fake.CertPEM(), 0o644); err != nil {
			return res, err
		}
		env = append(env, "EL_IMAP_TLS_CA_FILE="+ca)
	}
	if o.Impersonation {
		env = append(env, "EL_EWS_IMPERSONATION_USER="+fo.ServiceAccount, "EL_EWS_IMPERSONATION_PASSWORD="+benchPassword,
			fmt.Sprintf("EL_EWS_GROUP_SIZE=%d", o.GroupSize))
	}
	sv, err := startSolo(ctx, bin, dir, append(env, o.Env...), res)
	if err != nil {
		return res, err
	}
	defer sv.close(res)
	api, pid, rss0, g0 := sv.api, sv.pid, sv.rss0, sv.g0
	none := func() []int { return nil }

	o.Logf("registering %d Exchange mailboxes", o.N)
	t0 := time.Now()
	w := startCPUWindow(pid, none)
	t := exchangeTarget{url: fake.URL(), endpoint: col.Endpoint()}
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
	st := fake.Stats()
	rss1, err := rssBytes(pid)
	if err != nil {
		return res, err
	}
	g1, err := api.goroutines(ctx)
	if err != nil {
		return res, err
	}
	o.Logf("measuring idle CPU for %v", o.Idle)
	w = startCPUWindow(pid, none)
	if err := sleepCtx(ctx, o.Idle); err != nil {
		return res, err
	}
	idle := w.stop()
	rss2, err := rssBytes(pid)
	if err != nil {
		return res, err
	}
	mem, err := api.scrapeGauges(ctx, "go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes")
	if err != nil {
		return res, err
	}
	n := float64(o.N)
	m.Add("heap_inuse_per_mailbox_kib", mem["go_memstats_heap_inuse_bytes"]/1024/n, "KiB", "Go heap in use at idle end / N (includes the base)")
	m.Add("stack_inuse_per_mailbox_kib", mem["go_memstats_stack_inuse_bytes"]/1024/n, "KiB", "goroutine stacks at idle end / N")
	m.Add("streams", float64(st.OpenStreams), "", "GetStreamingEvents connections open at the fake after settling")
	m.Add("subscriptions", float64(st.Subscriptions), "", "streaming subscriptions at the fake")
	m.Add("rss_before_mib", mib(rss0), "MiB", "service VmRSS before registering")
	m.Add("rss_per_mailbox_kib", float64(rss1-rss0)/1024/n, "KiB", "(after settle - before) / N")
	m.Add("rss_per_mailbox_idle_end_kib", float64(rss2-rss0)/1024/n, "KiB", "(idle end - before) / N")
	m.Add("goroutines_per_mailbox", float64(g1-g0)/n, "", "(after - before) / N")
	m.Add("idle_cpu_pct_of_core", idle.ServicePct(), "%", "service CPU / idle window, one core = 100")
	m.Add("idle_bench_cpu_s", idle.SelfSec, "s", "this process (the fake server, heartbeats) in the idle window")
	if o.Duration <= 0 || o.Rate <= 0 {
		return res, nil
	}

	o.Logf("delivering %d items at %.1f/s into %d mailboxes", max(1, int(o.Rate*o.Duration.Seconds())), o.Rate, o.N)
	d, err := deliverToFake(ctx, func(user string, raw []byte) error {
		_, err := fake.Deliver(user, "inbox", raw)
		return err
	}, arr, pid, o.N, o.Rate, o.Duration, o.Drain, o.Size, o.Attachment, res)
	if err != nil {
		return res, err
	}
	busy := d.busy
	if len(d.lat) > 0 {
		m.Add("service_cpu_ms_per_item", 1000*busy.ServiceSec/float64(len(d.lat)), "ms", "service CPU in the window / items arrived (idle share included)")
		m.Add("service_cpu_ms_per_item_net", 1000*(busy.ServiceSec-idle.ServiceSec/idle.Wall.Seconds()*busy.Wall.Seconds())/float64(len(d.lat)),
			"ms", "the same minus the idle rate over the window")
	}
	m.Add("bench_cpu_seconds", busy.SelfSec, "s", "this process (fake server, Collector)")
	m.Add("machine_busy_pct", 100*busy.MachineBusy, "%", "all CPUs")
	if rss, err := rssBytes(pid); err == nil {
		m.Add("service_rss_end_mib", mib(rss), "MiB", "at the end")
	}
	res.Notes["fake_requests"] = fake.Stats().Requests
	return res, nil
}

// exchangeTarget renders Creatio's create body for Exchange mailboxes.
type exchangeTarget struct{ url, endpoint string }

func (t exchangeTarget) createBody(ids []int) string {
	q := func(v string) string { b, _ := json.Marshal(v); return string(b) }
	var b strings.Builder
	b.WriteByte('[')
	for k, i := range ids {
		if k > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{FolderIds:[],PersonalMetrics:false,UseFullEmail:true,BpmUserTimeZone:"Russian Standard Time",`+
			`FeatureValues:{MarkEmailsAsSynchronized:false,UseBinaryData:false},BpmUser:"Supervisor",BpmEndpoint:%s,`+
			`BpmUserWorkspace:"Default",SenderEmailAddress:%s,ServiceUrl:%s,Port:0,UseOAuth:false,IsAutodiscover:false,`+
			`AutodiscoverRedirectUrl:"",Context:"{UserRequested:true,HasError:false}",ServerTypeId:"%s",UseSsl:true,SubscriptionTtl:0,`+
			`FolderClassName:null,SecureOption:2,Id:%s,UserName:%s,Password:%s,AccessToken:""}`,
			q(t.endpoint), q(userName(i)), q(t.url), exchangeServerType, q(mailboxID(i)), q(userName(i)), q(benchPassword))
	}
	b.WriteByte(']')
	return b.String()
}

// deliverAtRate stores len(recs) items at a fake server (deliver puts one
// into a user's inbox) on an open-loop schedule: item i is due at start +
// i/rate and goes to mailbox i mod n. A few workers deliver, so one slow
// delivery does not delay the schedule.
func deliverAtRate(ctx context.Context, deliver func(user string, raw []byte) error, msgs *messages, recs []sendRecord, rate float64, n int) (time.Duration, error) {
	work := make(chan int, 256)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for seq := range work {
				mb := seq % n
				raw := msgs.build(seq, mb)
				sent := time.Now()
				err := deliver(userName(mb), raw)
				recs[seq] = sendRecord{sent: sent, dur: time.Since(sent), failed: err != nil, mailbox: mb}
			}
		})
	}
	defer func() { close(work); wg.Wait() }()
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now().Add(20 * time.Millisecond)
	var lag time.Duration
	for i := range recs {
		due := start.Add(time.Duration(i) * interval)
		if err := sleepCtx(ctx, time.Until(due)); err != nil {
			return lag, err
		}
		lag = max(lag, time.Since(due))
		select {
		case work <- i:
		case <-ctx.Done():
			return lag, ctx.Err()
		}
	}
	return lag, nil
}
