// SPDX-License-Identifier: Apache-2.0

package graphfake

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

const (
	// maxBatch is Graph's limit of requests in one $batch.
	maxBatch = 20
	// batchParallel is how many requests of a batch Graph hands to Outlook at
	// once; each still counts against its mailbox's concurrency.
	batchParallel = 4
)

type batchIn struct {
	Requests []struct {
		ID        string            `json:"id"`
		Method    string            `json:"method"`
		URL       string            `json:"url"`
		Headers   map[string]string `json:"headers"`
		Body      json.RawMessage   `json:"body"`
		DependsOn []string          `json:"dependsOn"`
	} `json:"requests"`
}

// serveBatch runs a JSON batch: at most 20 requests with relative URLs below the
// version root, run four at a time, or one after another in the given order when
// any declares dependsOn (a request whose dependency failed gets 424). Each goes
// through serveAPI with the batch's Authorization, so it is counted, faulted and
// throttled on its own. Answers come in completion order, correlated by id.
func (s *Server) serveBatch(req *apiRequest) (resp *apiResponse) {
	rc := newRC(req)
	defer func() { rc.finish(resp) }()
	s.mu.Lock()
	s.stats.batches++
	s.mu.Unlock()
	if req.method != http.MethodPost {
		r := rc.fail(http.StatusMethodNotAllowed, "BadRequest", "Specified HTTP method is not allowed for the request target.")
		r.header.Set("Allow", http.MethodPost)
		return r
	}
	var in batchIn
	if err := json.Unmarshal(req.body, &in); err != nil {
		return rc.fail(http.StatusBadRequest, "BadRequest", "Invalid batch payload format.")
	}
	n := len(in.Requests)
	switch {
	case n == 0:
		return rc.fail(http.StatusBadRequest, "BadRequest", "The batch request must contain at least one request.")
	case n > maxBatch:
		s.logf("graphfake: $batch with %d requests refused", n)
		return rc.fail(http.StatusBadRequest, "BadRequest", fmt.Sprintf("The number of requests in a batch is limited to %d.", maxBatch))
	}
	pos := map[string]int{}
	sequential := false
	for i, r := range in.Requests {
		if r.ID == "" || r.Method == "" || r.URL == "" {
			return rc.fail(http.StatusBadRequest, "BadRequest", "Every request of a batch needs id, method and url.")
		}
		if _, dup := pos[r.ID]; dup {
			return rc.fail(http.StatusBadRequest, "BadRequest", fmt.Sprintf("The batch contains the request id '%s' more than once.", r.ID))
		}
		for _, d := range r.DependsOn {
			if _, ok := pos[d]; !ok {
				return rc.fail(http.StatusBadRequest, "BadRequest", fmt.Sprintf("Request '%s' depends on '%s', which is not an earlier request of the batch.", r.ID, d))
			}
			sequential = true
		}
		pos[r.ID] = i
	}
	out := make([]obj, 0, n)
	var mu sync.Mutex
	status := make(map[string]int, n)
	run := func(i int) {
		r := in.Requests[i]
		var res *apiResponse
		failedDep := ""
		mu.Lock()
		for _, d := range r.DependsOn {
			if st := status[d]; st < 200 || st > 299 {
				failedDep = d
			}
		}
		mu.Unlock()
		if failedDep != "" {
			sub := newRC(&apiRequest{header: http.Header{}})
			res = sub.fail(http.StatusFailedDependency, "FailedDependency", fmt.Sprintf("Request '%s' failed.", failedDep))
			sub.finish(res)
		} else {
			sub, bad := s.subRequest(req, r.Method, r.URL, r.Headers, r.Body)
			if bad != "" {
				brc := newRC(&apiRequest{header: http.Header{}})
				res = brc.fail(http.StatusBadRequest, "BadRequest", bad)
				brc.finish(res)
			} else {
				res = s.serveAPI(sub)
			}
		}
		mu.Lock()
		status[r.ID] = res.status
		out = append(out, batchAnswer(r.ID, res))
		mu.Unlock()
	}
	if sequential {
		for i := range in.Requests {
			run(i)
		}
	} else {
		work := make(chan int)
		var wg sync.WaitGroup
		for range min(batchParallel, n) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					run(i)
				}
			}()
		}
		for i := range in.Requests {
			work <- i
		}
		close(work)
		wg.Wait()
	}
	return rc.json(http.StatusOK, obj{{"responses", out}})
}

// subRequest builds a batched request; a non-empty string says why it is bad.
func (s *Server) subRequest(outer *apiRequest, method, rawURL string, headers map[string]string, body json.RawMessage) (*apiRequest, string) {
	u, err := url.Parse(rawURL)
	if err != nil || u.IsAbs() || u.Host != "" {
		return nil, "The url of a batched request must be relative to the version root, e.g. /users/{id}/messages."
	}
	// Only the batch's authorization applies to its requests; other headers
	// (Prefer above all) must be given per request, as in Graph.
	h := http.Header{}
	if v := outer.header.Values("Authorization"); len(v) > 0 {
		h["Authorization"] = v
	}
	for k, v := range headers {
		h.Set(k, v)
	}
	p := u.EscapedPath()
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	sub := &apiRequest{ctx: outer.ctx, method: strings.ToUpper(method), path: p, query: u.Query(), header: h}
	if b := bytes.TrimSpace(body); len(b) > 0 && !bytes.Equal(b, []byte("null")) {
		ct := h.Get("Content-Type")
		if ct == "" {
			return nil, "A batched request with a body needs a Content-Type header."
		}
		if b[0] == '"' {
			// A string body is the content itself: base64 for binary types, as
			// Graph documents; text (sendMail's base64 MIME) is taken as is.
			var str string
			if json.Unmarshal(b, &str) != nil {
				return nil, "The body of a batched request is not valid JSON."
			}
			switch {
			case strings.HasPrefix(strings.ToLower(ct), "text/"), strings.Contains(strings.ToLower(ct), "json"):
				sub.body = []byte(str)
			default:
				raw, err := base64.StdEncoding.DecodeString(str)
				if err != nil {
					if raw, err = base64.URLEncoding.DecodeString(str); err != nil {
						return nil, "The body of a batched request with a binary type must be base64."
					}
				}
				sub.body = raw
			}
		} else {
			sub.body = b
		}
	}
	return sub, ""
}

// batchAnswer renders one answer of a batch: a JSON body inline, any other body
// in base64.
func batchAnswer(id string, r *apiResponse) obj {
	hs := obj{}
	for k, v := range r.header {
		if len(v) > 0 && k != "Content-Length" {
			hs = append(hs, kv{k, v[0]})
		}
	}
	o := obj{{"id", id}, {"status", r.status}, {"headers", hs}}
	switch {
	case len(r.body) == 0:
	case strings.Contains(r.header.Get("Content-Type"), "json"):
		o = append(o, kv{"body", json.RawMessage(r.body)})
	default:
		o = append(o, kv{"body", base64.StdEncoding.EncodeToString(r.body)})
	}
	return o
}
