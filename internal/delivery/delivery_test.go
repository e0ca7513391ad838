// SPDX-License-Identifier: Apache-2.0

package delivery

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/backoff"
)

func TestCheckEveryStatus(t *testing.T) {
	for code := 100; code < 600; code++ {
		v, r := Check(code, nil)
		switch {
		case code >= 200 && code < 300:
			if v != Success || r != ReasonNone {
				t.Errorf("%d: got %v %q, want success", code, v, r)
			}
		case code == 429:
			if v != Retry || r != ReasonThrottled {
				t.Errorf("429: got %v %q", v, r)
			}
		case code == 408:
			if v != Retry || r != ReasonTimeout {
				t.Errorf("408: got %v %q", v, r)
			}
		case code == 401 || code == 403 || code == 404 || code == 405:
			if v != Retry || r != ReasonEndpoint {
				t.Errorf("%d: got %v %q, want retry endpoint", code, v, r)
			}
		case code >= 500:
			if v != Retry || r != ReasonServerError {
				t.Errorf("%d: got %v %q, want retry server_error", code, v, r)
			}
		case code >= 400:
			if v != Permanent || r != ReasonRejected {
				t.Errorf("%d: got %v %q, want permanent", code, v, r)
			}
		default:
			if v != Retry {
				t.Errorf("%d: got %v, want retry", code, v)
			}
		}
	}
	if v, r := Check(0, context.DeadlineExceeded); v != Retry || r != ReasonTimeout {
		t.Errorf("deadline: %v %q", v, r)
	}
	if v, r := Check(0, errors.New("connection refused")); v != Retry || r != ReasonNetwork {
		t.Errorf("network: %v %q", v, r)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := map[string]time.Duration{
		"":                              0,
		"3":                             3 * time.Second,
		"-1":                            0,
		"100000":                        time.Minute,
		"Thu, 01 Jan 2026 00:00:10 GMT": 10 * time.Second,
		"junk":                          0,
	}
	for h, want := range cases {
		if got := retryAfter(h, now, time.Minute); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", h, got, want)
		}
	}
}

func fastClient() *Client {
	return New(&Options{Backoff: backoff.Policy{Min: time.Millisecond, Max: 5 * time.Millisecond}})
}

func TestPostRetriesUntilSuccess(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != "application/json; charset=utf-8" {
			t.Errorf("content type %q", r.Header.Get("Content-Type"))
		}
		if n.Add(1) <= 3 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
	}))
	defer srv.Close()
	if err := fastClient().Post(context.Background(), "ProcessFullEmail", srv.URL+"/x", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if n.Load() != 4 {
		t.Fatalf("attempts = %d, want 4", n.Load())
	}
}

func TestPostPermanentGivesUp(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(http.StatusBadRequest)
	}))
	defer srv.Close()
	err := fastClient().Post(context.Background(), "ProcessFullEmail", srv.URL, []byte(`{}`))
	var de *Error
	if !errors.As(err, &de) || !de.PermanentFailure() || de.Status != 400 || de.Attempts != DefaultRejectAttempts {
		t.Fatalf("err = %#v", err)
	}
	if int(n.Load()) != DefaultRejectAttempts {
		t.Fatalf("attempts = %d", n.Load())
	}
}

func TestPostStopsOnContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := fastClient().Post(ctx, "ProcessFullEmail", srv.URL, []byte(`{}`))
	var de *Error
	if !errors.As(err, &de) || de.Permanent || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %#v", err)
	}
}

func TestPerHostLimit(t *testing.T) {
	var cur, peak atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := cur.Add(1)
		for {
			p := peak.Load()
			if c <= p || peak.CompareAndSwap(p, c) {
				break
			}
		}
		<-release
		cur.Add(-1)
	}))
	defer srv.Close()
	c := New(&Options{PerHost: 3})
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Post(context.Background(), "ProcessFullEmail", srv.URL, nil); err != nil {
				t.Error(err)
			}
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for cur.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if peak.Load() != 3 {
		t.Fatalf("peak concurrency %d, want 3", peak.Load())
	}
}

func TestPostBadURL(t *testing.T) {
	var de *Error
	if err := fastClient().Post(context.Background(), "ProcessFullEmail", "not a url", nil); !errors.As(err, &de) || !de.Permanent {
		t.Fatalf("err = %v", err)
	}
}

func TestPostWithinGivesUpAfterPatience(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	c := New(&Options{Backoff: backoff.Policy{Min: 20 * time.Millisecond, Max: 20 * time.Millisecond}})
	start := time.Now()
	err := c.PostWithin(context.Background(), "ProcessFullEmail", srv.URL, []byte(`{}`), 100*time.Millisecond)
	var de *Error
	if !errors.As(err, &de) || de.Permanent || !errors.Is(err, ErrGaveUp) || de.Status != 500 {
		t.Fatalf("err = %#v, want a non-permanent *Error wrapping ErrGaveUp", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("gave up after %v", took)
	}
	if n.Load() < 2 {
		t.Errorf("%d attempts, want retries within the patience", n.Load())
	}
	// Post keeps retrying until success.
	ok := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer ok.Close()
	if err := c.PostWithin(context.Background(), "ProcessFullEmail", ok.URL, []byte(`{}`), time.Millisecond); err != nil {
		t.Fatalf("a first attempt that succeeds: %v", err)
	}
}

func TestPostSignedSignsEveryAttempt(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("webhook-id") != "e1" || r.Header.Get("webhook-signature") != "sig"+r.Header.Get("webhook-timestamp") {
			t.Errorf("headers %v", r.Header)
		}
		if n.Add(1) < 3 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	var made atomic.Int32
	headers := func() http.Header {
		k := strconv.Itoa(int(made.Add(1)))
		return http.Header{"Webhook-Id": {"e1"}, "Webhook-Timestamp": {k}, "Webhook-Signature": {"sig" + k}}
	}
	if err := fastClient().PostSigned(context.Background(), "WebhookMessage", srv.URL, []byte(`{}`), headers, 0); err != nil {
		t.Fatal(err)
	}
	if n.Load() != 3 || made.Load() != 3 {
		t.Fatalf("%d attempts, %d signatures", n.Load(), made.Load())
	}
}
