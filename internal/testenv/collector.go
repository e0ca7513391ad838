// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Operations of Creatio's ExchangeListenerService (docs/CREATIO-PROTOCOL.md §11.1).
// They are the last path segment below CollectorPathPrefix.
const (
	OpProcessFullEmail             = "ProcessFullEmail"
	OpProcessMailboxState          = "ProcessMailboxState"
	OpRefreshToken                 = "RefreshToken"
	OpNewEmail                     = "NewEmail"
	OpProcessBinarySerializedEmail = "ProcessBinarySerializedEmail"

	// OpAny in SetFailure, FailNext and SetDelay applies to every operation that has no
	// setting of its own.
	OpAny = "*"

	// CollectorPathPrefix is where the service lives on a .NET Framework Creatio site.
	CollectorPathPrefix = "/0/ServiceModel/ExchangeListenerService.svc/"

	// maxCollectorBody bounds what one request may send (attachments travel inline as
	// base64, so bodies can be large, but not unbounded).
	maxCollectorBody = 64 << 20
)

// Request is one recorded HTTP request. Recorded values are shared between callers and
// must not be modified.
type Request struct {
	Seq    int    // arrival order, from 1
	Op     string // operation (Op… constants) for known paths, else the URL path
	Method string // HTTP method
	Path   string // URL path
	Header http.Header
	Time   time.Time      // arrival, taken before the body was read
	Body   []byte         // raw body
	JSON   map[string]any // Body decoded as a JSON object; nil if it is not one
	Status int            // status the collector answered with
}

// Email is one element of a ProcessFullEmail request's Emails array
// (docs/CREATIO-PROTOCOL.md §11.3), with the SubscriptionInfo of its batch.
type Email struct {
	Seq          int            // Seq of the request that carried it
	Time         time.Time      // arrival of that request
	Data         map[string]any // the Email object: Subject, MessageId, Headers, …
	Subscription map[string]any // the batch's SubscriptionInfo, nil if absent
}

// Collector is a stand-in for Creatio's ExchangeListenerService on 127.0.0.1: it records
// every request and answers like WCF void operations, 200 with an empty body, unless a
// failure or delay is programmed. Unknown paths get 404 and non-POST requests 405; both
// are recorded, so a test can assert that none happened. All methods are safe for
// concurrent use.
type Collector struct {
	srv *httptest.Server

	mu        sync.Mutex
	reqs      []Request     // append-only; elements never change once appended
	changed   chan struct{} // closed and replaced whenever reqs grows
	failures  map[string]int
	failNext  map[string]failCount
	delays    map[string]time.Duration
	onRequest func(Request)

	closeOnce sync.Once
	closed    chan struct{} // aborts programmed delays on Close
}

type failCount struct {
	n, status int
}

// NewCollector starts a Collector. Call Close when done.
func NewCollector() *Collector {
	c := &Collector{
		changed:  make(chan struct{}),
		failures: make(map[string]int),
		failNext: make(map[string]failCount),
		delays:   make(map[string]time.Duration),
		closed:   make(chan struct{}),
	}
	c.srv = httptest.NewServer(http.HandlerFunc(c.serve))
	return c
}

// Close aborts pending delayed responses and shuts the server down.
func (c *Collector) Close() {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.srv.Close()
	})
}

// URL returns the URL of op, e.g. URL(OpProcessMailboxState).
func (c *Collector) URL(op string) string { return c.srv.URL + CollectorPathPrefix + op }

// Endpoint returns the ProcessFullEmail URL: the BpmEndpoint Creatio hands the listener,
// from which the other operation URLs are derived.
func (c *Collector) Endpoint() string { return c.URL(OpProcessFullEmail) }

// SetFailure makes every request to op (or OpAny) answer status until ClearFailure.
func (c *Collector) SetFailure(op string, status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failures[op] = status
}

// ClearFailure removes SetFailure and FailNext settings of op (OpAny: only the OpAny
// settings).
func (c *Collector) ClearFailure(op string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.failures, op)
	delete(c.failNext, op)
}

// FailNext makes the next n requests to op (or OpAny) answer status; it replaces an
// earlier FailNext for op and takes precedence over SetFailure.
func (c *Collector) FailNext(op string, n, status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failNext[op] = failCount{n: n, status: status}
}

// SetDelay delays the responses to op (or OpAny) by d, after the request was recorded;
// 0 removes the delay. A client whose timeout is shorter sees a timeout although the
// request is recorded with the status it would have got.
func (c *Collector) SetDelay(op string, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d <= 0 {
		delete(c.delays, op)
		return
	}
	c.delays[op] = d
}

// OnRequest sets a hook called for every request after it is recorded and before it is
// answered, on the request's goroutine (concurrently for concurrent requests). Benchmarks
// use it for arrival timestamps. It must not block; nil removes it.
func (c *Collector) OnRequest(fn func(Request)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onRequest = fn
}

// Requests returns the recorded requests to op in arrival order; "" returns all.
func (c *Collector) Requests(op string) []Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Request
	for _, r := range c.reqs {
		if op == "" || r.Op == op {
			out = append(out, r)
		}
	}
	return out
}

// WaitFor blocks until cond, called with all requests so far, returns true, or until
// ctx ends. cond is re-evaluated on every new request, never on a timer. It must not
// retain or modify the slice.
func (c *Collector) WaitFor(ctx context.Context, cond func([]Request) bool) error {
	for {
		c.mu.Lock()
		reqs := c.reqs[:len(c.reqs):len(c.reqs)]
		changed := c.changed
		c.mu.Unlock()
		if cond(reqs) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testenv: collector condition not met after %d requests: %w", len(reqs), context.Cause(ctx))
		case <-changed:
		}
	}
}

// Emails returns the emails of all ProcessFullEmail requests answered with 2xx, i.e. the
// ones Creatio would have accepted, in arrival order.
func (c *Collector) Emails() []Email {
	return emailsOf(c.Requests(OpProcessFullEmail))
}

// WaitForEmails waits until at least n emails were accepted and returns them all.
func (c *Collector) WaitForEmails(ctx context.Context, n int) ([]Email, error) {
	var got []Email
	err := c.WaitFor(ctx, func(reqs []Request) bool {
		got = emailsOf(reqs)
		return len(got) >= n
	})
	if err != nil {
		return got, fmt.Errorf("%w (want %d emails, have %d)", err, n, len(got))
	}
	return got, nil
}

func emailsOf(reqs []Request) []Email {
	var out []Email
	for _, r := range reqs {
		if r.Op != OpProcessFullEmail || r.Status/100 != 2 || r.JSON == nil {
			continue
		}
		sub, _ := r.JSON["SubscriptionInfo"].(map[string]any)
		list, _ := r.JSON["Emails"].([]any)
		for _, e := range list {
			if m, ok := e.(map[string]any); ok {
				out = append(out, Email{Seq: r.Seq, Time: r.Time, Data: m, Subscription: sub})
			}
		}
	}
	return out
}

// Summary lists the recorded requests one per line (for failure logs).
func (c *Collector) Summary() string {
	var b strings.Builder
	for _, r := range c.Requests("") {
		fmt.Fprintf(&b, "#%d %s %s %s -> %d (%d bytes)\n", r.Seq, r.Time.Format("15:04:05.000"), r.Method, r.Path, r.Status, len(r.Body))
	}
	return b.String()
}

func (c *Collector) serve(w http.ResponseWriter, r *http.Request) {
	arrival := time.Now()
	body, err := io.ReadAll(io.LimitReader(r.Body, maxCollectorBody))
	if err != nil {
		// The client went away mid-body; nothing was delivered, nothing to record.
		return
	}
	req := Request{
		Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Time: arrival, Body: body,
	}
	op, known := strings.CutPrefix(r.URL.Path, CollectorPathPrefix)
	switch {
	case !known || !isOperation(op):
		req.Op, req.Status = r.URL.Path, http.StatusNotFound
	case r.Method != http.MethodPost:
		req.Op, req.Status = op, http.StatusMethodNotAllowed
	default:
		req.Op = op
	}
	if trimmed := bytes.TrimSpace(body); len(trimmed) > 0 && trimmed[0] == '{' {
		var m map[string]any
		if json.Unmarshal(trimmed, &m) == nil {
			req.JSON = m
		}
	}
	req, delay, hook := c.record(req)
	if hook != nil {
		hook(req)
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
		case <-c.closed:
		}
		t.Stop()
	}
	switch req.Status {
	case http.StatusOK:
		w.WriteHeader(http.StatusOK) // WCF void: 200, empty body
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", req.Status)
	default:
		http.Error(w, "testenv collector: "+http.StatusText(req.Status), req.Status)
	}
}

// record decides the status of an operation request (programmed failures), appends the
// request and wakes WaitFor callers, all under one lock so Seq order and failure counts
// agree.
func (c *Collector) record(req Request) (Request, time.Duration, func(Request)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if req.Status == 0 {
		req.Status = c.takeFailureLocked(req.Op)
	}
	delay, ok := c.delays[req.Op]
	if !ok {
		delay = c.delays[OpAny]
	}
	req.Seq = len(c.reqs) + 1
	c.reqs = append(c.reqs, req)
	close(c.changed)
	c.changed = make(chan struct{})
	return req, delay, c.onRequest
}

func (c *Collector) takeFailureLocked(op string) int {
	for _, key := range []string{op, OpAny} {
		if f, ok := c.failNext[key]; ok && f.n > 0 {
			f.n--
			if f.n == 0 {
				delete(c.failNext, key)
			} else {
				c.failNext[key] = f
			}
			return f.status
		}
	}
	for _, key := range []string{op, OpAny} {
		if s, ok := c.failures[key]; ok {
			return s
		}
	}
	return http.StatusOK
}

func isOperation(op string) bool {
	switch op {
	case OpProcessFullEmail, OpProcessMailboxState, OpRefreshToken, OpNewEmail, OpProcessBinarySerializedEmail:
		return true
	}
	return false
}
