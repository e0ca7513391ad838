// SPDX-License-Identifier: Apache-2.0

package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/httpapi"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/service"
)

var now = time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)

type fakeSource struct {
	inv   service.Inventory
	err   error
	calls atomic.Int32
}

func (f *fakeSource) Inventory(context.Context) (service.Inventory, error) {
	f.calls.Add(1)
	return f.inv, f.err
}

func sample() service.Inventory {
	hist := &mail.HistoryProgress{State: mail.HistoryRunning, Filter: "since 2026-05-01", Folder: "INBOX", Found: 40, Delivered: 12,
		Started: now.Add(-time.Minute)}
	return service.Inventory{Mode: "single",
		Nodes: []service.NodeInfo{{Capacity: 10, Owned: 3, Self: true}},
		Mailboxes: []service.MailboxInfo{
			{ID: "b", Address: "bob@example.com", Kind: mail.ServerIMAP, History: hist, Status: &mail.Status{State: mail.StateExists,
				Since: now.Add(-time.Hour), LastEventAt: now.Add(-90 * time.Second), Delivered: 7, Folders: []string{"INBOX", "Projects"}, Push: "idle"}},
			{ID: "a", Address: "alice@example.com", Kind: mail.ServerIMAP, Status: &mail.Status{State: mail.StateExists, Since: now.Add(-time.Hour)}},
			{ID: "c", Address: "carol@example.com", Kind: mail.ServerIMAP, Status: &mail.Status{State: mail.StateError, ErrorClass: "auth",
				LastError: "the server rejected the login", RetryAt: now.Add(5 * time.Minute), Since: now.Add(-time.Minute)}},
			{ID: "d", Address: "dave@example.com", Kind: mail.ServerExchange}, // registered, run nowhere
		}}
}

func newHandler(t *testing.T, src Source) *httptest.Server {
	t.Helper()
	h, err := New(Options{Source: src, Node: "node-1", Version: "1.0", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func overview(t *testing.T, srv *httptest.Server, query string) (int, Overview, string) {
	t.Helper()
	resp, err := http.Get(srv.URL + "/api/overview" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var o Overview
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &o); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("Content-Type %q", ct)
		}
	}
	return resp.StatusCode, o, string(b)
}

func ids(o Overview) string {
	var s []string
	for _, m := range o.Mailboxes {
		s = append(s, m.ID)
	}
	return strings.Join(s, ",")
}

func TestOverviewShape(t *testing.T) {
	srv := newHandler(t, &fakeSource{inv: sample()})
	code, o, body := overview(t, srv, "")
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	// Errors first, then connecting, closed, exists; by address within.
	if got := ids(o); got != "c,d,a,b" {
		t.Errorf("order %s", got)
	}
	if o.Total != 4 || o.Matched != 4 || o.Limit != DefaultLimit || o.Mode != "single" || o.Node != "node-1" ||
		o.Counts["exists"] != 2 || o.Counts["error"] != 1 || o.Counts["closed"] != 1 || o.Counts["connecting"] != 0 {
		t.Errorf("summary %+v", o)
	}
	if len(o.Nodes) != 1 || o.Nodes[0].ID != "node-1" || o.Nodes[0].Load != 0.3 || o.Nodes[0].States["exists"] != 2 ||
		o.Nodes[0].States["error"] != 1 || !o.Nodes[0].Self {
		t.Errorf("nodes %+v", o.Nodes)
	}
	c, d, b := o.Mailboxes[0], o.Mailboxes[1], o.Mailboxes[3]
	if c.State != "error" || c.ErrorClass != "auth" || c.LastError == "" || c.RetryAt == nil || !c.RetryAt.Equal(now.Add(5*time.Minute)) {
		t.Errorf("error row %+v", c)
	}
	if d.State != "closed" || d.Kind != "exchange" || d.Since != nil {
		t.Errorf("unplaced row %+v", d)
	}
	if b.LastEventAgeSeconds == nil || *b.LastEventAgeSeconds != 90 || b.Delivered != 7 || len(b.Folders) != 2 || b.Push != "idle" ||
		b.History == nil || b.History.Found != 40 || b.History.Folder != "INBOX" || b.ErrorClass != "" {
		t.Errorf("exists row %+v", b)
	}
	// Nothing secret is part of the shape: the raw JSON has no credentials fields.
	for _, k := range []string{"Password", "AccessToken", "UserName", "Endpoint"} {
		if strings.Contains(body, k) {
			t.Errorf("overview has %s", k)
		}
	}
}

func TestOverviewFilterAndPaging(t *testing.T) {
	srv := newHandler(t, &fakeSource{inv: sample()})
	for q, want := range map[string]string{
		"?state=exists":             "a,b",
		"?state=error,closed":       "c,d",
		"?q=ALICE":                  "a",
		"?q=rejected":               "c", // error text
		"?q=auth&state=exists":      "",
		"?limit=2":                  "c,d",
		"?limit=2&offset=2":         "a,b",
		"?offset=10":                "",
		"?q=%20bob@example.com%20":  "b",
		"?state=exists&limit=1":     "a",
		"?state=EXISTS&q=example.c": "a,b",
	} {
		code, o, body := overview(t, srv, q)
		if code != http.StatusOK || ids(o) != want {
			t.Errorf("%s: %d %s, want %s (%s)", q, code, ids(o), want, body)
		}
		if o.Mailboxes == nil {
			t.Errorf("%s: Mailboxes is null, want []", q)
		}
	}
	if _, o, _ := overview(t, srv, "?state=exists&limit=1"); o.Matched != 2 || o.Total != 4 {
		t.Errorf("matched %d total %d", o.Matched, o.Total)
	}
	for _, q := range []string{"?limit=0", "?limit=5001", "?limit=x", "?offset=-1", "?state=sleeping", "?q=" + strings.Repeat("x", 300)} {
		if code, _, body := overview(t, srv, q); code != http.StatusBadRequest || !strings.Contains(body, `"Code":400`) {
			t.Errorf("%s: %d %s", q, code, body)
		}
	}
}

func TestOverviewCachesTheInventory(t *testing.T) {
	src := &fakeSource{inv: sample()}
	clock := now
	h, err := New(Options{Source: src, Now: func() time.Time { return clock }, CacheFor: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	get := func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/overview?q=a", nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
	get()
	get()
	if n := src.calls.Load(); n != 1 {
		t.Errorf("%d inventory reads within the cache time, want 1", n)
	}
	clock = clock.Add(2 * time.Second)
	get()
	if n := src.calls.Load(); n != 2 {
		t.Errorf("%d inventory reads, want 2", n)
	}
}

func TestOverviewErrors(t *testing.T) {
	for err, want := range map[error]int{
		fmt.Errorf("%w: redis down", httpapi.ErrUnavailable): http.StatusServiceUnavailable,
		httpapi.ErrUnsupported:                               http.StatusNotImplemented,
		fmt.Errorf("boom with details"):                      http.StatusInternalServerError,
	} {
		srv := newHandler(t, &fakeSource{err: err})
		code, _, body := overview(t, srv, "")
		if code != want || (want == 500 && strings.Contains(body, "details")) {
			t.Errorf("%v: %d %s", err, code, body)
		}
	}
}

func TestStaticFiles(t *testing.T) {
	srv := newHandler(t, &fakeSource{inv: sample()})
	for path, ctype := range map[string]string{"/": "text/html", "/index.html": "text/html", "/app.js": "text/javascript", "/style.css": "text/css"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), ctype) || len(b) < 100 {
			t.Errorf("%s: %d %s %d bytes", path, resp.StatusCode, resp.Header.Get("Content-Type"), len(b))
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		// Nothing is loaded from elsewhere: the page works offline.
		for _, ext := range []string{"http://", "https://", "//cdn", "@import"} {
			if strings.Contains(string(b), ext) {
				t.Errorf("%s refers to %s", path, ext)
			}
		}
	}
	for _, path := range []string{"/nope.js", "/static/app.js", "/api/other"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d", path, resp.StatusCode)
		}
	}
	resp, err := http.Post(srv.URL+"/api/overview", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", resp.StatusCode)
	}
}

// 10,000 mailboxes: a filtered page is built well within a refresh.
func BenchmarkOverview10k(b *testing.B) {
	inv := service.Inventory{Mode: "single", Nodes: []service.NodeInfo{{Capacity: 10000, Owned: 10000, Self: true}}}
	for i := range 10000 {
		st := &mail.Status{State: mail.StateExists, Since: now, LastEventAt: now.Add(-time.Minute), Folders: []string{"INBOX"}}
		if i%100 == 0 {
			st = &mail.Status{State: mail.StateError, ErrorClass: "network", LastError: "connection refused", RetryAt: now}
		}
		inv.Mailboxes = append(inv.Mailboxes, service.MailboxInfo{ID: mail.MailboxID(fmt.Sprintf("id-%05d", i)),
			Address: fmt.Sprintf("user%05d@example.com", i), Kind: mail.ServerIMAP, Status: st})
	}
	h, _ := New(Options{Source: &fakeSource{inv: inv}, CacheFor: time.Hour})
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/overview?q=user0&limit=500", nil))
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}
