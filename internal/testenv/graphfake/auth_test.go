// SPDX-License-Identifier: Apache-2.0

package graphfake

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"
)

func TestTokenEndpoint(t *testing.T) {
	s, c := newFake(t, Options{})

	// The issued token is JWT-shaped with Graph's audience and the app's roles.
	parts := strings.Split(c.token, ".")
	if len(parts) != 3 {
		t.Fatalf("token not JWT-shaped: %q", c.token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	mustOK(t, err)
	var cl claims
	mustOK(t, json.Unmarshal(raw, &cl))
	if cl.Aud != "https://graph.microsoft.com" || cl.Tid != s.Tenant() || cl.AppID != s.ClientID() || len(cl.Roles) == 0 || cl.Exp <= time.Now().Unix() {
		t.Errorf("claims: %+v", cl)
	}
	resp, body := c.tokenRequest(s.TenantDomain(), url.Values{"grant_type": {"client_credentials"}, "client_id": {s.ClientID()},
		"client_secret": {s.ClientSecret()}, "scope": {"https://graph.microsoft.com/.default"}})
	var tr map[string]any
	mustOK(t, json.Unmarshal(body, &tr))
	if resp.StatusCode != 200 || tr["token_type"] != "Bearer" || tr["expires_in"] != float64(3599) || tr["ext_expires_in"] != float64(3599) {
		t.Errorf("tenant domain: %d %s", resp.StatusCode, body)
	}

	// golang.org/x/oauth2 sends the secret with HTTP Basic authentication first.
	cc := clientcredentials.Config{ClientID: s.ClientID(), ClientSecret: s.ClientSecret(), TokenURL: s.TokenURL(),
		Scopes: []string{"https://graph.microsoft.com/.default"}}
	tok, err := cc.Token(context.Background())
	mustOK(t, err)
	c2 := &client{t: t, s: s, hc: http.DefaultClient, token: tok.AccessToken}
	c2.call(200, "GET", "/users/"+alice+"/mailFolders", nil)

	for _, tc := range []struct {
		name, tenant string
		form         url.Values
		status       int
		code         string
		aadsts       float64
	}{
		{"bad secret", s.Tenant(), url.Values{"grant_type": {"client_credentials"}, "client_id": {s.ClientID()}, "client_secret": {"nope"},
			"scope": {"https://graph.microsoft.com/.default"}}, 401, "invalid_client", 7000215},
		{"no secret", s.Tenant(), url.Values{"grant_type": {"client_credentials"}, "client_id": {s.ClientID()},
			"scope": {"https://graph.microsoft.com/.default"}}, 401, "invalid_client", 7000216},
		{"unknown client", s.Tenant(), url.Values{"grant_type": {"client_credentials"}, "client_id": {newGUID()}, "client_secret": {"x"},
			"scope": {"https://graph.microsoft.com/.default"}}, 400, "unauthorized_client", 700016},
		{"unknown tenant", newGUID(), url.Values{"grant_type": {"client_credentials"}, "client_id": {s.ClientID()}, "client_secret": {s.ClientSecret()},
			"scope": {"https://graph.microsoft.com/.default"}}, 400, "invalid_request", 90002},
		{"bad scope", s.Tenant(), url.Values{"grant_type": {"client_credentials"}, "client_id": {s.ClientID()}, "client_secret": {s.ClientSecret()},
			"scope": {"Mail.Read"}}, 400, "invalid_scope", 1002012},
		{"bad grant", s.Tenant(), url.Values{"grant_type": {"password"}}, 400, "unsupported_grant_type", 70003},
	} {
		resp, body := c.tokenRequest(tc.tenant, tc.form)
		var e map[string]any
		mustOK(t, json.Unmarshal(body, &e))
		codes, _ := e["error_codes"].([]any)
		if resp.StatusCode != tc.status || e["error"] != tc.code || len(codes) != 1 || codes[0] != tc.aadsts ||
			!strings.HasPrefix(str(e, "error_description"), "AADSTS") {
			t.Errorf("%s: %d %s", tc.name, resp.StatusCode, body)
		}
	}
	// The secret in Basic authentication, as x/oauth2 sends it, is checked too.
	bad := clientcredentials.Config{ClientID: s.ClientID(), ClientSecret: "wrong", TokenURL: s.TokenURL(),
		Scopes: []string{"https://graph.microsoft.com/.default"}}
	if _, err := bad.Token(context.Background()); err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Errorf("bad secret via x/oauth2: %v", err)
	}
	if st := s.Stats(); st.TokenRequests < 9 || st.Requests != 1 {
		t.Errorf("stats: %+v", st)
	}
}

func TestAPIAuthentication(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, c := newFake(t, Options{Now: clock})

	// No token, a garbled one, a forged one.
	for _, tok := range []string{"", "garbage", c.token[:len(c.token)-4] + "AAAA"} {
		c2 := &client{t: t, s: s, hc: c.hc, token: tok}
		resp, body := c2.do("GET", "/users/"+alice+"/mailFolders", nil)
		if resp.StatusCode != 401 || errCode(t, body) != "InvalidAuthenticationToken" || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("token %q: %d %s", tok, resp.StatusCode, body)
		}
	}
	// A token for another resource.
	resp, body := c.tokenRequest(s.Tenant(), url.Values{"grant_type": {"client_credentials"}, "client_id": {s.ClientID()},
		"client_secret": {s.ClientSecret()}, "scope": {"https://outlook.office365.com/.default"}})
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	mustOK(t, json.Unmarshal(body, &tr))
	c2 := &client{t: t, s: s, hc: c.hc, token: tr.AccessToken}
	if resp, body := c2.do("GET", "/users/"+alice, nil); resp.StatusCode != 401 || !strings.Contains(string(body), "audience") {
		t.Errorf("outlook token: %d %s", resp.StatusCode, body)
	}

	// Expiry follows Options.Now.
	c.call(200, "GET", "/users/"+alice, nil)
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	resp, body = c.do("GET", "/users/"+alice, nil)
	if resp.StatusCode != 401 || !strings.Contains(string(body), "Lifetime validation failed, the token is expired.") {
		t.Errorf("expired: %d %s", resp.StatusCode, body)
	}
	c.token = c.appToken()

	// Delegated tokens: own mailbox and /me only.
	d := &client{t: t, s: s, hc: c.hc, token: s.DelegatedToken(alice, []string{"Mail.ReadWrite", "User.Read"}, 0)}
	me := d.call(200, "GET", "/me", nil)
	if str(me, "userPrincipalName") != alice || str(me, "id") != s.UserID(alice) {
		t.Errorf("/me: %v", me)
	}
	d.call(200, "GET", "/me/mailFolders('inbox')", nil)
	d.call(200, "GET", "/users/"+strings.ToUpper(alice)+"/mailFolders/inbox", nil)
	if resp, body := d.do("GET", "/users/"+bob+"/mailFolders", nil); resp.StatusCode != 403 || errCode(t, body) != "ErrorAccessDenied" {
		t.Errorf("delegated other user: %d %s", resp.StatusCode, body)
	}
	if resp, body := d.do("POST", "/me/sendMail", []byte(`{"message":{}}`)); resp.StatusCode != 403 {
		t.Errorf("delegated without Mail.Send: %d %s", resp.StatusCode, body)
	}
	if resp, body := c.do("GET", "/me", nil); resp.StatusCode != 400 || errCode(t, body) != "BadRequest" {
		t.Errorf("/me with app token: %d %s", resp.StatusCode, body)
	}
	if resp, body := c.do("GET", "/users/nobody@contoso.example/messages", nil); resp.StatusCode != 404 || errCode(t, body) != "ErrorInvalidUser" {
		t.Errorf("unknown user: %d %s", resp.StatusCode, body)
	}
	// Request ids: client-request-id is echoed.
	resp, _ = c.do("GET", "/users/"+alice, nil, "client-request-id", "abc-123")
	if resp.Header.Get("client-request-id") != "abc-123" || !isGUID(resp.Header.Get("request-id")) {
		t.Errorf("request ids: %v", resp.Header)
	}
}

func TestRolesChecked(t *testing.T) {
	s, c := newFake(t, Options{Roles: []string{"Mail.ReadBasic.All"}})
	c.call(200, "GET", "/users/"+alice+"/mailFolders/inbox/messages", nil)
	id, err := s.Deliver(alice, "inbox", testMessage("x", bob, alice))
	mustOK(t, err)
	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/users/" + alice + "/messages/" + id + "/$value", ""},
		{"PATCH", "/users/" + alice + "/messages/" + id, `{"isRead":true}`},
		{"POST", "/users/" + alice + "/sendMail", `{"message":{}}`},
	} {
		var b []byte
		if tc.body != "" {
			b = []byte(tc.body)
		}
		if resp, body := c.do(tc.method, tc.path, b); resp.StatusCode != 403 || errCode(t, body) != "ErrorAccessDenied" {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, resp.StatusCode, body)
		}
	}
}

func TestTLSAndRouting(t *testing.T) {
	s := NewT(t, Options{TLS: true})
	mustOK(t, s.AddMailbox(alice))
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.CertPEM()) || !strings.HasPrefix(s.URL(), "https://") {
		t.Fatal("no TLS certificate")
	}
	c := &client{t: t, s: s, hc: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
	c.token = c.appToken()
	c.call(200, "GET", "/users/"+alice+"/mailFolders", nil)
	if resp, body := c.do("GET", "/users/"+alice+"/calendars", nil); resp.StatusCode != 400 ||
		!strings.Contains(string(body), "Resource not found for the segment 'calendars'.") {
		t.Errorf("unknown segment: %d %s", resp.StatusCode, body)
	}
	if resp, body := c.do("DELETE", "/users/"+alice+"/mailFolders", nil); resp.StatusCode != 405 || resp.Header.Get("Allow") == "" {
		t.Errorf("wrong method: %d %s", resp.StatusCode, body)
	}
	big := make([]byte, DefaultMaxRequestBytes+1)
	if resp, _ := c.do("POST", "/users/"+alice+"/sendMail", big, "Content-Type", "text/plain"); resp.StatusCode != 413 {
		t.Errorf("oversized body: %d", resp.StatusCode)
	}
}
