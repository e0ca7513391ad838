// SPDX-License-Identifier: Apache-2.0

package httpapi

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const testToken = "s3cret-Admin-Token"

// fakeCluster answers the cluster view.
type fakeCluster struct{}

func (fakeCluster) Nodes(context.Context) (any, error) { return []string{"n1"}, nil }
func (fakeCluster) Ready(context.Context) error        { return nil }

// adminServer serves the API with a stand-in dashboard that echoes the path
// it was given.
func adminServer(t *testing.T, token, prefix string, logs io.Writer) *httptest.Server {
	t.Helper()
	if logs == nil {
		logs = io.Discard
	}
	ui := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ui:"+r.URL.Path) })
	a, err := New(Options{Service: &fakeService{}, Cluster: fakeCluster{}, UI: ui, AdminToken: token, Pprof: true,
		PathPrefix: prefix, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return srv
}

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func get(t *testing.T, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestAdminTokenGuards(t *testing.T) {
	var logs bytes.Buffer
	srv := adminServer(t, testToken, "", &logs)
	bearer := map[string]string{"Authorization": "Bearer " + testToken}
	for _, path := range []string{"/ui/", "/ui/api/overview", "/api/cluster", "/debug/pprof/"} {
		resp, body := get(t, srv.URL+path, nil)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "EL_ADMIN_TOKEN") ||
			!strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s without token: %d %s", path, resp.StatusCode, body)
		}
		resp, body = get(t, srv.URL+path, map[string]string{"Authorization": "Bearer wrong"})
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "wrong admin token") {
			t.Errorf("%s with a wrong token: %d %s", path, resp.StatusCode, body)
		}
		resp, body = get(t, srv.URL+path, map[string]string{"Authorization": "Basic " + testToken})
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s with Basic: %d %s", path, resp.StatusCode, body)
		}
		if resp, body = get(t, srv.URL+path, bearer); resp.StatusCode != http.StatusOK {
			t.Errorf("%s with the token: %d %s", path, resp.StatusCode, body)
		}
	}
	if _, body := get(t, srv.URL+"/ui/api/overview", bearer); body != "ui:/api/overview" {
		t.Errorf("the dashboard got %q", body)
	}
	// The Creatio API and the health paths need no token.
	if resp, _ := get(t, srv.URL+"/api/listeners/status", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("status: %d", resp.StatusCode)
	}
	if strings.Contains(logs.String(), testToken) || strings.Contains(logs.String(), "wrong\"") {
		t.Errorf("a token reached the log:\n%s", logs.String())
	}
}

func TestAdminTokenQueryBecomesCookie(t *testing.T) {
	var logs bytes.Buffer
	srv := adminServer(t, testToken, "/exchangelistener", &logs)
	resp, _ := get(t, srv.URL+"/ExchangeListener/ui/?state=error&token="+testToken, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if loc := resp.Header.Get("Location"); loc != "./?state=error" {
		t.Errorf("Location %q: want the page without the token, relative (keeps prefix and case)", loc)
	}
	var c *http.Cookie
	for _, k := range resp.Cookies() {
		if k.Name == adminCookie {
			c = k
		}
	}
	if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "" || c.Value != cookieValue(testToken) || strings.Contains(c.Value, testToken) {
		t.Fatalf("cookie %+v", c)
	}
	cookie := map[string]string{"Cookie": adminCookie + "=" + c.Value}
	if resp, body := get(t, srv.URL+"/ExchangeListener/ui/", cookie); resp.StatusCode != http.StatusOK || body != "ui:/" {
		t.Errorf("page with the cookie: %d %q", resp.StatusCode, body)
	}
	if resp, _ := get(t, srv.URL+"/ui/api/overview", cookie); resp.StatusCode != http.StatusOK {
		t.Errorf("overview with the cookie: %d", resp.StatusCode)
	}
	if resp, _ := get(t, srv.URL+"/ui/", map[string]string{"Cookie": adminCookie + "=nope"}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a wrong cookie: %d", resp.StatusCode)
	}
	if resp, _ := get(t, srv.URL+"/ui/?token=nope", nil); resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Errorf("a wrong ?token=: %d %v", resp.StatusCode, resp.Cookies())
	}
	// The query token is good for the dashboard only.
	if resp, _ := get(t, srv.URL+"/api/cluster?token="+testToken, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("cluster with ?token=: %d", resp.StatusCode)
	}
	if strings.Contains(logs.String(), testToken) {
		t.Errorf("the token reached the log:\n%s", logs.String())
	}
}

func TestNoAdminTokenConfigured(t *testing.T) {
	srv := adminServer(t, "", "", nil)
	for _, path := range []string{"/ui/", "/ui/app.js", "/api/cluster", "/debug/pprof/"} {
		if resp, body := get(t, srv.URL+path, nil); resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d %s", path, resp.StatusCode, body)
		}
	}
	if resp, _ := get(t, srv.URL+"/ui", nil); resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "ui/" {
		t.Errorf("/ui: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, body := get(t, srv.URL+"/ui/?token=anything", nil); resp.StatusCode != http.StatusOK || body != "ui:/" {
		t.Errorf("?token= without a configured token: %d %q", resp.StatusCode, body)
	}
}

func TestTokenEqual(t *testing.T) {
	if !tokenEqual("abc", "abc") || tokenEqual("abc", "abd") || tokenEqual("", "abc") || tokenEqual("abcd", "abc") {
		t.Error("tokenEqual")
	}
}
