// SPDX-License-Identifier: Apache-2.0

package graph

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

func TestDeltaRound(t *testing.T) {
	var base string
	var n atomic.Int64
	c, srv := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if !strings.Contains(r.Header.Get("Prefer"), "odata.maxpagesize=50") || !strings.Contains(r.Header.Get("Prefer"), `IdType="ImmutableId"`) {
			t.Errorf("Prefer = %q", r.Header.Get("Prefer"))
		}
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			t.Errorf("Authorization = %q", r.Header.Get("Authorization"))
		}
		q := r.URL.Query()
		switch {
		case r.URL.Path == "/v1.0/users/u@x.com/mailFolders/inbox/messages/delta" && q.Get("$deltatoken") == "" && q.Get("$skiptoken") == "":
			if got := q.Get("$filter"); got != "receivedDateTime ge 2026-01-02T03:04:05Z" {
				t.Errorf("$filter = %q", got)
			}
			if got := q.Get("$select"); got != "id,receivedDateTime,internetMessageId" {
				t.Errorf("$select = %q", got)
			}
			if _, ok := q["changeType"]; ok {
				t.Errorf("changeType is forced: %q", r.URL.RawQuery)
			}
			if strings.Contains(r.URL.RawQuery, "+") {
				t.Errorf("spaces encoded as +: %q", r.URL.RawQuery)
			}
			writeJSON(w, 200, map[string]any{
				"value": []any{
					map[string]any{"id": "m1", "receivedDateTime": "2026-01-03T00:00:00Z", "internetMessageId": "<a@b>"},
				},
				"@odata.nextLink": base + "/v1.0/users/u@x.com/mailFolders/inbox/messages/delta?$skiptoken=S1",
			})
		case q.Get("$skiptoken") == "S1":
			writeJSON(w, 200, map[string]any{
				"value": []any{
					map[string]any{"id": "m0", "@removed": map[string]any{"reason": "deleted"}},
					map[string]any{"id": "m2", "receivedDateTime": "2026-01-04T00:00:00.1234567Z"},
				},
				"@odata.deltaLink": base + "/v1.0/users/u@x.com/mailFolders/inbox/messages/delta?$deltatoken=D1",
			})
		case q.Get("$deltatoken") == "D1":
			writeJSON(w, 200, map[string]any{"value": []any{}, "@odata.deltaLink": base + "/v1.0/users/u@x.com/mailFolders/inbox/messages/delta?$deltatoken=D2"})
		default:
			t.Errorf("unexpected %s", r.URL)
			graphError(w, 400, "BadRequest", "?")
		}
	}))
	base = srv.URL
	ctx := t.Context()
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	p, err := c.Delta(ctx, "u@x.com", "inbox", "", since, 50)
	if err != nil {
		t.Fatal(err)
	}
	if p.Next == "" || p.DeltaLink != "" || len(p.Messages) != 1 || p.Messages[0].InternetMessageID != "<a@b>" ||
		!p.Messages[0].Received.Equal(time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("page 1 %+v", p)
	}
	p, err = c.Delta(ctx, "u@x.com", "inbox", p.Next, since, 50)
	if err != nil {
		t.Fatal(err)
	}
	if p.DeltaLink == "" || p.Next != "" || len(p.Messages) != 2 {
		t.Fatalf("page 2 %+v", p)
	}
	if m := p.Messages[0]; !m.Removed || m.ID != "m0" || !m.Received.IsZero() {
		t.Errorf("removed message %+v", m)
	}
	if m := p.Messages[1]; m.Removed || m.Received.Nanosecond() != 123456700 {
		t.Errorf("message %+v", m)
	}
	p, err = c.Delta(ctx, "u@x.com", "inbox", p.DeltaLink, time.Time{}, 50)
	if err != nil || len(p.Messages) != 0 || !strings.HasSuffix(p.DeltaLink, "D2") {
		t.Fatalf("next check %+v, %v", p, err)
	}
	if n.Load() != 3 {
		t.Fatalf("%d requests", n.Load())
	}
}

func TestDeltaResetGone(t *testing.T) {
	var base string
	loc := ""
	c, srv := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", loc)
		graphError(w, http.StatusGone, "", "")
	}))
	base = srv.URL
	link := base + "/v1.0/users/u/mailFolders/inbox/messages/delta?$deltatoken=old"

	loc = base + "/v1.0/users/u/mailFolders/inbox/messages/delta?$select=id"
	_, err := c.Delta(t.Context(), "u", "inbox", link, time.Time{}, 0)
	if !errors.Is(err, ErrSyncReset) {
		t.Fatalf("want ErrSyncReset: %v", err)
	}
	requireClass(t, err, mail.ClassProtocol)
	var re *ResetError
	if !errors.As(err, &re) || re.Status != 410 || re.Location != loc {
		t.Fatalf("ResetError %+v", re)
	}

	loc = "https://evil.example/v1.0/users/u/mailFolders/inbox/messages/delta"
	_, err = c.Delta(t.Context(), "u", "inbox", link, time.Time{}, 0)
	if !errors.As(err, &re) || re.Location != "" {
		t.Fatalf("a foreign Location is kept: %+v", re)
	}
}

func TestDeltaResetSyncStateCode(t *testing.T) {
	c, _ := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		graphError(w, 400, "SyncStateNotFound", "The sync state was not found.")
	}))
	_, err := c.Delta(t.Context(), "u", "inbox", "", time.Time{}, 0)
	var re *ResetError
	if !errors.Is(err, ErrSyncReset) || !errors.As(err, &re) || re.Code != "SyncStateNotFound" {
		t.Fatalf("want a reset: %v", err)
	}
}

func TestDeltaForeignLinksRefused(t *testing.T) {
	var other hits
	otherSrv := httptest.NewServer(other.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the other host got %s with Authorization %q", r.URL, r.Header.Get("Authorization"))
	})))
	defer otherSrv.Close()
	foreign := otherSrv.URL + "/v1.0/users/u/mailFolders/inbox/messages/delta?$skiptoken=x"
	c, srv := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"value": []any{}, "@odata.nextLink": foreign})
	}))

	// A link handed back by the server is refused when read.
	_, err := c.Delta(t.Context(), "u", "inbox", "", time.Time{}, 0)
	if !errors.Is(err, ErrLinkRefused) {
		t.Fatalf("want ErrLinkRefused: %v", err)
	}
	requireClass(t, err, mail.ClassProtocol)

	// A stored link pointing elsewhere is never followed; nor are other
	// schemes, credentials, or paths outside the version root.
	u, _ := url.Parse(srv.URL)
	for _, link := range []string{
		foreign,
		"https://" + u.Host + "/v1.0/users/u/mailFolders/inbox/messages/delta",
		"http://user:pw@" + u.Host + "/v1.0/users/u/mailFolders/inbox/messages/delta",
		srv.URL + "/beta/users/u/mailFolders/inbox/messages/delta",
		srv.URL + "/v1.0x/users",
		"//" + otherSrv.Listener.Addr().String() + "/v1.0/x",
		srv.URL + "/v1.0/" + strings.Repeat("a", 17<<10),
	} {
		_, err := c.Delta(t.Context(), "u", "inbox", link, time.Time{}, 0)
		if !errors.Is(err, ErrLinkRefused) {
			t.Errorf("%.80s: want ErrLinkRefused, got %v", link, err)
		}
	}
	if other.n.Load() != 0 {
		t.Fatalf("the other host received %d requests", other.n.Load())
	}
}

func TestDeltaPageShape(t *testing.T) {
	var body map[string]any
	var base string
	c, srv := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, body)
	}))
	base = srv.URL + "/v1.0/x"
	for name, b := range map[string]map[string]any{
		"no link":    {"value": []any{}},
		"both links": {"value": []any{}, "@odata.nextLink": base, "@odata.deltaLink": base},
		"no id":      {"value": []any{map[string]any{"receivedDateTime": "2026-01-01T00:00:00Z"}}, "@odata.deltaLink": base},
		"not a list": {"value": "x", "@odata.deltaLink": base},
	} {
		body = b
		_, err := c.Delta(t.Context(), "u", "inbox", "", time.Time{}, 0)
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		requireClass(t, err, mail.ClassProtocol)
	}
}

func TestThrottledRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	retry := ""
	c, _ := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", retry)
		graphError(w, http.StatusTooManyRequests, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.")
	}))
	c.now = func() time.Time { return now }
	for _, tc := range []struct {
		header string
		want   time.Duration
	}{
		{"3", 3 * time.Second},
		{"2.128", 2128 * time.Millisecond},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"", 0},
	} {
		retry = tc.header
		_, err := c.Delta(t.Context(), "u", "inbox", "", time.Time{}, 0)
		if !errors.Is(err, ErrThrottled) {
			t.Fatalf("want ErrThrottled: %v", err)
		}
		requireClass(t, err, mail.ClassProtocol)
		d, ok := BackOff(err)
		if d != tc.want || ok != (tc.want > 0) {
			t.Errorf("Retry-After %q: BackOff = %v, %v; want %v", tc.header, d, ok, tc.want)
		}
		requireNoSecret(t, err, testToken)
	}
}

func TestRetryAfterParse(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		"0":                             0,
		"-5":                            0,
		"NaN":                           0,
		"soon":                          0,
		"10":                            10 * time.Second,
		" 1.5 ":                         1500 * time.Millisecond,
		"99999":                         time.Hour,
		"Sun, 01 Mar 2026 10:00:30 GMT": 30 * time.Second,
		"Sun, 01 Mar 2026 09:00:00 GMT": 0,
		"Mon, 02 Mar 2026 10:00:00 GMT": time.Hour,
	} {
		if got := retryAfter(v, now); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestSearchPages(t *testing.T) {
	var base string
	wantNoFilter := false
	c, srv := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("$skiptoken") == "" {
			if q.Get("$orderby") != "receivedDateTime asc" || q.Get("$top") != "2" || (q.Get("$filter") == "") != wantNoFilter {
				t.Errorf("query %q", r.URL.RawQuery)
			}
			writeJSON(w, 200, map[string]any{
				"value":           []any{map[string]any{"id": "a"}, map[string]any{"id": "b"}},
				"@odata.nextLink": base + "/v1.0/users/u/mailFolders/inbox/messages?$skiptoken=2",
			})
			return
		}
		writeJSON(w, 200, map[string]any{"value": []any{map[string]any{"id": "c"}}})
	}))
	base = srv.URL
	var ids []string
	err := c.Search(t.Context(), "u", "inbox", time.Unix(1e9, 0), 2, func(ms []Message) error {
		for _, m := range ms {
			ids = append(ids, m.ID)
		}
		return nil
	})
	if err != nil || strings.Join(ids, ",") != "a,b,c" {
		t.Fatalf("Search: %v, %v", ids, err)
	}
	stop := errors.New("stop")
	wantNoFilter = true
	if err := c.Search(t.Context(), "u", "inbox", time.Time{}, 2, func([]Message) error { return stop }); err != stop {
		t.Fatalf("fn's error not returned as it is: %v", err)
	}
}
