// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/config"
)

// oauthProvider is an OAuth 2.0 token endpoint (RFC 6749 section 6) that
// rotates refresh tokens as Microsoft's does: each redeemed refresh token
// is spent and a new one comes with the access token. The access tokens it
// issues are made valid at the introspection server Dovecot asks.
type oauthProvider struct {
	ts      *tokenServer
	user    string
	mu      sync.Mutex
	refresh string   // the one refresh token that works
	grants  []string // refresh tokens redeemed, in order
	srv     *httptest.Server
}

func newOAuthProvider(t *testing.T, ts *tokenServer, user string) *oauthProvider {
	p := &oauthProvider{ts: ts, user: user, refresh: "rt-0"}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		id, secret, ok := r.BasicAuth()
		if !ok {
			id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		got := r.PostForm.Get("refresh_token")
		if r.PostForm.Get("grant_type") != "refresh_token" || id != "client-1" || secret != "client-secret-1" || got != p.refresh {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_grant","error_description":"the refresh token is not valid"}`))
			return
		}
		p.grants = append(p.grants, got)
		n := len(p.grants)
		access := fmt.Sprintf("access-%d", n)
		p.refresh = fmt.Sprintf("rt-%d", n)
		ts.set(access, user, true)
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": access, "token_type": "Bearer", "expires_in": 3600,
			"refresh_token": p.refresh})
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *oauthProvider) redeemed() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.grants...)
}

// An IMAP account with OAuth through /v1/ against Dovecot's oauth2 passdb:
// the first access token is fetched at registration; when the server
// rejects the token on a reconnect, the service redeems the rotated refresh
// token itself and the subscription goes on, with no auth error event.
func TestNativeOAuthAccount(t *testing.T) {
	const apiToken = "e2e-native-api-token-oauth0001"
	ts := newTokenServer(t)
	e := newEnvWith(t, envOptions{trustCA: true, dovecotExtra: dovecotOAuth(t, ts), tweak: func(c *config.Config) {
		c.APITokens = config.Secret("e2e:" + apiToken)
		c.TokenRefreshWait = 10 * time.Second
	}})
	prov := newOAuthProvider(t, ts, "alice@example.com")
	recv, secret, hookURL := newWebhookReceiver(t)
	host, port, _ := strings.Cut(e.dc.IMAPAddr, ":")
	oauth := func(refresh string) map[string]any {
		return map[string]any{"tokenUrl": prov.srv.URL + "/token", "clientId": "client-1", "clientSecret": "client-secret-1",
			"refreshToken": refresh, "scopes": []string{"https://mail.example.com/"}}
	}
	account := func(refresh string) string {
		b, _ := json.Marshal(map[string]any{
			"id": "alice-oauth", "email": "alice@example.com", "folders": []string{"INBOX"},
			"imap":    map[string]any{"host": host, "port": json.Number(port), "secure": "none", "oauth2": oauth(refresh)},
			"webhook": map[string]any{"url": hookURL, "secret": secret},
		})
		return string(b)
	}
	// A refresh token the provider refuses: a clear 422 now, no account.
	if code, out := apiJSON(t, e.base, apiToken, "POST", "/v1/accounts", account("rt-stolen")); code != http.StatusUnprocessableEntity ||
		!strings.Contains(fmt.Sprint(out["error"]), "invalid_grant") {
		t.Fatalf("refused grant: %d %v", code, out)
	}
	if code, out := apiJSON(t, e.base, apiToken, "POST", "/v1/accounts", account("rt-0")); code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, out)
	}
	isState := func(state string) func(map[string]any) bool {
		return func(ev map[string]any) bool {
			st, _ := ev["state"].(map[string]any)
			return ev["type"] == "account.state" && st["state"] == state
		}
	}
	recv.waitFor("account.state exists", 1, 15*time.Second, isState("exists"))
	withSubject := func(subject string) func(map[string]any) bool {
		return func(ev map[string]any) bool {
			m, _ := ev["message"].(map[string]any)
			return ev["type"] == "message.new" && m["subject"] == subject
		}
	}
	e.appendMail("alice@example.com", "alicepw", "INBOX", simpleMail("via oauth", "oauth-n1@example.com"))
	recv.waitFor("message.new", 1, 15*time.Second, withSubject("via oauth"))

	// The access token is revoked and the server restarts: the reconnect is
	// refused, the service redeems rt-1 (rotated at registration) and goes on.
	ts.set("access-1", "", false)
	if err := e.dc.Restart(); err != nil {
		t.Fatal(err)
	}
	e.appendMail("alice@example.com", "alicepw", "INBOX", simpleMail("after renewal", "oauth-n2@example.com"))
	recv.waitFor("message.new after renewal", 1, 30*time.Second, withSubject("after renewal"))
	if got := prov.redeemed(); strings.Join(got, ",") != "rt-0,rt-1" {
		t.Errorf("refresh tokens redeemed: %v, want rt-0 then the rotated rt-1", got)
	}
	recv.mu.Lock()
	for _, ev := range recv.events { // the restart itself may show as a connect error
		if st, _ := ev["state"].(map[string]any); isState("error")(ev) && st["errorClass"] == "auth" {
			t.Errorf("an auth error event although the token was renewed: %v", ev)
		}
	}
	recv.mu.Unlock()
	code, acc := apiJSON(t, e.base, apiToken, "GET", "/v1/accounts/alice-oauth", "")
	if imap, _ := acc["imap"].(map[string]any); code != http.StatusOK || imap["oauth2"] == nil || acc["state"] != "exists" {
		t.Fatalf("account: %d %v", code, acc)
	}
	for _, s := range []string{"client-secret-1", "rt-1", "rt-2", "access-2"} {
		if strings.Contains(fmt.Sprint(acc), s) || strings.Contains(e.logs.String(), s) {
			t.Errorf("the account or the log shows the secret %q", s)
		}
	}
}
