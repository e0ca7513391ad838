// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// webhooksOptions configures the webhooks scenario.
type webhooksOptions struct {
	commonOptions
	Engine   string        // "self" (this service's native API) or "emailengine"
	Baseline time.Duration // wait after start-up before the "before" RSS sample
	Settle   time.Duration // wait after all accounts are connected before the "after" sample
	Idle     time.Duration // idle window after that: CPU, and RSS at its end
	Rates    []float64     // one delivery phase per rate (mails per second over all accounts)
	Duration time.Duration // how long each phase sends
	Drain    time.Duration // how long after a phase's last APPEND a webhook may still arrive
	Size     int           // message size
	Folder   string        // the one folder every account watches (the mail goes there)
	Trace    string        // if set, one CSV per phase: <Trace without .csv>-r<rate>.csv

	EEURL        string // EmailEngine's API base, e.g. http://127.0.0.1:3000
	EEToken      string // its access token ("" when it runs without API authentication)
	EEPid        int    // its process: RSS and CPU are read from it (and its descendants)
	EERedisPid   int    // optional: the Redis EmailEngine keeps its state in, reported beside it
	EENotifyText bool   // EmailEngine setting notifyText: put the text in the event, as the service does
}

// webhookEngine is the mail-sync engine under test, reached through its own REST API.
type webhookEngine interface {
	// Name and Version describe the engine for the report.
	Name() string
	Version(ctx context.Context) string
	// Pid is the engine's main process; its descendants count too.
	Pid() int
	// Configure points the engine's webhooks at url (once, before any account).
	Configure(ctx context.Context, url string) error
	// Existing counts the accounts the engine has before the run registers any.
	Existing(ctx context.Context) (int, error)
	// Register adds account i (Dovecot user userName(i) at imap).
	Register(ctx context.Context, i int, imap imapServer) error
	// States counts the run's n accounts by state; ok is the number in the engine's
	// "watching" state (ours "exists", EmailEngine's "connected").
	States(ctx context.Context, n int) (ok int, counts map[string]int, err error)
	Close()
}

// runWebhooks measures a mail-sync engine with a REST API and webhooks, ours or
// EmailEngine, the same way against the same private Dovecot: resident memory
// before any account and after N accounts are connected and idle, then mail
// APPENDed at fixed open-loop rates, each matched (by Message-ID, else Subject)
// to its webhook at a receiver on loopback: latency from the APPEND to the
// webhook's arrival, lost and duplicate webhooks.
func runWebhooks(ctx context.Context, o webhooksOptions) (res *Result, err error) {
	p := o.params()
	rates := make([]string, len(o.Rates))
	for i, r := range o.Rates {
		rates[i] = strconv.FormatFloat(r, 'f', -1, 64)
	}
	p["engine"], p["rates"], p["duration"], p["drain"], p["size"] = o.Engine, strings.Join(rates, ","), o.Duration.String(), o.Drain.String(), o.Size
	p["baseline"], p["settle"], p["idle"], p["folder"] = o.Baseline.String(), o.Settle.String(), o.Idle.String(), o.Folder
	p["tls"] = true // always: see imapServer
	if o.Engine == "emailengine" {
		p["ee_url"], p["ee_pid"], p["ee_notify_text"] = o.EEURL, o.EEPid, o.EENotifyText
	}
	res = newResult("webhooks", p)
	defer res.finish()
	s, err := newStack(o.stackOptions)
	if err != nil {
		return res, err
	}
	defer s.closeInto(res)
	if err := s.startDovecot(); err != nil {
		return res, err
	}
	// Both engines connect with implicit TLS and verify Dovecot's certificate: a
	// plain connection is no option for EmailEngine, which upgrades it with
	// STARTTLS whenever the server offers that.
	imap := imapServer{addr: s.dc.IMAPSAddr, caPEM: s.dc.CertPEM, caFile: filepath.Join(s.dir, "dovecot-ca.pem")}
	if err := os.WriteFile(imap.caFile, imap.caPEM, 0o644); err != nil {
		return res, err
	}
	recv, err := startHookReceiver()
	if err != nil {
		return res, err
	}
	defer recv.close()

	var eng webhookEngine
	switch o.Engine {
	case "self":
		e, err := startSelfEngine(ctx, s, o, recv, imap)
		if err != nil {
			return res, err
		}
		eng = e
	case "emailengine":
		if o.EEPid <= 0 {
			return res, errors.New("-ee-pid is required with -engine emailengine (its RSS is what is measured)")
		}
		eng = newEEEngine(o)
	default:
		return res, fmt.Errorf("-engine %q: want self or emailengine", o.Engine)
	}
	defer eng.Close()
	res.Notes["engine"] = eng.Name()
	res.Notes["engine_version"] = eng.Version(ctx)
	pid := eng.Pid()
	o.Logf("engine %s %s, pid %d; webhooks to %s", eng.Name(), res.Notes["engine_version"], pid, recv.url)

	if err := eng.Configure(ctx, recv.url); err != nil {
		return res, err
	}
	if n, err := eng.Existing(ctx); err != nil {
		return res, err
	} else if n > 0 {
		res.warn("the engine already had %d accounts before this run: the baseline RSS includes them (start it on an empty database)", n)
	}
	o.Logf("sampling the base RSS for %v", o.Baseline)
	base, err := sampleTreeRSS(ctx, pid, o.EERedisPid, o.Baseline)
	if err != nil {
		return res, err
	}

	// Registration: every account through the engine's API, o.Parallel at a time.
	o.Logf("registering %d accounts (%d in parallel)", o.N, o.Parallel)
	m := &res.Metrics
	// EmailEngine's Redis is part of its stack: its CPU is reported beside the
	// engine's (cpuWindow counts it under "other").
	redisCPU := func() float64 {
		if o.EERedisPid <= 0 {
			return 0
		}
		v, _ := cpuSeconds(o.EERedisPid)
		return v
	}
	t0 := time.Now()
	w := startCPUWindow(pid, s.dc.PIDs)
	rc0 := redisCPU()
	if err := registerAccounts(ctx, eng, o.N, o.Parallel, imap); err != nil {
		return res, err
	}
	m.Add("register_ms", ms(time.Since(t0)), "ms", "first create call until all create calls returned")
	ok, counts, err := waitAccounts(ctx, eng, o.N, o.ExistsTimeout)
	took := time.Since(t0)
	cpu := w.stop()
	m.Add("connected", float64(ok), "", "accounts in the engine's watching state (ours exists, EmailEngine connected)")
	m.Add("connected_ms", ms(took), "ms", "first create call until all accounts are connected")
	m.Add("connected_per_s", float64(ok)/took.Seconds(), "/s", "")
	m.Add("register_engine_cpu_s", cpu.ServiceSec, "s", "engine CPU until all are connected")
	if o.EERedisPid > 0 {
		m.Add("register_redis_cpu_s", redisCPU()-rc0, "s", "its Redis's CPU, same window")
	}
	res.Notes["states_after_register"] = counts
	if err != nil {
		if ctx.Err() != nil {
			return res, err
		}
		res.fail("only %d of %d accounts connected: %v", ok, o.N, err)
	} else {
		o.Logf("all %d accounts connected after %v; settling %v", o.N, took.Round(time.Millisecond), o.Settle)
	}

	hib, err := s.settle(ctx, o.Settle, o.N, 15*time.Second)
	if err != nil {
		return res, err
	}
	o.Logf("idle for %v (CPU, RSS samples)", o.Idle)
	w = startCPUWindow(pid, s.dc.PIDs)
	rcIdle := redisCPU()
	after, err := sampleTreeRSS(ctx, pid, o.EERedisPid, o.Idle)
	if err != nil {
		return res, err
	}
	idle := w.stop()
	n := float64(o.N)
	m.Add("rss_before_mib", mib(base.median), "MiB", "engine VmRSS (process tree) before any account, median over the baseline window: the fixed base")
	m.Add("rss_before_min_mib", mib(base.min), "MiB", "")
	m.Add("rss_before_max_mib", mib(base.max), "MiB", "")
	m.Add("rss_after_mib", mib(after.median), "MiB", "engine VmRSS with all accounts connected and idle, median over the idle window")
	m.Add("rss_after_min_mib", mib(after.min), "MiB", "")
	m.Add("rss_after_max_mib", mib(after.max), "MiB", "")
	m.Add("rss_per_account_kib", float64(after.median-base.median)/1024/n, "KiB", "(after - before) / N, medians")
	m.Add("engine_processes", float64(after.procs), "", "processes whose VmRSS is summed (the engine and its descendants)")
	if o.EERedisPid > 0 {
		m.Add("redis_rss_before_mib", mib(base.redis), "MiB", "EmailEngine's Redis before any account (median)")
		m.Add("redis_rss_after_mib", mib(after.redis), "MiB", "EmailEngine's Redis with all accounts (median)")
		m.Add("redis_rss_per_account_kib", float64(after.redis-base.redis)/1024/n, "KiB", "(after - before) / N")
	}
	m.Add("idle_cpu_pct_of_core", idle.ServicePct(), "%", "engine CPU in the idle window, one core = 100")
	if o.EERedisPid > 0 {
		m.Add("idle_redis_cpu_pct_of_core", 100*(redisCPU()-rcIdle)/idle.Wall.Seconds(), "%", "EmailEngine's Redis in the idle window")
	}
	m.Add("idle_other_cpu_seconds", idle.OtherSec, "s", "CPU of everything else in the idle window (with EmailEngine: its Redis too); ~0 on a quiet machine")
	m.Add("dovecot_hibernated", float64(hib), "", "Dovecot connections in imap-hibernate after settle (the engines' IDLE)")
	res.Notes["engine_processes_before"] = base.procs
	if hib < o.N {
		res.warn("only %d of %d connections hibernated: Dovecot notifies the others ~500 ms late", hib, o.N)
	}
	if len(o.Rates) == 0 || o.Duration <= 0 {
		return res, nil
	}

	pl, err := s.openAppenders(ctx, o.commonOptions, res)
	if err != nil {
		return res, err
	}
	defer pl.close()
	msgs := newMessages(o.Size, false)
	first := 0
	for _, rate := range o.Rates {
		if rate <= 0 {
			return res, fmt.Errorf("rate %v: must be positive", rate)
		}
		k := "r" + strings.ReplaceAll(strconv.FormatFloat(rate, 'f', -1, 64), ".", "p") + "_"
		total := max(1, int(rate*o.Duration.Seconds()))
		recs := make([]sendRecord, total)
		o.Logf("phase %s: %d mails at %v/s over %d accounts", strings.TrimSuffix(k, "_"), total, rate, o.N)
		w := startCPUWindow(pid, s.dc.PIDs)
		rc0 := redisCPU()
		st0 := recv.arr.stats()
		t1 := time.Now()
		lag, err := sendAtRate(ctx, pl, msgs, recs, first, rate)
		sendWall := time.Since(t1)
		if err != nil {
			return res, err
		}
		sent := 0
		for _, r := range recs {
			if !r.sent.IsZero() && !r.failed {
				sent++
			}
		}
		dctx, cancel := context.WithTimeout(ctx, o.Drain)
		recv.arr.waitDistinct(dctx, st0.Distinct+sent)
		cancel()
		// A moment more for duplicates of the last ones.
		if err := sleepCtx(ctx, time.Second); err != nil {
			return res, err
		}
		busy := w.stop()
		lat, lost, slow := latenciesFrom(recv.arr, recs, first)
		st1 := recv.arr.stats()
		m.Add(k+"sent", float64(sent), "", "APPENDs that succeeded")
		m.Add(k+"send_rate_per_s", float64(sent)/sendWall.Seconds(), "/s", "achieved APPEND rate")
		m.Add(k+"schedule_lag_max_ms", ms(lag), "ms", "worst delay of the open-loop schedule")
		m.Add(k+"arrived", float64(len(lat)), "", "distinct mails whose webhook arrived")
		m.Add(k+"lost", float64(lost), "", "sent but no webhook within drain")
		m.Add(k+"duplicates", float64(st1.Duplicates-st0.Duplicates), "", "webhooks beyond the first per mail")
		addLatencies(m, k+"latency", lat, "APPEND start to webhook arrival")
		m.Add(k+"engine_cpu_seconds", busy.ServiceSec, "s", "send + drain window")
		m.Add(k+"engine_cpu_pct_of_core", busy.ServicePct(), "%", "")
		if o.EERedisPid > 0 {
			m.Add(k+"redis_cpu_seconds", redisCPU()-rc0, "s", "EmailEngine's Redis, same window (part of other_cpu)")
		}
		m.Add(k+"dovecot_cpu_seconds", busy.DovecotSec, "s", "whole Dovecot instance, same window")
		m.Add(k+"machine_busy_pct", 100*busy.MachineBusy, "%", "all CPUs, send + drain")
		m.Add(k+"other_cpu_seconds", busy.OtherSec, "s", "CPU of everything else (other runs, kernel); ~0 on a quiet machine")
		if rss, _, err := treeRSS(pid); err == nil {
			m.Add(k+"rss_end_mib", mib(rss), "MiB", "engine VmRSS at the end of the phase")
		}
		res.Notes[k+"slowest"] = slow
		if o.Trace != "" {
			path := strings.TrimSuffix(o.Trace, ".csv") + "-" + strings.TrimSuffix(k, "_") + ".csv"
			if err := writeTraceFrom(path, recv.arr, recs, first); err != nil {
				res.warn("trace: %v", err)
			}
		}
		if lost > 0 {
			res.fail("%v/s: %d of %d mails had no webhook within %v", rate, lost, sent, o.Drain)
		}
		if d := st1.Duplicates - st0.Duplicates; d > 0 {
			res.fail("%v/s: %d duplicate webhooks", rate, d)
		}
		if sent < total {
			res.warn("%v/s: %d APPENDs failed", rate, total-sent)
		}
		first += total
	}
	rs := recv.stats()
	m.Add("foreign_webhooks", float64(recv.arr.stats().Foreign), "", "message webhooks for mail this run did not send")
	m.Add("other_events", float64(rs.Other), "", "webhooks of other event types")
	if o.Engine == "self" {
		m.Add("bad_signatures", float64(rs.BadSignature), "", "webhooks whose webhook-signature did not verify")
		if rs.BadSignature > 0 {
			res.fail("%d webhooks with a bad signature", rs.BadSignature)
		}
	}
	res.Notes["receiver_requests"] = rs.Requests
	return res, nil
}

// registerAccounts registers accounts 0..n-1, parallel at a time; it stops at the
// first failure.
func registerAccounts(ctx context.Context, eng webhookEngine, n, parallel int, imap imapServer) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range max(parallel, 1) {
		wg.Go(func() {
			for i := range jobs {
				if err := eng.Register(ctx, i, imap); err != nil {
					cancel(fmt.Errorf("register account %d: %w", i, err))
				}
			}
		})
	}
send:
	for i := range n {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break send
		}
	}
	close(jobs)
	wg.Wait()
	return context.Cause(ctx)
}

// waitAccounts polls the engine until all n accounts are in its watching state or
// timeout passes.
func waitAccounts(ctx context.Context, eng webhookEngine, n int, timeout time.Duration) (int, map[string]int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var (
		ok     int
		counts map[string]int
		err    error
	)
	for {
		ok, counts, err = eng.States(ctx, n)
		if err == nil && ok >= n {
			return ok, counts, nil
		}
		if serr := sleepCtx(ctx, 500*time.Millisecond); serr != nil {
			if err == nil {
				err = fmt.Errorf("%d of %d accounts connected after %v (states %v)", ok, n, timeout, counts)
			}
			return ok, counts, err
		}
	}
}

// imapServer is the Dovecot both engines read: its implicit-TLS port and its
// self-signed certificate, which each engine is told to trust.
type imapServer struct {
	addr   string // host:port of the implicit-TLS IMAP listener
	caPEM  []byte
	caFile string
}

// accountID is the id of benchmark account i in either engine.
func accountID(i int) string { return fmt.Sprintf("bench-%d", i) }

// ---- the receiver ----

// hookReceiver is the webhook endpoint of both engines: it takes the arrival
// time before reading the body, finds the benchmark sequence number in the
// event (ours: message.messageId; EmailEngine: data.messageId; else the
// Subject) and records it in arr. With a key it also checks our Standard
// Webhooks signature.
type hookReceiver struct {
	srv *http.Server
	url string
	arr *arrivals
	key []byte // HMAC key of webhook-signature; nil: not checked

	mu           sync.Mutex
	requests     map[string]int // by event type
	other        int            // events that are not new mail
	badSignature int
}

type receiverStats struct {
	Requests     map[string]int
	Other        int
	BadSignature int
}

func startHookReceiver() (*hookReceiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &hookReceiver{arr: newArrivals(), requests: map[string]int{}, url: "http://" + ln.Addr().String() + "/hook"}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *hookReceiver) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = r.srv.Shutdown(ctx)
}

func (r *hookReceiver) stats() receiverStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := receiverStats{Requests: map[string]int{}, Other: r.other, BadSignature: r.badSignature}
	for k, v := range r.requests {
		st.Requests[k] = v
	}
	return st
}

// hookEvent holds the fields of both engines' new-mail events that matter here.
type hookEvent struct {
	Type    string     `json:"type"`  // ours: message.new
	Event   string     `json:"event"` // EmailEngine: messageNew
	Message *hookEmail `json:"message"`
	Data    *hookEmail `json:"data"`
}

type hookEmail struct {
	MessageID string `json:"messageId"`
	Subject   string `json:"subject"`
}

func (r *hookReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	at := time.Now()
	body, err := io.ReadAll(io.LimitReader(req.Body, 64<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var ev hookEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		r.count("(not json)", false, false)
		http.Error(w, "not JSON", http.StatusBadRequest)
		return
	}
	kind := ev.Type + ev.Event
	badSig := r.key != nil && !validSignature(r.key, req.Header, body)
	email := ev.Message
	if ev.Event == "messageNew" {
		email = ev.Data
	}
	isMail := (ev.Type == "message.new" || ev.Event == "messageNew") && email != nil
	r.count(kind, !isMail, badSig)
	if isMail {
		seq, ok := seqOf(normalizeMessageID(email.MessageID))
		if !ok {
			seq, ok = seqOfSubject(email.Subject)
		}
		r.arr.add(at, seq, ok)
	}
	w.WriteHeader(http.StatusOK)
}

func (r *hookReceiver) count(kind string, other, badSig bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests[kind]++
	if other {
		r.other++
	}
	if badSig {
		r.badSignature++
	}
}

// validSignature checks a Standard Webhooks signature: "v1," + base64 of
// HMAC-SHA256(key, id "." timestamp "." body), possibly one of several.
func validSignature(key []byte, h http.Header, body []byte) bool {
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.", h.Get("webhook-id"), h.Get("webhook-timestamp"))
	mac.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return true
		}
	}
	return false
}

// normalizeMessageID puts the angle brackets back if an engine dropped them.
func normalizeMessageID(id string) string {
	id = strings.TrimSpace(id)
	if id != "" && !strings.HasPrefix(id, "<") {
		return "<" + id + ">"
	}
	return id
}

// seqOfSubject parses the Subject messages.build writes, "elbench message <seq>".
func seqOfSubject(subject string) (int, bool) {
	s, ok := strings.CutPrefix(strings.TrimSpace(subject), "elbench message ")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// add records a webhook for benchmark message seq (ok false: a foreign mail).
func (a *arrivals) add(at time.Time, seq int, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ops["webhook"]++
	if !ok {
		a.foreign++
	} else {
		if len(a.times[seq]) == 0 {
			a.distinct++
		}
		a.times[seq] = append(a.times[seq], at)
	}
	close(a.changed)
	a.changed = make(chan struct{})
}

// ---- process tree ----

// treeRSS sums VmRSS of pid and all its descendants and says how many processes
// that was (worker threads are one process; child processes would add up).
func treeRSS(pid int) (int64, int, error) {
	root, err := rssBytes(pid)
	if err != nil {
		return 0, 0, fmt.Errorf("engine process %d: %w", pid, err)
	}
	pids := descendants(pid)
	return root + sumRSS(pids[1:]), len(pids), nil
}

// rssSamples summarizes VmRSS samples of a window.
type rssSamples struct {
	median, min, max int64
	procs            int   // processes in the tree at the last sample
	redis            int64 // median VmRSS of the Redis pid, if any
}

// sampleTreeRSS samples treeRSS(pid) (and VmRSS of redisPid, if > 0) every
// 250 ms for d, at least once: a garbage-collected runtime's RSS moves, a
// median over a window is steadier than one sample.
func sampleTreeRSS(ctx context.Context, pid, redisPid int, d time.Duration) (rssSamples, error) {
	var vals, rvals []int64
	var out rssSamples
	end := time.Now().Add(d)
	for {
		v, procs, err := treeRSS(pid)
		if err != nil {
			return out, err
		}
		vals, out.procs = append(vals, v), procs
		if redisPid > 0 {
			if r, err := rssBytes(redisPid); err == nil {
				rvals = append(rvals, r)
			}
		}
		if !time.Now().Add(250 * time.Millisecond).Before(end) {
			break
		}
		if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
			return out, err
		}
	}
	slices.Sort(vals)
	slices.Sort(rvals)
	out.median, out.min, out.max = vals[len(vals)/2], vals[0], vals[len(vals)-1]
	if len(rvals) > 0 {
		out.redis = rvals[len(rvals)/2]
	}
	return out, nil
}

// descendants returns pid followed by every live process below it.
func descendants(pid int) []int {
	children := map[int][]int{}
	if ents, err := os.ReadDir("/proc"); err == nil {
		for _, e := range ents {
			p, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if st, err := statFields(p); err == nil {
				children[st.ppid] = append(children[st.ppid], p)
			}
		}
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// ---- our service ----

// selfEngine is this service started by the scenario with a native API token,
// its accounts registered through POST /v1/accounts.
type selfEngine struct {
	svc    *service
	hc     *http.Client
	token  string
	secret string
	hook   string
	folder string
	bin    string
}

func startSelfEngine(ctx context.Context, s *stack, o webhooksOptions, recv *hookReceiver, imap imapServer) (*selfEngine, error) {
	bin := o.Bin
	if bin == "" {
		var err error
		if bin, err = buildService(ctx, s.dir); err != nil {
			return nil, err
		}
	}
	var tok, key [24]byte
	_, _ = rand.Read(tok[:])
	_, _ = rand.Read(key[:])
	e := &selfEngine{token: hex.EncodeToString(tok[:]), secret: "whsec_" + base64.StdEncoding.EncodeToString(key[:]),
		folder: o.Folder, bin: bin, hc: newAPI("", o.Parallel).hc}
	recv.key = key[:]
	env := append([]string{"EL_LOG_LEVEL=warn", "EL_API_TOKENS=elbench:" + e.token, "EL_IMAP_TLS_CA_FILE=" + imap.caFile}, o.Env...)
	svc, err := startService(ctx, bin, s.dir, env)
	if err != nil {
		return nil, err
	}
	e.svc = svc
	// The stack stops it on close and summarizes its log.
	s.svc, s.api = svc, newAPI(svc.base, 1)
	return e, nil
}

func (e *selfEngine) Name() string { return "emaillistener" }

func (e *selfEngine) Version(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, e.bin, "version").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func (e *selfEngine) Pid() int { return e.svc.Pid() }

func (e *selfEngine) Configure(_ context.Context, url string) error {
	e.hook = url // each account carries its own webhook
	return nil
}

func (e *selfEngine) Existing(ctx context.Context) (int, error) {
	var out struct {
		Accounts []json.RawMessage `json:"accounts"`
	}
	if err := apiJSON(ctx, e.hc, http.MethodGet, e.svc.base+"/v1/accounts", e.token, nil, &out); err != nil {
		return 0, err
	}
	return len(out.Accounts), nil
}

func (e *selfEngine) Register(ctx context.Context, i int, imap imapServer) error {
	host, port, _ := strings.Cut(imap.addr, ":")
	portN, _ := strconv.Atoi(port)
	body := map[string]any{
		"id": accountID(i), "email": userName(i),
		"imap":    map[string]any{"host": host, "port": portN, "secure": "tls", "user": userName(i), "password": benchPassword},
		"folders": []string{e.folder},
		"webhook": map[string]any{"url": e.hook, "secret": e.secret},
	}
	return apiJSON(ctx, e.hc, http.MethodPost, e.svc.base+"/v1/accounts", e.token, body, nil)
}

func (e *selfEngine) States(ctx context.Context, n int) (int, map[string]int, error) {
	var out struct {
		Accounts []struct {
			ID    string `json:"id"`
			State string `json:"state"`
		} `json:"accounts"`
	}
	if err := apiJSON(ctx, e.hc, http.MethodGet, e.svc.base+"/v1/accounts", e.token, nil, &out); err != nil {
		return 0, nil, err
	}
	ok, counts := tally(n, func(yield func(id, state string)) {
		for _, a := range out.Accounts {
			yield(a.ID, a.State)
		}
	}, "exists")
	return ok, counts, nil
}

func (e *selfEngine) Close() { e.hc.CloseIdleConnections() }

// tally counts the states of the run's accounts (ids accountID(0..n-1)) and how
// many are in state good.
func tally(n int, each func(func(id, state string)), good string) (int, map[string]int) {
	want := make(map[string]bool, n)
	for i := range n {
		want[accountID(i)] = true
	}
	counts := map[string]int{}
	ok, seen := 0, 0
	each(func(id, state string) {
		if !want[id] {
			return
		}
		seen++
		counts[state]++
		if state == good {
			ok++
		}
	})
	if seen < n {
		counts["(missing)"] = n - seen
	}
	return ok, counts
}

// apiJSON sends in (if not nil) as JSON with a bearer token (if any) and decodes
// a 2xx answer into out (if not nil).
func apiJSON(ctx context.Context, hc *http.Client, method, url, token string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, truncate(string(b), 300))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, url, err)
		}
	}
	return nil
}

// ---- EmailEngine ----

// eeEngine is an EmailEngine started outside the scenario (see docs/BENCHMARKS.md):
// webhooks set with POST /v1/settings, accounts added with POST /v1/account,
// states read with GET /v1/accounts.
type eeEngine struct {
	base, token string
	pid         int
	notifyText  bool
	folder      string
	hc          *http.Client
}

func newEEEngine(o webhooksOptions) *eeEngine {
	return &eeEngine{base: strings.TrimSuffix(o.EEURL, "/"), token: o.EEToken, pid: o.EEPid, notifyText: o.EENotifyText,
		folder: o.Folder, hc: newAPI("", o.Parallel).hc}
}

func (e *eeEngine) Name() string { return "emailengine" }

func (e *eeEngine) Version(ctx context.Context) string {
	var out struct {
		Version string `json:"version"`
	}
	if err := apiJSON(ctx, e.hc, http.MethodGet, e.base+"/v1/stats", e.token, nil, &out); err != nil || out.Version == "" {
		return "unknown"
	}
	return out.Version
}

func (e *eeEngine) Pid() int { return e.pid }

func (e *eeEngine) Configure(ctx context.Context, url string) error {
	settings := map[string]any{"webhooksEnabled": true, "webhooks": url, "webhookEvents": []string{"messageNew"}, "notifyText": e.notifyText}
	return apiJSON(ctx, e.hc, http.MethodPost, e.base+"/v1/settings", e.token, settings, nil)
}

func (e *eeEngine) Existing(ctx context.Context) (int, error) {
	var out struct {
		Total int `json:"total"`
	}
	err := apiJSON(ctx, e.hc, http.MethodGet, e.base+"/v1/accounts?page=0&pageSize=1", e.token, nil, &out)
	return out.Total, err
}

func (e *eeEngine) Register(ctx context.Context, i int, imap imapServer) error {
	host, port, _ := strings.Cut(imap.addr, ":")
	portN, _ := strconv.Atoi(port)
	body := map[string]any{
		"account": accountID(i), "name": accountID(i), "email": userName(i), "path": []string{e.folder},
		// tls is passed on to Node's tls.connect: ca pins Dovecot's certificate.
		"imap": map[string]any{"host": host, "port": portN, "secure": true, "tls": map[string]any{"ca": string(imap.caPEM)},
			"auth": map[string]any{"user": userName(i), "pass": benchPassword}},
		"smtp": false,
	}
	return apiJSON(ctx, e.hc, http.MethodPost, e.base+"/v1/account", e.token, body, nil)
}

func (e *eeEngine) States(ctx context.Context, n int) (int, map[string]int, error) {
	type entry struct {
		Account string `json:"account"`
		State   string `json:"state"`
	}
	var all []entry
	for page := 0; ; page++ {
		var out struct {
			Pages    int     `json:"pages"`
			Accounts []entry `json:"accounts"`
		}
		url := fmt.Sprintf("%s/v1/accounts?page=%d&pageSize=1000", e.base, page)
		if err := apiJSON(ctx, e.hc, http.MethodGet, url, e.token, nil, &out); err != nil {
			return 0, nil, err
		}
		all = append(all, out.Accounts...)
		if page+1 >= out.Pages || len(out.Accounts) == 0 {
			break
		}
	}
	ok, counts := tally(n, func(yield func(id, state string)) {
		for _, a := range all {
			yield(a.Account, a.State)
		}
	}, "connected")
	return ok, counts, nil
}

func (e *eeEngine) Close() { e.hc.CloseIdleConnections() }
