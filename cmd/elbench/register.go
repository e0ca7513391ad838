// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// imapServerType is Creatio's ServerTypeId of a plain IMAP server.
const imapServerType = "844f0837-eaa0-4f40-b965-71f5db9eae6e"

// statesChunk is how many ids one subscriptionsstate call asks about.
const statesChunk = 500

// existsPoll is how often waitExists asks; each poll is N/statesChunk small requests.
const existsPoll = 250 * time.Millisecond

// mailboxID is the Creatio mailbox id of benchmark mailbox i (a well-formed UUID).
func mailboxID(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

// userName is the Dovecot user of benchmark mailbox i; with AnyPassword every name logs in.
func userName(i int) string { return fmt.Sprintf("u%d@example.com", i) }

// api calls the service's Creatio-facing HTTP API.
type api struct {
	base string // http://127.0.0.1:port
	hc   *http.Client
}

func newAPI(base string, parallel int) *api {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: parallel + 2,
		IdleConnTimeout:     30 * time.Second,
	}
	return &api{base: base, hc: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

func (a *api) close() { a.hc.CloseIdleConnections() }

// post sends body and returns the response body; a non-200 status is an error.
func (a *api) post(ctx context.Context, path, body string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8") // as Creatio sends it
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return out, fmt.Errorf("POST %s: %d %s", path, resp.StatusCode, truncate(string(out), 300))
	}
	return out, nil
}

// status returns GET /api/listeners/status decoded.
func (a *api) status(ctx context.Context) (map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/api/listeners/status", nil)
	if err != nil {
		return nil, err
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /api/listeners/status: %d", resp.StatusCode)
	}
	var m map[string]any
	return m, json.NewDecoder(resp.Body).Decode(&m)
}

// goroutines reads the Goroutines field of the status.
func (a *api) goroutines(ctx context.Context) (int, error) {
	st, err := a.status(ctx)
	if err != nil {
		return 0, err
	}
	g, ok := st["Goroutines"].(float64)
	if !ok {
		return 0, errors.New("status has no numeric Goroutines field")
	}
	return int(g), nil
}

// target is where the registered mailboxes' IMAP server is and how to reach it.
type target struct {
	addr     string // host:port
	secure   int    // Creatio SecureOption: 0 none, 2 SSL
	useSSL   bool
	endpoint string // Creatio callback (the Collector's ProcessFullEmail URL)
	password string
}

// createBody renders the credentials of mailboxes ids exactly as Creatio does: a JSON
// array, property names unquoted (Newtonsoft QuoteName=false), with Creatio's full set
// of properties (see test/e2e/helpers_test.go).
func (t target) createBody(ids []int) string {
	host, port, _ := strings.Cut(t.addr, ":")
	q := func(v string) string { b, _ := json.Marshal(v); return string(b) }
	var b strings.Builder
	b.WriteByte('[')
	for k, i := range ids {
		if k > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{FolderIds:[],PersonalMetrics:false,UseFullEmail:true,BpmUserTimeZone:"Russian Standard Time",`+
			`FeatureValues:{MarkEmailsAsSynchronized:true,UseBinaryData:false},BpmUser:"Supervisor",BpmEndpoint:%s,`+
			`BpmUserWorkspace:"Default",SenderEmailAddress:%s,ServiceUrl:%s,Port:%s,UseOAuth:false,IsAutodiscover:false,`+
			`AutodiscoverRedirectUrl:"",Context:"{UserRequested:true,HasError:false}",ServerTypeId:"%s",UseSsl:%v,SubscriptionTtl:0,`+
			`FolderClassName:null,SecureOption:%d,Id:%s,UserName:%s,Password:%s,AccessToken:""}`,
			q(t.endpoint), q(userName(i)), q(host), port, imapServerType, t.useSSL, t.secure,
			q(mailboxID(i)), q(userName(i)), q(t.password))
	}
	b.WriteByte(']')
	return b.String()
}

// register creates mailboxes 0..n-1 through POST /api/listeners/create, batch mailboxes
// per request (Creatio sends one), parallel requests at a time. It stops at the first
// failed request.
func (a *api) register(ctx context.Context, t target, n, batch, parallel int) error {
	return a.registerWith(ctx, t.createBody, n, batch, parallel)
}

// registerWith is register with any protocol's create body.
func (a *api) registerWith(ctx context.Context, createBody func(ids []int) string, n, batch, parallel int) error {
	batch, parallel = max(batch, 1), max(parallel, 1)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan []int)
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			for ids := range jobs {
				if _, err := a.post(ctx, "/api/listeners/create", createBody(ids)); err != nil {
					cancel(fmt.Errorf("create mailboxes %d..%d: %w", ids[0], ids[len(ids)-1], err))
				}
			}
		})
	}
send:
	for lo := 0; lo < n; lo += batch {
		ids := make([]int, 0, batch)
		for i := lo; i < min(lo+batch, n); i++ {
			ids = append(ids, i)
		}
		select {
		case jobs <- ids:
		case <-ctx.Done():
			break send
		}
	}
	close(jobs)
	wg.Wait()
	return context.Cause(ctx)
}

// stateInfo is one subscriptionsstate entry (State plus diagnostics).
type stateInfo struct {
	State     string `json:"State"`
	LastError string `json:"LastError"`
	Node      string `json:"Node"` // the node serving it (cluster mode)
}

// states asks subscriptionsstate about mailboxes 0..n-1 in chunks of statesChunk.
func (a *api) states(ctx context.Context, n int) (map[string]stateInfo, error) {
	all := make(map[string]stateInfo, n)
	for lo := 0; lo < n; lo += statesChunk {
		ids := make([]string, 0, statesChunk)
		for i := lo; i < min(lo+statesChunk, n); i++ {
			ids = append(ids, mailboxID(i))
		}
		body, _ := json.Marshal(ids)
		out, err := a.post(ctx, "/api/listeners/subscriptionsstate", string(body))
		if err != nil {
			return nil, err
		}
		var m map[string]stateInfo
		if err := json.Unmarshal(out, &m); err != nil {
			return nil, fmt.Errorf("subscriptionsstate: %w: %s", err, truncate(string(out), 200))
		}
		for k, v := range m {
			all[k] = v
		}
	}
	return all, nil
}

// existsOutcome summarizes the state of all mailboxes after waitExists.
type existsOutcome struct {
	Exists int
	Counts map[string]int    // state -> number of mailboxes
	Errors map[string]string // a few mailbox -> LastError samples
}

// waitExists polls subscriptionsstate until all n mailboxes are "exists" or timeout
// passes; it returns the last outcome in both cases (an error only on API failure or
// timeout).
func (a *api) waitExists(ctx context.Context, n int, timeout time.Duration, counts func(context.Context) (int, bool)) (existsOutcome, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(existsPoll)
	defer tick.Stop()
	var out existsOutcome
	for {
		// The nodes' status counts are cheap; polling every state of thousands
		// of mailboxes four times a second would cost the service more CPU than
		// bringing them up (encoding subscriptionsstate, and in a cluster reading
		// every state from Redis). The final check always reads every state.
		if local, ok := counts(ctx); ok && local < n {
			select {
			case <-ctx.Done():
				return out, fmt.Errorf("%d of %d mailboxes exist after %v", local, n, timeout)
			case <-tick.C:
			}
			continue
		}
		st, err := a.states(ctx, n)
		if err == nil {
			out = summarize(st, n)
			if out.Exists == n {
				return out, nil
			}
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("%d of %d mailboxes exist after %v (states %v)", out.Exists, n, timeout, out.Counts)
			}
			return out, err
		case <-tick.C:
		}
	}
}

// localExists returns the node's count of its own subscriptions in state
// exists (false on any error).
func (a *api) localExists(ctx context.Context) (int, bool) {
	st, err := a.status(ctx)
	if err != nil {
		return 0, false
	}
	subs, _ := st["Subscriptions"].(map[string]any)
	n, ok := subs["exists"].(float64)
	return int(n), ok
}

// existsCounts sums the exists counts of every service process of the stack:
// each mailbox is served by one node, so the sum is the cluster's.
func (s *stack) existsCounts(ctx context.Context) (int, bool) {
	total, ok := s.api.localExists(ctx)
	for _, a := range s.peerAPIs {
		n, pok := a.localExists(ctx)
		total, ok = total+n, ok && pok
	}
	return total, ok
}

func summarize(st map[string]stateInfo, n int) existsOutcome {
	out := existsOutcome{Counts: map[string]int{}, Errors: map[string]string{}}
	for i := range n {
		s, ok := st[mailboxID(i)]
		if !ok {
			out.Counts["(missing)"]++
			continue
		}
		out.Counts[s.State]++
		if s.State == "exists" {
			out.Exists++
		} else if s.LastError != "" && len(out.Errors) < 5 {
			out.Errors[mailboxID(i)] = s.LastError
		}
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// commonOptions are the settings every scenario shares.
type commonOptions struct {
	stackOptions
	N             int           // mailboxes
	Batch         int           // mailboxes per create request (Creatio sends 1)
	Parallel      int           // create requests in flight
	ExistsTimeout time.Duration // budget for all mailboxes to reach "exists"
}

func (o commonOptions) params() map[string]any {
	return map[string]any{"n": o.N, "tls": o.TLS, "batch": o.Batch, "parallel": o.Parallel}
}

// registerAll registers o.N mailboxes and waits until they all exist, adding
// register_ms (first create call until the last one returned) and exists_ms (first
// create call until all exist) to res. A mailbox that does not reach "exists" is a
// warning, not an error: the scenario measures on and the result says what happened.
func registerAll(ctx context.Context, s *stack, o commonOptions, res *Result) error {
	o.Logf("registering %d mailboxes (%d per request, %d in parallel)", o.N, o.Batch, o.Parallel)
	t0 := time.Now()
	w := startCPUWindow(s.svc.Pid(), s.dc.PIDs)
	if err := s.api.register(ctx, s.target, o.N, o.Batch, o.Parallel); err != nil {
		return err
	}
	res.Metrics.Add("register_ms", ms(time.Since(t0)), "ms", "first create call until all create calls returned")
	out, err := s.api.waitExists(ctx, o.N, o.ExistsTimeout, s.existsCounts)
	took := time.Since(t0)
	cpu := w.stop()
	res.Metrics.Add("exists", float64(out.Exists), "", "mailboxes in state exists")
	res.Metrics.Add("exists_ms", ms(took), "ms", "first create call until all mailboxes exist")
	res.Metrics.Add("exists_per_s", float64(out.Exists)/took.Seconds(), "/s", "subscriptions brought up per second")
	res.Metrics.Add("register_service_cpu_s", cpu.ServiceSec, "s", "service CPU until all exist")
	res.Metrics.Add("register_dovecot_cpu_s", cpu.DovecotSec, "s", "Dovecot CPU until all exist (logins, SELECT, hibernation)")
	res.Metrics.Add("register_machine_busy_pct", 100*cpu.MachineBusy, "%", "all CPUs until all exist")
	res.Metrics.Add("register_other_cpu_s", cpu.OtherSec, "s", "CPU of everything else until all exist (other load); ~0 on a quiet machine")
	res.Notes["states_after_register"] = out.Counts
	if len(out.Errors) > 0 {
		res.Notes["state_errors_sample"] = out.Errors
	}
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		res.fail("only %d of %d mailboxes reached exists: %v", out.Exists, o.N, err)
		return nil
	}
	o.Logf("all %d mailboxes exist after %v", o.N, took.Round(time.Millisecond))
	return nil
}

// histogram is a Prometheus histogram scraped from the service's /metrics.
type histogram struct {
	Buckets []bucket `json:"buckets"`
	Count   float64  `json:"count"`
	Sum     float64  `json:"sum"`
}

type bucket struct {
	LE    float64 `json:"le"` // upper bound in seconds (+Inf as 1e308)
	Count float64 `json:"count"`
}

// quantile returns the upper bound of the bucket holding quantile q (0..1): an upper
// estimate, as precise as the bucket layout.
func (h histogram) quantile(q float64) float64 {
	for _, b := range h.Buckets {
		if b.Count >= q*h.Count {
			return b.LE
		}
	}
	return 0
}

// scrapeHistogram reads histogram name from GET /metrics (Prometheus text format).
func (a *api) scrapeHistogram(ctx context.Context, name string) (histogram, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/metrics", nil)
	if err != nil {
		return histogram{}, err
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return histogram{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return histogram{}, fmt.Errorf("GET /metrics: %d", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return histogram{}, err
	}
	var h histogram
	for line := range strings.SplitSeq(string(b), "\n") {
		key, val, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(key, name) {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(key, name+"_bucket{le=\""):
			le := strings.TrimSuffix(strings.TrimPrefix(key, name+"_bucket{le=\""), "\"}")
			bound, err := strconv.ParseFloat(le, 64)
			if le == "+Inf" || err != nil {
				bound = math.MaxFloat64
			}
			h.Buckets = append(h.Buckets, bucket{LE: bound, Count: v})
		case key == name+"_count":
			h.Count = v
		case key == name+"_sum":
			h.Sum = v
		}
	}
	if h.Buckets == nil {
		return h, fmt.Errorf("metric %s not found", name)
	}
	return h, nil
}

// scrapeGauges reads the named unlabelled metrics from GET /metrics; missing
// ones are absent from the result.
func (a *api) scrapeGauges(ctx context.Context, names ...string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for line := range strings.SplitSeq(string(b), "\n") {
		key, val, ok := strings.Cut(line, " ")
		if !ok || !slices.Contains(names, key) {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			out[key] = v
		}
	}
	return out, nil
}
