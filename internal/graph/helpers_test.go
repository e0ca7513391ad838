// SPDX-License-Identifier: Apache-2.0

package graph

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// testToken is the bearer token of the test clients; no error may quote it.
const testToken = "eyJ0eXAi.TEST-BEARER-s3cr3t.sig"

// newClient starts h as the Graph server and returns a client of it with
// BaseURL <server>/v1.0 and a static token.
func newClient(t *testing.T, h http.Handler, mod ...func(*Options)) (*Client, *httptest.Server) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	o := Options{BaseURL: srv.URL + "/v1.0", Tokens: StaticToken(testToken), Timeout: 5 * time.Second}
	for _, m := range mod {
		m(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c, srv
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func graphError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"code": code, "message": msg,
		"innerError": map[string]any{"request-id": "req-1", "client-request-id": "creq-1"},
	}})
}

// requireClass fails unless err is a *mail.Error of class c.
func requireClass(t *testing.T, err error, c mail.ErrorClass) {
	t.Helper()
	var me *mail.Error
	if !errors.As(err, &me) {
		t.Fatalf("error %v (%T) is not a *mail.Error", err, err)
	}
	if me.Class != c {
		t.Fatalf("class %q, want %q: %v", me.Class, c, err)
	}
}

// requireNoSecret fails if err's text contains one of the secrets.
func requireNoSecret(t *testing.T, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			t.Fatalf("error quotes a secret: %v", err)
		}
	}
}

// hits counts requests.
type hits struct{ n atomic.Int64 }

func (h *hits) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.n.Add(1)
		next.ServeHTTP(w, r)
	})
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func b64url(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func readAllLimit(r *http.Request, n int64) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r.Body, n))
}
