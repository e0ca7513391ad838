// SPDX-License-Identifier: Apache-2.0

// Package delivery posts JSON payloads to the client application (Creatio) with
// retries: each attempt is classified by Check, retryable failures wait on an
// exponential backoff with jitter (honouring Retry-After), and at most N requests
// are in flight per client host so one slow Creatio cannot be stampeded by ten
// thousand mailboxes. Post blocks until the payload is acknowledged, refused for
// good, or ctx ends; callers keep per-mailbox order by posting sequentially.
package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emaillistener/emaillistener/internal/backoff"
	"github.com/emaillistener/emaillistener/internal/obs"
)

// Defaults for Options.
const (
	DefaultPerHost         = 32
	DefaultAttemptTimeout  = 120 * time.Second
	DefaultRejectAttempts  = 3
	DefaultRetryAfterLimit = 5 * time.Minute
)

// Options configures a Client. The zero value is usable.
type Options struct {
	HTTPClient     *http.Client   // nil: a client with sane pooling
	PerHost        int            // max in-flight requests per host (default DefaultPerHost)
	AttemptTimeout time.Duration  // per attempt (default DefaultAttemptTimeout)
	Backoff        backoff.Policy // zero: 1s doubling to 1m
	// RejectAttempts is how many times a payload refused with a permanent 4xx is
	// tried before Post gives up with a permanent error (default 3).
	RejectAttempts int
	// Control, when set, is the dialer's Control hook of the default HTTP
	// client (an allow-list of callback networks, see netguard).
	Control    func(network, address string, c syscall.RawConn) error
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Error is a failed delivery: ctx ended during retries, or the payload was refused
// for good (Permanent).
type Error struct {
	Reason    Reason
	Permanent bool
	Status    int // last HTTP status, 0 for network errors
	Attempts  int
	Err       error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("delivery: %s after %d attempts", e.Reason, e.Attempts)
	if e.Status != 0 {
		s += fmt.Sprintf(" (last status %d)", e.Status)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Client delivers payloads. It is safe for concurrent use.
type Client struct {
	http    *http.Client
	opts    Options
	log     *slog.Logger
	metrics *metrics

	mu    sync.Mutex
	hosts map[string]chan struct{} // per-host semaphores
}

// New returns a Client; it does no I/O.
func New(opts *Options) *Client {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.PerHost <= 0 {
		o.PerHost = DefaultPerHost
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = DefaultAttemptTimeout
	}
	if o.RejectAttempts <= 0 {
		o.RejectAttempts = DefaultRejectAttempts
	}
	if o.Backoff == (backoff.Policy{}) {
		o.Backoff = backoff.Policy{Min: time.Second, Max: time.Minute}
	}
	if o.Logger == nil {
		o.Logger = obs.Discard()
	}
	hc := o.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = o.PerHost
		tr.MaxConnsPerHost = 0
		// A client that does not accept a connection within 10 s is down;
		// waiting longer only delays the retry.
		d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: o.Control}
		tr.DialContext = d.DialContext
		// Redirects are followed (an http endpoint redirected to https with
		// 307/308 keeps working); every hop passes Control.
		hc = &http.Client{Transport: tr}
	}
	return &Client{http: hc, opts: o, log: o.Logger, metrics: newMetrics(o.Registerer), hosts: make(map[string]chan struct{})}
}

// ErrGaveUp is the cause in the *Error of PostWithin when its patience ran out.
var ErrGaveUp = errors.New("delivery: gave up retrying for now")

// Post sends body as application/json to target and retries until a 2xx answer,
// a permanent refusal, or the end of ctx. op names the operation for metrics and
// logs (e.g. "ProcessFullEmail"); it must come from a small fixed set.
func (c *Client) Post(ctx context.Context, op, target string, body []byte) error {
	return c.post(ctx, op, target, body, nil, time.Time{}, c.opts.AttemptTimeout)
}

// PostSigned is Post (patience 0) or PostWithin with extra headers made anew
// for every attempt (a signature over a fresh timestamp).
func (c *Client) PostSigned(ctx context.Context, op, target string, body []byte, headers func() http.Header, patience time.Duration) error {
	if patience <= 0 {
		return c.post(ctx, op, target, body, headers, time.Time{}, c.opts.AttemptTimeout)
	}
	return c.post(ctx, op, target, body, headers, time.Now().Add(patience), min(c.opts.AttemptTimeout, patiencePerAttempt*patience))
}

// PostWithin is Post that stops retrying once patience has passed: it returns
// a non-permanent *Error wrapping ErrGaveUp instead of waiting for the next
// attempt. An attempt is bounded by patiencePerAttempt times patience (or
// AttemptTimeout, if shorter), long enough for a client that is merely slow,
// short enough that a client accepting connections but never answering
// cannot hold the caller for the full AttemptTimeout. Callers that can put
// the payload aside (a history load) use it so that a dead client does not
// keep them busy.
func (c *Client) PostWithin(ctx context.Context, op, target string, body []byte, patience time.Duration) error {
	return c.post(ctx, op, target, body, nil, time.Now().Add(patience), min(c.opts.AttemptTimeout, patiencePerAttempt*patience))
}

// patiencePerAttempt: see PostWithin.
const patiencePerAttempt = 6

func (c *Client) post(ctx context.Context, op, target string, body []byte, headers func() http.Header, giveUpAt time.Time, attemptTimeout time.Duration) error {
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		return &Error{Reason: ReasonEndpoint, Permanent: true, Err: fmt.Errorf("bad callback url")}
	}
	log := c.log.With("op", op, "host", u.Host)
	b := backoff.Backoff{Policy: c.opts.Backoff}
	var lastReason Reason
	rejected := 0
	for attempt := 1; ; attempt++ {
		status, hdr, err := c.attempt(ctx, op, u.Host, target, body, headers, attemptTimeout)
		verdict, reason := Check(status, err)
		if verdict == Success {
			if lastReason != ReasonNone {
				log.Info("delivery recovered", "attempts", attempt)
			}
			return nil
		}
		if ctx.Err() != nil {
			return &Error{Reason: reason, Status: status, Attempts: attempt, Err: context.Cause(ctx)}
		}
		c.metrics.failures.WithLabelValues(op, string(reason)).Inc()
		if verdict == Permanent {
			rejected++
			if rejected >= c.opts.RejectAttempts {
				return &Error{Reason: reason, Permanent: true, Status: status, Attempts: attempt, Err: err}
			}
		}
		// Log on change only: a Creatio outage must not print one line per
		// mailbox per retry.
		if reason != lastReason {
			log.Warn("delivery failed, will retry", "reason", reason, "status", status, "attempt", attempt, "err", redact(err))
			lastReason = reason
		}
		wait := b.Next()
		if ra := retryAfter(hdr.Get("Retry-After"), time.Now(), DefaultRetryAfterLimit); ra > wait {
			wait = ra
		}
		if !giveUpAt.IsZero() && time.Now().Add(wait).After(giveUpAt) {
			cause := ErrGaveUp
			if err != nil {
				cause = fmt.Errorf("%w: %w", ErrGaveUp, redact(err))
			}
			return &Error{Reason: reason, Status: status, Attempts: attempt, Err: cause}
		}
		if err := backoff.Sleep(ctx, wait); err != nil {
			return &Error{Reason: reason, Status: status, Attempts: attempt, Err: context.Cause(ctx)}
		}
	}
}

// attempt performs one request under the per-host limit.
func (c *Client) attempt(ctx context.Context, op, host, target string, body []byte, headers func() http.Header, timeout time.Duration) (int, http.Header, error) {
	sem := c.semaphore(host)
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
	defer func() { <-sem }()

	actx, cancel := context.WithTimeoutCause(ctx, timeout, errors.New("delivery attempt timeout"))
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	if headers != nil {
		for k, v := range headers() {
			req.Header[k] = v
		}
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	c.metrics.requestDuration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil {
		c.metrics.requests.WithLabelValues(op, "error").Inc()
		return 0, nil, err
	}
	// Drain a bounded amount so the connection is reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	c.metrics.requests.WithLabelValues(op, statusClass(resp.StatusCode)).Inc()
	return resp.StatusCode, resp.Header, nil
}

func (c *Client) semaphore(host string) chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.hosts[host]
	if !ok {
		s = make(chan struct{}, c.opts.PerHost)
		c.hosts[host] = s
	}
	return s
}

func statusClass(code int) string {
	switch {
	case code < 200:
		return "1xx"
	case code < 300:
		return "2xx"
	case code < 400:
		return "3xx"
	case code < 500:
		return "4xx"
	default:
		return "5xx"
	}
}

// redact keeps URLs (which may carry tokens in the query) out of logged errors.
func redact(err error) error {
	if err == nil {
		return nil
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// PermanentFailure reports whether retrying cannot help (the payload was
// refused for good); the syncer skips such a message instead of blocking.
func (e *Error) PermanentFailure() bool { return e.Permanent }
