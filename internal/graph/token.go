// SPDX-License-Identifier: Apache-2.0

package graph

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// TokenSource supplies the bearer token of a request. Token is called for
// every request, concurrently; it should return a cached token while it is
// valid. Its errors should be *mail.Error values; others are ClassAuth.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

// StaticToken is a TokenSource that always returns tok (a delegated token
// the caller refreshes itself, or tests).
func StaticToken(tok string) TokenSource { return staticToken(tok) }

type staticToken string

func (t staticToken) Token(context.Context) (string, error) { return string(t), nil }

// Defaults of AppTokens.
const (
	DefaultLoginURL = "https://login.microsoftonline.com"
	// GraphScope is the app-only scope: every application permission the
	// app was granted for Graph.
	GraphScope = "https://graph.microsoft.com/.default"
	// tokenTimeout bounds one request to the token endpoint.
	tokenTimeout = 30 * time.Second
	// renewBefore is how long before its expiry a token is replaced
	// (at most half its lifetime), so that a request never starts with a
	// token about to run out.
	renewBefore = 5 * time.Minute
	// noExpiryTTL is how long a token that states no expiry is kept.
	noExpiryTTL = 10 * time.Minute
)

// AppTokens is a TokenSource of app-only tokens from the client
// credentials grant (RFC 6749 §4.4) of an Entra ID app: the token endpoint
// is <loginURL>/<tenant>/oauth2/v2.0/token (loginURL "" is
// DefaultLoginURL), the scope GraphScope. The token is cached and replaced
// five minutes before it expires; concurrent callers share one request to
// the endpoint. t carries the requests to the endpoint (nil: a clone of
// http.DefaultTransport).
//
// Errors: credentials the endpoint refuses (wrong or expired secret,
// unknown app or tenant) are ClassConfig, "the Graph app credentials were
// refused" with the AADSTS code; an unreachable endpoint ClassConnect (or
// another transport class); a busy endpoint ClassProtocol with its
// Retry-After. No error contains the secret.
func AppTokens(loginURL, tenant, clientID, secret string, t http.RoundTripper) TokenSource {
	if loginURL == "" {
		loginURL = DefaultLoginURL
	}
	if t == nil {
		t = http.DefaultTransport.(*http.Transport).Clone()
	}
	return &appTokens{
		cfg: clientcredentials.Config{
			ClientID:     clientID,
			ClientSecret: secret,
			TokenURL:     strings.TrimRight(loginURL, "/") + "/" + url.PathEscape(tenant) + "/oauth2/v2.0/token",
			Scopes:       []string{GraphScope},
			AuthStyle:    oauth2.AuthStyleInParams,
		},
		hc: &http.Client{
			Transport:     t,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		fetch: make(chan struct{}, 1),
		now:   time.Now,
	}
}

type appTokens struct {
	cfg   clientcredentials.Config
	hc    *http.Client
	fetch chan struct{} // held by the one caller talking to the endpoint
	now   func() time.Time

	mu    sync.Mutex
	tok   string    // guarded by mu
	renew time.Time // when tok is to be replaced; guarded by mu
}

// Token returns the cached token, or fetches a new one when it is due.
func (a *appTokens) Token(ctx context.Context) (string, error) {
	if tok := a.cached(); tok != "" {
		return tok, nil
	}
	select {
	case a.fetch <- struct{}{}:
	case <-ctx.Done():
		return "", ctxError(ctx, "graph token", ctx.Err())
	}
	defer func() { <-a.fetch }()
	if tok := a.cached(); tok != "" {
		return tok, nil // fetched by the caller we waited for
	}
	fctx, cancel := context.WithTimeoutCause(ctx, tokenTimeout, &deadline{d: tokenTimeout})
	defer cancel()
	start := a.now()
	t, err := a.cfg.Token(context.WithValue(fctx, oauth2.HTTPClient, a.hc))
	if err != nil {
		return "", a.failure(fctx, err)
	}
	if t.AccessToken == "" {
		return "", mail.Errorf(mail.ClassProtocol, "graph token", "the token endpoint returned no access token")
	}
	life := noExpiryTTL
	if !t.Expiry.IsZero() {
		life = t.Expiry.Sub(start)
	}
	margin := min(renewBefore, life/2)
	a.mu.Lock()
	a.tok, a.renew = t.AccessToken, start.Add(life-margin)
	a.mu.Unlock()
	return t.AccessToken, nil
}

func (a *appTokens) cached() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tok != "" && a.now().Before(a.renew) {
		return a.tok
	}
	return ""
}

// invalidate drops tok if it is the cached token (Graph refused it: revoked
// or the app's permissions changed) and reports whether it did.
func (a *appTokens) invalidate(tok string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tok == "" || a.tok != tok {
		return false
	}
	a.tok = ""
	return true
}

// TokenError is a refusal by the token endpoint.
type TokenError struct {
	Status      int
	Code        string // OAuth error, e.g. "invalid_client"
	Description string // an excerpt of error_description (AADSTS code and text)
	Retry       time.Duration
}

func (e *TokenError) Error() string {
	s := fmt.Sprintf("token endpoint answered HTTP %d", e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Description != "" {
		s += ": " + e.Description
	}
	return s
}

// RetryAfter is the endpoint's Retry-After, 0 when none.
func (e *TokenError) RetryAfter() time.Duration { return e.Retry }

// failure classifies an error of the token endpoint.
func (a *appTokens) failure(ctx context.Context, err error) error {
	const op = "graph token"
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return ctxError(ctx, op, err)
	}
	te := &TokenError{Code: excerpt(re.ErrorCode), Description: excerpt(firstLine(redact(re.ErrorDescription, a.cfg.ClientSecret)))}
	if re.Response != nil {
		te.Status = re.Response.StatusCode
		te.Retry = retryAfter(re.Response.Header.Get("Retry-After"), a.now())
	}
	switch {
	case te.Status == http.StatusTooManyRequests || te.Status >= 500 || re.ErrorCode == "temporarily_unavailable":
		return &mail.Error{Class: mail.ClassProtocol, Op: op, Err: te}
	case re.ErrorCode == "invalid_client", re.ErrorCode == "unauthorized_client", re.ErrorCode == "invalid_request",
		re.ErrorCode == "invalid_scope", re.ErrorCode == "invalid_grant",
		strings.Contains(re.ErrorDescription, "AADSTS7000215"), // invalid secret
		strings.Contains(re.ErrorDescription, "AADSTS7000222"), // expired secret
		strings.Contains(re.ErrorDescription, "AADSTS700016"),  // no such app in the tenant
		strings.Contains(re.ErrorDescription, "AADSTS90002"),   // no such tenant
		te.Status == http.StatusBadRequest, te.Status == http.StatusUnauthorized:
		return &mail.Error{Class: mail.ClassConfig, Op: op, Err: fmt.Errorf("the Graph app credentials were refused: %w", te)}
	}
	return &mail.Error{Class: mail.ClassProtocol, Op: op, Err: te}
}

// firstLine is the first line of an error description (Entra ID appends
// trace and correlation ids and a timestamp on further lines).
func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(s)
}

// tokenFailure classifies an error of the TokenSource.
func tokenFailure(ctx context.Context, err error) error {
	var me *mail.Error
	if errors.As(err, &me) {
		return err
	}
	if ctx.Err() != nil {
		return ctxError(ctx, "graph token", err)
	}
	return &mail.Error{Class: mail.ClassAuth, Op: "graph token", Err: err}
}

// invalidate asks src to drop tok after Graph refused it; true when src
// will hand out a new token.
func invalidate(src TokenSource, tok string) bool {
	a, ok := src.(*appTokens)
	return ok && a.invalidate(tok)
}

// tokenKind says what kind of token tok is, for error messages: "app-only"
// for AppTokens or a token with application roles, "delegated" for one with
// scopes, else "bearer". It reads the JWT's claims without verifying them
// and never reveals them.
func tokenKind(src TokenSource, tok string) string {
	if _, ok := src.(*appTokens); ok {
		return "app-only"
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || len(parts[1]) > 16<<10 {
		return "bearer"
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return "bearer"
	}
	var claims struct {
		Scp   string   `json:"scp"`
		Roles []string `json:"roles"`
		Idtyp string   `json:"idtyp"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return "bearer"
	}
	switch {
	case claims.Scp != "":
		return "delegated"
	case claims.Idtyp == "app" || len(claims.Roles) > 0:
		return "app-only"
	}
	return "bearer"
}
