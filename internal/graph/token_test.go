// SPDX-License-Identifier: Apache-2.0

package graph

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

const (
	testTenant = "contoso.onmicrosoft.com"
	testClient = "11111111-2222-3333-4444-555555555555"
	testSecret = "Cl1ent~Secret.VALUE"
)

// tokenEndpoint is a fake Entra ID token endpoint issuing tok-1, tok-2, …
type tokenEndpoint struct {
	t        *testing.T
	n        atomic.Int64
	expires  int // expires_in
	delay    time.Duration
	mu       sync.Mutex
	lastForm map[string][]string
}

func (e *tokenEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/"+testTenant+"/oauth2/v2.0/token" {
		http.Error(w, "wrong endpoint "+r.Method+" "+r.URL.Path, http.StatusNotFound)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	e.mu.Lock()
	e.lastForm = r.PostForm
	e.mu.Unlock()
	time.Sleep(e.delay)
	n := e.n.Add(1)
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type": "Bearer", "expires_in": e.expires, "access_token": fmt.Sprintf("tok-%d", n),
	})
}

func startTokens(t *testing.T, e *tokenEndpoint) (*appTokens, *clock) {
	t.Helper()
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	a := AppTokens(srv.URL, testTenant, testClient, testSecret, nil).(*appTokens)
	clk := &clock{t: time.Now()}
	a.now = clk.Now
	return a, clk
}

func TestAppTokensClientCredentialsForm(t *testing.T) {
	e := &tokenEndpoint{t: t, expires: 3599}
	a, _ := startTokens(t, e)
	tok, err := a.Token(t.Context())
	if err != nil || tok != "tok-1" {
		t.Fatalf("Token = %q, %v", tok, err)
	}
	e.mu.Lock()
	f := e.lastForm
	e.mu.Unlock()
	want := map[string]string{
		"grant_type": "client_credentials", "client_id": testClient, "client_secret": testSecret,
		"scope": "https://graph.microsoft.com/.default",
	}
	for k, v := range want {
		if got := f[k]; len(got) != 1 || got[0] != v {
			t.Errorf("form %s = %q, want %q", k, got, v)
		}
	}
}

func TestAppTokensCachedAndRenewedBeforeExpiry(t *testing.T) {
	e := &tokenEndpoint{t: t, expires: 3600}
	a, clk := startTokens(t, e)
	ctx := t.Context()
	for range 3 {
		if tok, err := a.Token(ctx); err != nil || tok != "tok-1" {
			t.Fatalf("Token = %q, %v", tok, err)
		}
	}
	clk.Add(54 * time.Minute) // still more than 5 minutes left
	if tok, _ := a.Token(ctx); tok != "tok-1" {
		t.Fatalf("at 54 min: %q, want the cached tok-1", tok)
	}
	clk.Add(2 * time.Minute) // under 5 minutes left: replaced
	if tok, _ := a.Token(ctx); tok != "tok-2" {
		t.Fatalf("at 56 min: %q, want tok-2", tok)
	}
	if n := e.n.Load(); n != 2 {
		t.Fatalf("%d endpoint requests, want 2", n)
	}
}

func TestAppTokensConcurrentCallersShareOneRequest(t *testing.T) {
	e := &tokenEndpoint{t: t, expires: 3600, delay: 50 * time.Millisecond}
	a, _ := startTokens(t, e)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if tok, err := a.Token(t.Context()); err != nil || tok != "tok-1" {
				t.Errorf("Token = %q, %v", tok, err)
			}
		})
	}
	wg.Wait()
	if n := e.n.Load(); n != 1 {
		t.Fatalf("%d endpoint requests, want 1", n)
	}
}

func TestAppTokensShortLifetimeRenewsAtHalf(t *testing.T) {
	e := &tokenEndpoint{t: t, expires: 120}
	a, clk := startTokens(t, e)
	a.Token(t.Context())
	clk.Add(50 * time.Second)
	if tok, _ := a.Token(t.Context()); tok != "tok-1" {
		t.Fatalf("at 50 s of 120: %q", tok)
	}
	clk.Add(15 * time.Second)
	if tok, _ := a.Token(t.Context()); tok != "tok-2" {
		t.Fatalf("at 65 s of 120: %q, want a new token", tok)
	}
}

// graphFolder answers any request with a folder, unless the token is
// refused.
func graphFolder(refuse func(tok string) bool, seen *[]string, mu *sync.Mutex) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		mu.Lock()
		*seen = append(*seen, tok)
		mu.Unlock()
		if refuse(tok) {
			graphError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": "AAMk-inbox", "displayName": "Inbox"})
	}
}

func TestUnauthorizedRetriesOnceWithFreshToken(t *testing.T) {
	e := &tokenEndpoint{t: t, expires: 3600}
	a, _ := startTokens(t, e)
	var mu sync.Mutex
	var seen []string
	c, _ := newClient(t, graphFolder(func(tok string) bool { return tok == "tok-1" }, &seen, &mu),
		func(o *Options) { o.Tokens = a })
	f, err := c.Folder(t.Context(), "u@contoso.com", "inbox")
	if err != nil || f.ID != "AAMk-inbox" || f.WellKnown != "inbox" {
		t.Fatalf("Folder = %+v, %v", f, err)
	}
	if fmt.Sprint(seen) != "[tok-1 tok-2]" {
		t.Fatalf("tokens sent %v, want [tok-1 tok-2]", seen)
	}
	// The fresh token is cached: no further endpoint request.
	c.Folder(t.Context(), "u@contoso.com", "inbox")
	if n := e.n.Load(); n != 2 {
		t.Fatalf("%d endpoint requests, want 2", n)
	}
}

func TestUnauthorizedTwiceIsAuthError(t *testing.T) {
	e := &tokenEndpoint{t: t, expires: 3600}
	a, _ := startTokens(t, e)
	var mu sync.Mutex
	var seen []string
	c, _ := newClient(t, graphFolder(func(string) bool { return true }, &seen, &mu), func(o *Options) { o.Tokens = a })
	_, err := c.Folder(t.Context(), "u@contoso.com", "inbox")
	requireClass(t, err, mail.ClassAuth)
	if len(seen) != 2 {
		t.Fatalf("%d requests, want 2 (one retry)", len(seen))
	}
	if !strings.Contains(err.Error(), "app-only") {
		t.Errorf("error does not say the token kind: %v", err)
	}
	requireNoSecret(t, err, "tok-1", "tok-2", testSecret)
}

func TestStaticTokenNotRetriedOn401(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	c, _ := newClient(t, graphFolder(func(string) bool { return true }, &seen, &mu))
	_, err := c.Folder(t.Context(), "u@contoso.com", "inbox")
	requireClass(t, err, mail.ClassAuth)
	if len(seen) != 1 || seen[0] != testToken {
		t.Fatalf("sent %v, want the static token once", seen)
	}
	requireNoSecret(t, err, testToken)
}

func TestStaticToken(t *testing.T) {
	tok, err := StaticToken("abc").Token(context.Background())
	if err != nil || tok != "abc" {
		t.Fatalf("StaticToken = %q, %v", tok, err)
	}
}

func TestAppTokensRefused(t *testing.T) {
	for _, tc := range []struct {
		name    string
		status  int
		body    string
		retry   string
		class   mail.ErrorClass
		backoff time.Duration
	}{
		{"bad secret", 401, `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided: ` + testSecret + `\r\nTrace ID: x"}`, "", mail.ClassConfig, 0},
		{"no tenant", 400, `{"error":"invalid_request","error_description":"AADSTS90002: Tenant not found."}`, "", mail.ClassConfig, 0},
		{"throttled", 429, `{"error":"temporarily_unavailable"}`, "12", mail.ClassProtocol, 12 * time.Second},
		{"down", 503, `oops`, "", mail.ClassProtocol, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.retry != "" {
					w.Header().Set("Retry-After", tc.retry)
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			a := AppTokens(srv.URL, testTenant, testClient, testSecret, nil)
			_, err := a.Token(t.Context())
			requireClass(t, err, tc.class)
			requireNoSecret(t, err, testSecret)
			var te *TokenError
			if !errors.As(err, &te) || te.Status != tc.status {
				t.Fatalf("no TokenError with status %d: %v", tc.status, err)
			}
			if d, _ := BackOff(err); d != tc.backoff {
				t.Errorf("BackOff = %v, want %v", d, tc.backoff)
			}
			if strings.Contains(err.Error(), "Trace ID") {
				t.Errorf("error quotes more than the first line: %v", err)
			}
		})
	}
}

func TestAppTokensUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	_, err := AppTokens(url, testTenant, testClient, testSecret, nil).Token(t.Context())
	requireClass(t, err, mail.ClassConnect)
	requireNoSecret(t, err, testSecret)
}

func TestTokenKind(t *testing.T) {
	jwt := func(claims string) string {
		return "eyJhbGciOiJub25lIn0." + b64url(claims) + ".sig"
	}
	for tok, want := range map[string]string{
		jwt(`{"scp":"Mail.Read"}`):     "delegated",
		jwt(`{"roles":["Mail.Read"]}`): "app-only",
		jwt(`{"idtyp":"app"}`):         "app-only",
		jwt(`{}`):                      "bearer",
		"opaque":                       "bearer",
		"a.!!!.c":                      "bearer",
	} {
		if got := tokenKind(StaticToken(tok), tok); got != want {
			t.Errorf("tokenKind(%s) = %q, want %q", tok, got, want)
		}
	}
}
