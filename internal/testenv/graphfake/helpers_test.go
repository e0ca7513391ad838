// SPDX-License-Identifier: Apache-2.0

package graphfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	alice = "alice@contoso.example"
	bob   = "bob@contoso.example"
)

func mustOK(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

var msgSeq atomic.Int64

// testMessage builds a small RFC 5322 message.
func testMessage(subject, from, to string) []byte {
	return fmt.Appendf(nil, "From: Sender <%s>\r\nTo: %s\r\nSubject: %s\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\n"+
		"Message-ID: <%d.%d@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello,\r\n  %s.\r\n",
		from, to, subject, time.Now().UnixNano(), msgSeq.Add(1), to)
}

// client speaks plain HTTP to the fake with a bearer token.
type client struct {
	t     testing.TB
	s     *Server
	hc    *http.Client
	token string
}

// newFake starts a fake with alice's and bob's mailboxes and a client holding an
// app token from the token endpoint.
func newFake(t testing.TB, o Options) (*Server, *client) {
	t.Helper()
	s := NewT(t, o)
	mustOK(t, s.AddMailbox(alice))
	mustOK(t, s.AddMailbox(bob))
	c := &client{t: t, s: s, hc: &http.Client{Timeout: 10 * time.Second}}
	c.token = c.appToken()
	return s, c
}

// appToken runs the client-credentials grant with the secret in the form.
func (c *client) appToken() string {
	c.t.Helper()
	resp, body := c.tokenRequest(c.s.Tenant(), url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {c.s.ClientID()},
		"client_secret": {c.s.ClientSecret()},
		"scope":         {"https://graph.microsoft.com/.default"},
	})
	if resp.StatusCode != 200 {
		c.t.Fatalf("token: %d %s", resp.StatusCode, body)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	mustOK(c.t, json.Unmarshal(body, &tr))
	return tr.AccessToken
}

func (c *client) tokenRequest(tenant string, form url.Values) (*http.Response, []byte) {
	c.t.Helper()
	resp, err := c.hc.PostForm(c.s.LoginURL()+"/"+tenant+"/oauth2/v2.0/token", form)
	mustOK(c.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	mustOK(c.t, err)
	return resp, b
}

// do sends a request to path below the version root (or to an absolute URL);
// hdr holds header name/value pairs.
func (c *client) do(method, path string, body []byte, hdr ...string) (*http.Response, []byte) {
	c.t.Helper()
	u := path
	if !strings.HasPrefix(path, "http") {
		u = c.s.URL() + path
	}
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	mustOK(c.t, err)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.hc.Do(req)
	mustOK(c.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	mustOK(c.t, err)
	return resp, b
}

// call does a request that must answer want and decodes its JSON body (nil for
// an empty body).
func (c *client) call(want int, method, path string, body any, hdr ...string) map[string]any {
	c.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case []byte:
		raw = b
	case string:
		raw = []byte(b)
	default:
		var err error
		raw, err = json.Marshal(b)
		mustOK(c.t, err)
	}
	resp, rb := c.do(method, path, raw, hdr...)
	if resp.StatusCode != want {
		c.t.Fatalf("%s %s: HTTP %d, want %d: %s", method, path, resp.StatusCode, want, rb)
	}
	if len(rb) == 0 {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(rb, &m); err != nil {
		c.t.Fatalf("%s %s: %v: %s", method, path, err, rb)
	}
	return m
}

// errCode extracts error.code of a Graph error body.
func errCode(t testing.TB, b []byte) string {
	t.Helper()
	var e struct {
		Error struct {
			Code       string `json:"code"`
			Message    string `json:"message"`
			InnerError struct {
				Date            string `json:"date"`
				RequestID       string `json:"request-id"`
				ClientRequestID string `json:"client-request-id"`
			} `json:"innerError"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("not a Graph error: %s", b)
	}
	if e.Error.InnerError.RequestID == "" || e.Error.InnerError.Date == "" || e.Error.Message == "" {
		t.Errorf("error body lacks message or innerError: %s", b)
	}
	return e.Error.Code
}

func values(m map[string]any) []map[string]any {
	l, _ := m["value"].([]any)
	out := make([]map[string]any, len(l))
	for i, v := range l {
		out[i], _ = v.(map[string]any)
	}
	return out
}

func str(m map[string]any, k string) string { s, _ := m[k].(string); return s }

// receiver is a webhook endpoint for notifications and lifecycle events.
type receiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	// status answers notification POSTs (0: 202); validate controls the
	// validation handshake: "" echoes the token, "wrong" echoes garbage, "500"
	// fails.
	status   []int // consumed one per POST; then 202
	validate string
	delay    time.Duration
	posts    [][]map[string]any
	tokens   []string
}

func newReceiver(t testing.TB) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if tok := req.URL.Query().Get("validationToken"); tok != "" {
		r.mu.Lock()
		r.tokens = append(r.tokens, tok)
		mode := r.validate
		r.mu.Unlock()
		switch mode {
		case "500":
			http.Error(w, "no", http.StatusInternalServerError)
		case "wrong":
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, url.QueryEscape(tok))
		default:
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = io.WriteString(w, tok)
		}
		return
	}
	var n struct {
		Value []map[string]any `json:"value"`
	}
	_ = json.Unmarshal(body, &n)
	r.mu.Lock()
	r.posts = append(r.posts, n.Value)
	st := http.StatusAccepted
	if len(r.status) > 0 {
		st, r.status = r.status[0], r.status[1:]
	}
	d := r.delay
	r.mu.Unlock()
	time.Sleep(d)
	w.WriteHeader(st)
}

// items returns every notification item received so far.
func (r *receiver) items() []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]any
	for _, p := range r.posts {
		out = append(out, p...)
	}
	return out
}

func (r *receiver) tokenList() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.tokens...)
}

func (r *receiver) postCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.posts)
}

// subscribe creates a subscription that must succeed.
func (c *client) subscribe(notify, lifecycle, resource, changeType string) map[string]any {
	c.t.Helper()
	body := map[string]any{
		"changeType":         changeType,
		"notificationUrl":    notify,
		"resource":           resource,
		"expirationDateTime": time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339),
		"clientState":        "secret-state",
	}
	if lifecycle != "" {
		body["lifecycleNotificationUrl"] = lifecycle
	}
	return c.call(201, "POST", "/subscriptions", body)
}
