// SPDX-License-Identifier: Apache-2.0

package graph

// JSON batching (POST /$batch): the sub-requests travel in one HTTP
// request, each with a URL relative to the version root, and come back as
// {"responses":[{"id","status","headers","body"}]} in any order. A
// sub-response is classified exactly as the same response to a request of
// its own would be, by failureOf; only the whole batch's failure (transport,
// the batch's own status, an unreadable answer) is shared by all of them.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// MaxBatch is the most requests Graph takes in one $batch.
const MaxBatch = 20

// batchParallel bounds the $batch requests of one DeltaBatch in flight at
// once; Outlook runs a batch's sub-requests about four at a time anyway,
// so more parallel batches would mostly meet throttling.
const batchParallel = 4

// DeltaRequest is one folder's delta request in a DeltaBatch: the
// arguments of Delta.
type DeltaRequest struct {
	User   string
	Folder string // id or well-known name; not used when Link is set
	// Link is a Next or DeltaLink of an earlier page; "" starts a round.
	Link     string
	Since    time.Time // bounds a new round by receivedDateTime; zero: no bound
	PageSize int       // 0: Graph's default
	// ChangeType ("created", "updated" or "deleted") makes the rounds after
	// the first report only that kind of change; "": every kind. Graph
	// keeps it in the round's links.
	ChangeType string
}

// DeltaResult is the outcome of one DeltaRequest: exactly one of Page and
// Err is set. Err is what Delta would have returned for the same response
// (ErrSyncReset with the ResetError's Location, ErrThrottled with the
// sub-response's Retry-After for BackOff, ErrNotFound, …), or the failure of
// the whole HTTP request that carried it.
type DeltaResult struct {
	Page *DeltaPage
	Err  error
}

// DeltaBatch runs several delta requests, typically one per mailbox, in
// $batch requests of at most MaxBatch each (larger input is split, and at
// most four of them are in flight at once). The results are in the order of
// reqs. Each sub-request takes a concurrency slot of its mailbox for as
// long as its $batch is in flight, as a request of its own would (at most
// the per-mailbox limit for one $batch).
//
// The error is nil unless every $batch failed as a whole (unreachable
// endpoint, a 401, 429 on the batch itself, a cancelled ctx); then it is the
// first one's error, and each result carries its own batch's error too. A
// request that cannot be sent (an empty user, a link off BaseURL) fails in
// its result only.
func (c *Client) DeltaBatch(ctx context.Context, reqs []DeltaRequest) ([]DeltaResult, error) {
	res := make([]DeltaResult, len(reqs))
	var subs []subRequest
	for i, q := range reqs {
		r, err := c.deltaCall(q)
		if err == nil {
			var rel string
			if rel, err = c.onBase(r); err == nil {
				subs = append(subs, subRequest{i: i, r: r, url: rel})
			}
		}
		if err != nil {
			res[i].Err = err
		}
	}
	if len(subs) == 0 {
		return res, nil
	}
	chunks := slices.Collect(slices.Chunk(subs, MaxBatch))
	errs := make([]error, len(chunks))
	sem := make(chan struct{}, batchParallel)
	var wg sync.WaitGroup
	for k, chunk := range chunks {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[k] = c.batch(ctx, chunk, res)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err == nil {
			return res, nil
		}
	}
	return res, errs[0]
}

// subRequest is a delta request placed in a $batch.
type subRequest struct {
	i   int    // index in DeltaBatch's reqs and results
	r   *call  // the request as Delta would send it
	url string // r.url relative to BaseURL
}

// onBase checks r's URL (a link from the server, or one built here) and
// makes it relative to BaseURL, as $batch wants it.
func (c *Client) onBase(r *call) (string, error) {
	u, err := c.checkLink(r.op, r.url)
	if err != nil {
		return "", err
	}
	return c.relative(u), nil
}

type batchRequestJSON struct {
	Requests []batchItemJSON `json:"requests"`
}

type batchItemJSON struct {
	ID      string            `json:"id"`
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
}

type batchResponseJSON struct {
	Responses []struct {
		ID      string            `json:"id"`
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers"`
		// Body is a JSON value, or a JSON string with the base64 of a body
		// that is not JSON.
		Body json.RawMessage `json:"body"`
	} `json:"responses"`
}

// batch sends one $batch of at most MaxBatch delta requests and stores
// their results in res; when the batch fails as a whole, every one of them
// gets that error, which is returned too.
func (c *Client) batch(ctx context.Context, subs []subRequest, res []DeltaResult) error {
	const op = "graph delta batch"
	in := batchRequestJSON{Requests: make([]batchItemJSON, len(subs))}
	users := make([]string, len(subs))
	for j, s := range subs {
		in.Requests[j] = batchItemJSON{
			ID: strconv.Itoa(j), Method: s.r.method, URL: s.url,
			// The preferences of the sub-request go with it: the outer
			// request's headers are not applied to the requests inside.
			Headers: map[string]string{"Prefer": preferList(s.r.prefer)},
		}
		users[j] = s.r.users[0]
	}
	body, err := json.Marshal(&in)
	if err != nil {
		return c.failBatch(subs, res, mail.Wrap(mail.ClassInternal, op, err))
	}
	r := &call{
		op: op, method: "POST", url: c.resolve("/$batch", ""), users: users,
		body: body, ctype: "application/json", kind: tBatch, perm: "Mail.Read",
		idempotent: true, // every sub-request is a GET
	}
	local := make([]DeltaResult, len(subs))
	err = c.do(ctx, r, func(resp *http.Response) error {
		data, err := readBounded(op, resp.Body, c.maxResp, resp.ContentLength)
		if err != nil {
			return err
		}
		var out batchResponseJSON
		if err := decodeJSON(op, data, &out); err != nil {
			return err
		}
		tok := bearerOf(resp)
		done := make([]bool, len(subs))
		for _, sr := range out.Responses {
			j, err := strconv.Atoi(sr.ID)
			if err != nil || j < 0 || j >= len(subs) || done[j] {
				continue // not one of ours, or answered already: ignored
			}
			done[j] = true
			h := make(http.Header, len(sr.Headers))
			for k, v := range sr.Headers {
				h.Set(k, v)
			}
			local[j] = c.subResult(subs[j].r, sr.Status, h, sr.Body, tok)
		}
		for j := range subs {
			if !done[j] {
				local[j].Err = mail.Errorf(mail.ClassProtocol, subs[j].r.op, "the $batch response has no answer to this request")
			}
		}
		return nil
	})
	if err != nil {
		return c.failBatch(subs, res, err)
	}
	for j, s := range subs {
		res[s.i] = local[j]
	}
	return nil
}

func (c *Client) failBatch(subs []subRequest, res []DeltaResult, err error) error {
	for _, s := range subs {
		res[s.i] = DeltaResult{Err: err}
	}
	return err
}

// subResult classifies one sub-response as Delta would its own response.
func (c *Client) subResult(r *call, status int, h http.Header, body json.RawMessage, tok string) DeltaResult {
	data := []byte(body)
	if len(data) > 0 && data[0] == '"' {
		var s string
		if json.Unmarshal(data, &s) == nil {
			if b, err := base64.StdEncoding.DecodeString(s); err == nil {
				data = b
			}
		}
	}
	if status < 200 || status > 299 {
		return DeltaResult{Err: c.failureOf(r, status, h, data, tok)}
	}
	var p messagePageJSON
	if err := decodeJSON(r.op, data, &p); err != nil {
		return DeltaResult{Err: err}
	}
	page, err := c.deltaPage(r.op, &p)
	if err != nil {
		return DeltaResult{Err: err}
	}
	return DeltaResult{Page: page}
}

// bearerOf is the token a response was fetched with (for failureOf's hints
// and redaction).
func bearerOf(resp *http.Response) string {
	if resp.Request == nil {
		return ""
	}
	return strings.TrimPrefix(resp.Request.Header.Get("Authorization"), "Bearer ")
}
