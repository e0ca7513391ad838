// SPDX-License-Identifier: Apache-2.0

package graphfake

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

type batchResp struct {
	ID      string            `json:"id"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body"`
}

func (c *client) batch(reqs []map[string]any) map[string]batchResp {
	c.t.Helper()
	out := c.call(200, "POST", "/$batch", map[string]any{"requests": reqs})
	raw, _ := json.Marshal(out["responses"])
	var rs []batchResp
	mustOK(c.t, json.Unmarshal(raw, &rs))
	m := map[string]batchResp{}
	for _, r := range rs {
		m[r.ID] = r
	}
	if len(m) != len(reqs) {
		c.t.Fatalf("%d answers to %d requests", len(m), len(reqs))
	}
	return m
}

func TestBatch(t *testing.T) {
	s, c := newFake(t, Options{})
	id, err := s.Deliver(alice, "inbox", testMessage("b", bob, alice))
	mustOK(t, err)
	for i := range 18 {
		mustOK(t, s.AddMailbox(fmt.Sprintf("user%d@contoso.example", i)))
	}

	// 20 delta requests for 20 mailboxes, in one HTTP request.
	var reqs []map[string]any
	for i := range 18 {
		reqs = append(reqs, map[string]any{"id": fmt.Sprint(i), "method": "GET",
			"url": fmt.Sprintf("/users/user%d@contoso.example/mailFolders/inbox/messages/delta", i)})
	}
	reqs = append(reqs,
		map[string]any{"id": "a", "method": "GET", "url": "users/" + alice + "/mailFolders('inbox')/messages/delta?$select=subject",
			"headers": map[string]string{"Prefer": "odata.maxpagesize=5"}},
		map[string]any{"id": "mime", "method": "GET", "url": "/users/" + alice + "/messages/" + id + "/$value"})
	before := s.Stats()
	rs := c.batch(reqs)
	for k, r := range rs {
		if r.Status != 200 {
			t.Errorf("%s: %d %s", k, r.Status, r.Body)
		}
	}
	var page map[string]any
	mustOK(t, json.Unmarshal(rs["a"].Body, &page))
	if len(values(page)) != 1 || !strings.HasPrefix(str(page, "@odata.deltaLink"), s.URL()+"/users/") {
		t.Errorf("batched delta: %s", rs["a"].Body)
	}
	if rs["a"].Headers["Preference-Applied"] != "odata.maxpagesize=5" {
		t.Errorf("sub-request headers: %v", rs["a"].Headers)
	}
	var b64 string
	mustOK(t, json.Unmarshal(rs["mime"].Body, &b64))
	mime, err := base64.StdEncoding.DecodeString(b64)
	stored, _ := s.Message(alice, id)
	if err != nil || string(mime) != string(stored.MIME) {
		t.Errorf("batched $value: %v %q", err, mime)
	}
	after := s.Stats()
	if after.Requests-before.Requests != 20 || after.HTTPRequests-before.HTTPRequests != 1 || after.Batches-before.Batches != 1 ||
		after.DeltaRequests-before.DeltaRequests != 19 || after.ByUser["user3@contoso.example"] != 1 {
		t.Errorf("stats: before %+v after %+v", before, after)
	}

	// The delta link from a batched answer works in a batch too, relative to
	// the version root.
	rel := strings.TrimPrefix(str(page, "@odata.deltaLink"), s.URL())
	rs = c.batch([]map[string]any{{"id": "1", "method": "GET", "url": rel}})
	if rs["1"].Status != 200 {
		t.Errorf("relative delta link: %d %s", rs["1"].Status, rs["1"].Body)
	}

	// 21 requests are refused as a whole.
	reqs = append(reqs, map[string]any{"id": "x", "method": "GET", "url": "/users/" + bob})
	resp, body := c.do("POST", "/$batch", mustJSON(t, map[string]any{"requests": reqs}))
	if resp.StatusCode != 400 || errCode(t, body) != "BadRequest" {
		t.Errorf("21 requests: %d %s", resp.StatusCode, body)
	}

	// Throttling counts each request: two of three get 429 with Retry-After.
	s.ThrottleNext(2, 1500*time.Millisecond)
	rs = c.batch([]map[string]any{
		{"id": "1", "method": "GET", "url": "/users/" + alice + "/mailFolders/inbox"},
		{"id": "2", "method": "GET", "url": "/users/" + alice + "/mailFolders/inbox"},
		{"id": "3", "method": "GET", "url": "/users/" + alice + "/mailFolders/inbox"},
	})
	throttled := 0
	for _, r := range rs {
		if r.Status == 429 {
			throttled++
			if r.Headers["Retry-After"] != "2" || !strings.Contains(string(r.Body), "TooManyRequests") {
				t.Errorf("throttled answer: %v %s", r.Headers, r.Body)
			}
		}
	}
	if throttled != 2 {
		t.Errorf("%d throttled", throttled)
	}

	// dependsOn runs in order; a failed dependency fails its dependants (424).
	rs = c.batch([]map[string]any{
		{"id": "1", "method": "GET", "url": "/users/" + alice + "/messages/AAAA"},
		{"id": "2", "method": "GET", "url": "/users/" + alice, "dependsOn": []string{"1"}},
		{"id": "3", "method": "PATCH", "url": "/users/" + alice + "/messages/" + id, "body": map[string]any{"isRead": true},
			"headers": map[string]string{"Content-Type": "application/json"}},
	})
	if rs["1"].Status != 400 || rs["2"].Status != 424 || rs["3"].Status != 200 {
		t.Errorf("dependsOn: %+v", rs)
	}
	// A batched sendMail with base64 MIME as a text body.
	msg := base64.StdEncoding.EncodeToString([]byte("To: " + bob + "\r\nSubject: batched\r\n\r\nx\r\n"))
	rs = c.batch([]map[string]any{{"id": "s", "method": "POST", "url": "/users/" + alice + "/sendMail", "body": msg,
		"headers": map[string]string{"Content-Type": "text/plain"}}})
	if sent := s.Sent(alice); rs["s"].Status != 202 || len(sent) != 1 || !strings.Contains(string(sent[0]), "From: <"+alice+">\r\n") {
		t.Errorf("batched sendMail: %+v", rs["s"])
	}
}

func mustJSON(t testing.TB, v any) []byte {
	b, err := json.Marshal(v)
	mustOK(t, err)
	return b
}

func TestThrottling(t *testing.T) {
	s, c := newFake(t, Options{MailboxRequestLimit: 5, RequestWindow: time.Hour})
	inbox := "/users/" + alice + "/mailFolders/inbox"

	// Concurrency: with four requests held in the fake, a fifth one to the same
	// mailbox is refused at once; another mailbox is not affected.
	inflight := func(upn string) int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.byName[upn].inflight
	}
	s.Stall(time.Minute)
	var wg sync.WaitGroup
	codes := make([]int, 5)
	for i := range 4 {
		wg.Go(func() {
			resp, _ := c.do("GET", inbox, nil)
			codes[i] = resp.StatusCode
		})
	}
	wg.Go(func() {
		resp, _ := c.do("GET", "/users/"+bob+"/mailFolders/inbox", nil)
		codes[4] = resp.StatusCode
	})
	waitFor(t, 5*time.Second, "four requests in flight", func() bool { return inflight(alice) == 4 && inflight(bob) == 1 })
	resp, body := c.do("GET", inbox, nil)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "1" || errCode(t, body) != "ApplicationThrottled" ||
		!strings.Contains(string(body), "MailboxConcurrency") {
		t.Errorf("fifth concurrent request: %d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	s.Stall(0)
	wg.Wait()
	for i, code := range codes {
		if code != 200 {
			t.Errorf("held request %d: %d", i, code)
		}
	}

	// Rate: five requests per window were allowed (throttled ones count too).
	resp, body = c.do("GET", inbox, nil)
	if resp.StatusCode != 429 || !strings.Contains(string(body), "RequestRate") || resp.Header.Get("Retry-After") == "" {
		t.Errorf("rate: %d %s", resp.StatusCode, body)
	}

	// FailNext: 503 with Retry-After.
	s.FailNext(1, http.StatusServiceUnavailable)
	resp, body = c.do("GET", "/users/"+bob+"/mailFolders/inbox", nil)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" || errCode(t, body) != "ServiceUnavailable" {
		t.Errorf("FailNext: %d %s", resp.StatusCode, body)
	}
	c.call(200, "GET", "/users/"+bob+"/mailFolders/inbox", nil)
	// ThrottleNext without a delay sends no Retry-After.
	s.ThrottleNext(1, 0)
	resp, _ = c.do("GET", "/users/"+bob+"/mailFolders/inbox", nil)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "" {
		t.Errorf("ThrottleNext(1, 0): %d %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	st := s.Stats()
	if st.Throttled != 3 || st.ByUser[alice] != 6 || st.ByUser[bob] != 2 || st.Requests != 10 {
		t.Errorf("stats: %+v", st)
	}
}
