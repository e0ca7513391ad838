// SPDX-License-Identifier: Apache-2.0

package graph

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

type batchIn struct {
	Requests []struct {
		ID      string            `json:"id"`
		Method  string            `json:"method"`
		URL     string            `json:"url"`
		Headers map[string]string `json:"headers"`
	} `json:"requests"`
}

type batchOut struct {
	ID      string            `json:"id"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    any               `json:"body,omitempty"`
}

func TestDeltaBatch(t *testing.T) {
	var base string
	var mu sync.Mutex
	var sizes []int
	urls := map[string]string{}   // user -> sub-request URL
	prefer := map[string]string{} // user -> sub-request Prefer
	c, srv := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.URL.Path != "/v1.0/$batch" || r.Header.Get("Content-Type") != "application/json" ||
			r.Header.Get("Authorization") != "Bearer "+testToken {
			t.Errorf("%s %s %v", r.Method, r.URL.Path, r.Header)
		}
		var in batchIn
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			t.Error(err)
		}
		mu.Lock()
		sizes = append(sizes, len(in.Requests))
		mu.Unlock()
		var out []batchOut
		for _, q := range in.Requests {
			if q.Method != "GET" {
				t.Errorf("method %q", q.Method)
			}
			user := strings.Split(q.URL, "/")[2]
			mu.Lock()
			urls[user], prefer[user] = q.URL, q.Headers["Prefer"]
			mu.Unlock()
			link := base + "/v1.0/users/" + user + "/mailFolders/inbox/messages/delta?$deltatoken=" + user
			page := map[string]any{"value": []any{map[string]any{"id": "m-" + user}}, "@odata.deltaLink": link}
			switch user {
			case "u01":
				page = map[string]any{"value": []any{}, "@odata.nextLink": base + "/v1.0/users/u01/x?$skiptoken=1"}
			case "u03":
				out = append(out, batchOut{ID: q.ID, Status: 410, Headers: map[string]string{"location": base + "/v1.0/users/u03/mailFolders/inbox/messages/delta"},
					Body: map[string]any{"error": map[string]any{"code": "", "message": ""}}})
				continue
			case "u04":
				out = append(out, batchOut{ID: q.ID, Status: 429, Headers: map[string]string{"Retry-After": "7"},
					Body: map[string]any{"error": map[string]any{"code": "ApplicationThrottled", "message": "MailboxConcurrency"}}})
				continue
			case "u05":
				out = append(out, batchOut{ID: q.ID, Status: 404, Body: map[string]any{"error": map[string]any{"code": "ErrorItemNotFound", "message": "The specified object was not found in the store."}}})
				continue
			case "u06":
				out = append(out, batchOut{ID: q.ID, Status: 410, Headers: map[string]string{"Location": "https://evil.example/v1.0/x"}})
				continue
			case "u07":
				continue // no answer
			case "u08":
				page["@odata.deltaLink"] = "https://evil.example/v1.0/users/u08/delta"
			case "u09":
				raw, _ := json.Marshal(page)
				out = append(out, batchOut{ID: q.ID, Status: 200, Body: base64.StdEncoding.EncodeToString(raw)})
				continue
			}
			out = append(out, batchOut{ID: q.ID, Status: 200, Headers: map[string]string{"Content-Type": "application/json"}, Body: page})
		}
		out = append(out, batchOut{ID: "99", Status: 200, Body: map[string]any{}}) // not asked for
		slices.Reverse(out)                                                        // any order
		writeJSON(w, 200, map[string]any{"responses": out})
	}))
	base = srv.URL
	since := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var reqs []DeltaRequest
	for i := range 25 {
		reqs = append(reqs, DeltaRequest{User: fmt.Sprintf("u%02d", i), Folder: "inbox", Since: since})
	}
	reqs[2].PageSize = 5
	reqs[10].Link = base + "/v1.0/users/u10/mailFolders/inbox/messages/delta?$deltatoken=D10"
	reqs = append(reqs, DeltaRequest{User: "u25", Link: "https://evil.example/v1.0/users/u25/delta"}, DeltaRequest{Folder: "inbox"})

	res, err := c.DeltaBatch(t.Context(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(sizes)
	if fmt.Sprint(sizes) != "[5 20]" {
		t.Fatalf("batches of %v requests, want [5 20]", sizes)
	}
	if len(res) != len(reqs) {
		t.Fatalf("%d results", len(res))
	}
	for i, r := range res {
		if (r.Page == nil) == (r.Err == nil) {
			t.Errorf("result %d: page %v and error %v", i, r.Page, r.Err)
		}
	}

	// Relative URLs, the new round's options, the stored link as it was.
	if u := urls["u00"]; u != "/users/u00/mailFolders/inbox/messages/delta?$select=id%2CreceivedDateTime%2CinternetMessageId&$filter=receivedDateTime%20ge%202026-01-01T00%3A00%3A00Z" {
		t.Errorf("u00 URL %q", u)
	}
	if u := urls["u10"]; u != "/users/u10/mailFolders/inbox/messages/delta?$deltatoken=D10" {
		t.Errorf("u10 URL %q", u)
	}
	if p := prefer["u02"]; p != `IdType="ImmutableId", odata.maxpagesize=5` {
		t.Errorf("u02 Prefer %q", p)
	}
	if p := prefer["u00"]; p != `IdType="ImmutableId"` {
		t.Errorf("u00 Prefer %q", p)
	}

	if p := res[0].Page; p == nil || len(p.Messages) != 1 || p.Messages[0].ID != "m-u00" || !strings.HasSuffix(p.DeltaLink, "=u00") {
		t.Errorf("u00 page %+v", p)
	}
	if p := res[1].Page; p == nil || p.Next == "" {
		t.Errorf("u01 page %+v", p)
	}
	var re *ResetError
	if err := res[3].Err; !errors.Is(err, ErrSyncReset) || !errors.As(err, &re) || re.Location != base+"/v1.0/users/u03/mailFolders/inbox/messages/delta" {
		t.Errorf("u03: %v %+v", err, re)
	}
	requireClass(t, res[3].Err, mail.ClassProtocol)
	if d, ok := BackOff(res[4].Err); !errors.Is(res[4].Err, ErrThrottled) || d != 7*time.Second || !ok {
		t.Errorf("u04: %v, back off %v", res[4].Err, d)
	}
	if err := res[5].Err; !errors.Is(err, ErrNotFound) || mail.ClassOf(err) != mail.ClassConfig {
		t.Errorf("u05: %v", err)
	}
	if !errors.As(res[6].Err, &re) || re.Location != "" {
		t.Errorf("u06: a foreign Location kept: %v", res[6].Err)
	}
	requireClass(t, res[7].Err, mail.ClassProtocol)
	if !errors.Is(res[8].Err, ErrLinkRefused) {
		t.Errorf("u08: a foreign delta link accepted: %v", res[8].Err)
	}
	if p := res[9].Page; p == nil || p.Messages[0].ID != "m-u09" {
		t.Errorf("u09 (base64 body): %+v %v", p, res[9].Err)
	}
	if p := res[10].Page; p == nil || !strings.HasSuffix(p.DeltaLink, "=u10") {
		t.Errorf("u10: %+v %v", p, res[10].Err)
	}
	if !errors.Is(res[25].Err, ErrLinkRefused) {
		t.Errorf("foreign link: %v", res[25].Err)
	}
	if _, sent := urls["u25"]; sent {
		t.Error("the foreign link was sent")
	}
	requireClass(t, res[26].Err, mail.ClassConfig)
	for _, r := range res {
		requireNoSecret(t, r.Err, testToken)
	}
	if n := c.slots.len(); n != 0 {
		t.Errorf("%d slot entries left", n)
	}
}

func TestDeltaBatchWholeFailure(t *testing.T) {
	var n atomic.Int64
	var failFirstOnly atomic.Bool
	c, _ := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if k := n.Add(1); !failFirstOnly.Load() || k == 1 {
			w.Header().Set("Retry-After", "3")
			graphError(w, 503, "ServiceUnavailable", "busy")
			return
		}
		var in batchIn
		json.NewDecoder(r.Body).Decode(&in)
		var out []batchOut
		for _, q := range in.Requests {
			out = append(out, batchOut{ID: q.ID, Status: 200, Body: map[string]any{"value": []any{}, "@odata.deltaLink": "http://" + r.Host + "/v1.0/d"}})
		}
		writeJSON(w, 200, map[string]any{"responses": out})
	}), func(o *Options) { o.Timeout = 2 * time.Second })
	var reqs []DeltaRequest
	for i := range 30 {
		reqs = append(reqs, DeltaRequest{User: fmt.Sprint("u", i), Folder: "inbox"})
	}
	res, err := c.DeltaBatch(t.Context(), reqs)
	if !errors.Is(err, ErrThrottled) {
		t.Fatalf("overall error %v", err)
	}
	for i, r := range res {
		if d, _ := BackOff(r.Err); !errors.Is(r.Err, ErrThrottled) || d != 3*time.Second || r.Page != nil {
			t.Fatalf("result %d: %+v", i, r)
		}
	}

	// One of two batches failing is no overall failure.
	n.Store(0)
	failFirstOnly.Store(true)
	res, err = c.DeltaBatch(t.Context(), reqs)
	if err != nil {
		t.Fatalf("overall error %v", err)
	}
	var ok, bad int
	for _, r := range res {
		if r.Err != nil {
			bad++
		} else {
			ok++
		}
	}
	if bad != 20 && bad != 10 || ok+bad != 30 {
		t.Fatalf("%d ok, %d failed", ok, bad)
	}

	// No requests, no HTTP request.
	if res, err := (&Client{}).DeltaBatch(t.Context(), nil); err != nil || len(res) != 0 {
		t.Fatalf("no requests: %v %v", res, err)
	}
}

func TestDeltaBatchTakesMailboxSlots(t *testing.T) {
	arrived := make(chan struct{})
	release := make(chan struct{})
	var direct atomic.Int64
	c, _ := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1.0/$batch" {
			direct.Add(1)
			writeJSON(w, 200, folderJSONOf("F", "Inbox", 0))
			return
		}
		close(arrived)
		<-release
		var in batchIn
		json.NewDecoder(r.Body).Decode(&in)
		var out []batchOut
		for _, q := range in.Requests {
			out = append(out, batchOut{ID: q.ID, Status: 200, Body: map[string]any{"value": []any{}, "@odata.deltaLink": "http://" + r.Host + "/v1.0/d"}})
		}
		writeJSON(w, 200, map[string]any{"responses": out})
	}), func(o *Options) { o.MaxConcurrentPerMailbox = 2 })
	done := make(chan error, 1)
	go func() {
		// Two sub-requests for one mailbox take both of its slots.
		_, err := c.DeltaBatch(t.Context(), []DeltaRequest{{User: "a", Folder: "inbox"}, {User: "A", Folder: "sentitems"}, {User: "b", Folder: "inbox"}})
		done <- err
	}()
	<-arrived
	folderDone := make(chan error, 1)
	go func() { _, err := c.Folder(t.Context(), "a", "inbox"); folderDone <- err }()
	select {
	case <-folderDone:
		t.Fatal("a request to the mailbox ran while the batch held its slots")
	case <-time.After(50 * time.Millisecond):
	}
	if _, err := c.Folder(t.Context(), "c", "inbox"); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-folderDone; err != nil {
		t.Fatal(err)
	}
	if direct.Load() != 2 {
		t.Fatalf("%d direct requests", direct.Load())
	}
}
