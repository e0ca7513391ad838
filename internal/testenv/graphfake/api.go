// SPDX-License-Identifier: Apache-2.0

package graphfake

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// apiRequest is one Graph request, from HTTP or from a $batch: both go through
// serveAPI, so that faults, throttling and counting treat a batched request like
// any other, as Graph does.
type apiRequest struct {
	ctx    context.Context
	method string
	path   string // below the version root, escaped, e.g. /users/x/messages
	query  url.Values
	header http.Header
	body   []byte
}

// apiResponse is a complete answer; bodies are small (the biggest is a MIME
// download, bounded by what Deliver stored), so they are built in memory.
type apiResponse struct {
	status int
	header http.Header
	body   []byte
}

// reqCtx carries a request through the pipeline.
type reqCtx struct {
	*apiRequest
	reqID, clientReqID string
	p                  *principal
	mb                 *mailbox
	// userSeg is how the request named its user ("me" or "users/<id or upn>"),
	// reused in links the answer hands out, as Graph does.
	userSeg string
	keys    routeKeys
	applied []string // Preference-Applied values
}

// newRC starts the context of a request: request-id is fresh, client-request-id
// is the client's or, like Graph, a copy of request-id.
func newRC(req *apiRequest) *reqCtx {
	rc := &reqCtx{apiRequest: req, reqID: newGUID(), clientReqID: req.header.Get("client-request-id")}
	if rc.clientReqID == "" || len(rc.clientReqID) > 100 {
		rc.clientReqID = rc.reqID
	}
	return rc
}

// serveHTTPAPI reads an API request off the wire and writes the answer.
func (s *Server) serveHTTPAPI(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.stats.httpRequests++
	s.mu.Unlock()
	req := &apiRequest{ctx: r.Context(), method: r.Method, header: r.Header, query: r.URL.Query()}
	req.path = r.URL.EscapedPath()[len(APIVersion)+1:]
	if req.path == "" {
		req.path = "/"
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxRequestBytes))
	var resp *apiResponse
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		rc := newRC(req)
		s.logf("graphfake: %s %s: body over %d bytes", r.Method, r.URL.Path, s.opts.MaxRequestBytes)
		resp = rc.fail(http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "The request is larger than the maximum size allowed.")
		rc.finish(resp)
	case err != nil:
		return // the client went away
	default:
		req.body = body
		if p, _ := url.PathUnescape(req.path); strings.EqualFold(p, "/$batch") {
			resp = s.serveBatch(req)
		} else {
			resp = s.serveAPI(req)
		}
	}
	h := w.Header()
	for k, v := range resp.header {
		h[k] = v
	}
	h.Set("Content-Length", strconv.Itoa(len(resp.body)))
	w.WriteHeader(resp.status)
	_, _ = w.Write(resp.body)
}

// serveAPI runs one request through Graph's stages: programmed faults (a gateway
// in front of the service), authentication, routing, the mailbox's throttling
// budget, Stall, and the operation.
func (s *Server) serveAPI(req *apiRequest) (resp *apiResponse) {
	rc := newRC(req)
	defer func() {
		rc.finish(resp)
		if s.opts.Trace {
			s.logf("graphfake: %s %s -> %d", req.method, req.path, resp.status)
		}
	}()
	s.mu.Lock()
	s.stats.requests++
	s.mu.Unlock()
	if r := s.injected(rc); r != nil {
		return r
	}
	p, r := s.authenticate(rc)
	if r != nil {
		return r
	}
	rc.p = p
	rt, r := s.route(rc)
	if r != nil {
		return r
	}
	if rt.user != nil {
		if r := s.resolveUser(rc, *rt.user); r != nil {
			return r
		}
	}
	if !p.hasAny(rt.perms) {
		s.logf("graphfake: %s %s: token lacks %s", req.method, req.path, strings.Join(rt.perms, " or "))
		return rc.fail(http.StatusForbidden, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
	}
	if rc.mb != nil {
		release, r := s.admit(rc)
		if r != nil {
			return r
		}
		defer release()
	}
	if r := s.stall(rc); r != nil {
		return r
	}
	s.logIgnored(rc)
	return rt.h(rc)
}

// finish adds the headers every Graph answer carries.
func (rc *reqCtx) finish(resp *apiResponse) {
	if resp.header == nil {
		resp.header = http.Header{}
	}
	h := resp.header
	h.Set("request-id", rc.reqID)
	h.Set("client-request-id", rc.clientReqID)
	h.Set("x-ms-ags-diagnostic", `{"ServerInfo":{"DataCenter":"Loopback","Slice":"E","Ring":"0","ScaleUnit":"000","RoleInstance":"graphfake"}}`)
	if h.Get("Cache-Control") == "" {
		h.Set("Cache-Control", "no-cache")
	}
	if len(rc.applied) > 0 {
		h.Set("Preference-Applied", strings.Join(rc.applied, ","))
	}
}

// jsonType is what Graph labels its JSON answers with.
const jsonType = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"

// json answers a JSON body.
func (rc *reqCtx) json(status int, v any) *apiResponse {
	b, err := marshal(v)
	if err != nil {
		panic("graphfake: marshal: " + err.Error()) // only the fake's own values get here
	}
	h := http.Header{}
	h.Set("Content-Type", jsonType)
	h.Set("OData-Version", "4.0")
	return &apiResponse{status: status, header: h, body: b}
}

// empty answers without a body (202, 204).
func (rc *reqCtx) empty(status int) *apiResponse {
	return &apiResponse{status: status, header: http.Header{}}
}

// fail answers Graph's error body.
func (rc *reqCtx) fail(status int, code, msg string) *apiResponse {
	return rc.json(status, errorBody(code, msg, rc.reqID, rc.clientReqID))
}

func errorBody(code, msg, reqID, clientReqID string) obj {
	return obj{{"error", obj{
		{"code", code},
		{"message", msg},
		{"innerError", obj{
			{"date", time.Now().UTC().Format("2006-01-02T15:04:05")},
			{"request-id", reqID},
			{"client-request-id", clientReqID},
		}},
	}}}
}

// retryAfter sets Retry-After in whole seconds, rounded up, as Graph sends it; a
// zero duration sends none.
func retryAfter(r *apiResponse, d time.Duration) *apiResponse {
	if d > 0 {
		r.header.Set("Retry-After", strconv.Itoa(int(math.Ceil(d.Seconds()))))
	}
	return r
}

// obj is a JSON object that keeps its members in order, so answers read like
// Graph's (annotations first).
type obj []kv

type kv struct {
	k string
	v any
}

func (o obj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := marshal(e.k)
		b.Write(k)
		b.WriteByte(':')
		v, err := marshal(e.v)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// marshal is json.Marshal without HTML escaping: Graph writes "<" and "&" as
// they are (Message-IDs, links), and so does the fake.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// graphTime renders a time as Graph renders message times.
func graphTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// graphTime7 renders a time with seven fractional digits, as Graph renders
// subscription times.
func graphTime7(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000Z") }

// parseGraphTime reads an ISO 8601 time as clients send it, with or without a
// zone (UTC then).
func parseGraphTime(v string) (time.Time, error) {
	v = strings.Trim(strings.TrimSpace(v), "'")
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05.9999999", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("bad time")
}

// prefs reads the Prefer header: odata.maxpagesize and IdType. The fake hands
// out immutable ids whatever the client prefers, and says so when asked.
func (rc *reqCtx) pageSize(def int) int {
	n := 0
	for _, v := range rc.header.Values("Prefer") {
		for _, p := range strings.Split(v, ",") {
			p = strings.TrimSpace(p)
			name, val, _ := strings.Cut(p, "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "odata.maxpagesize":
				if k, err := strconv.Atoi(strings.TrimSpace(val)); err == nil && k > 0 {
					n = min(k, MaxPageSize)
					rc.applied = append(rc.applied, "odata.maxpagesize="+strconv.Itoa(n))
				}
			}
		}
	}
	if n == 0 {
		n = def
	}
	return min(max(n, 1), MaxPageSize)
}

// preferImmutable echoes Prefer: IdType="ImmutableId".
func (rc *reqCtx) preferImmutable() {
	if rc.prefers(`IdType="ImmutableId"`) {
		rc.applied = append(rc.applied, `IdType="ImmutableId"`)
	}
}

// prefers tells whether the Prefer header holds a preference (compared
// case-insensitively).
func (rc *reqCtx) prefers(pref string) bool {
	for _, v := range rc.header.Values("Prefer") {
		for _, p := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), pref) {
				return true
			}
		}
	}
	return false
}

// knownOptions are the query options some operation of the fake reads; others
// are ignored, which is logged.
var knownOptions = map[string]bool{"$top": true, "$skip": true, "$select": true, "$filter": true, "$orderby": true,
	"$skiptoken": true, "$deltatoken": true, "changetype": true, "includehiddenfolders": true}

func (s *Server) logIgnored(rc *reqCtx) {
	for k := range rc.query {
		if !knownOptions[strings.ToLower(k)] {
			s.logf("graphfake: %s %s: query option %s ignored", rc.method, rc.path, k)
		}
	}
}

// top reads $top (1..MaxPageSize); ok is false for a bad value.
func (rc *reqCtx) top(def int) (int, bool) {
	v := rc.query.Get("$top")
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, false
	}
	return min(n, MaxPageSize), true
}

// apiLink builds an absolute link below the version root.
func (s *Server) apiLink(path string, q [][2]string) string {
	var b strings.Builder
	b.WriteString(s.URL())
	b.WriteString(path)
	for i, p := range q {
		if i == 0 {
			b.WriteByte('?')
		} else {
			b.WriteByte('&')
		}
		// The option names keep their "$", as in Graph's links.
		b.WriteString(p[0])
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(p[1]))
	}
	return b.String()
}

func (s *Server) metadata(frag string) string { return s.URL() + "/$metadata#" + frag }
