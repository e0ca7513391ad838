// SPDX-License-Identifier: Apache-2.0

package httpapi

// Implementation notes for the request guards.
//
// Every request passes guard (before routing to its handler) and admitBody
// (inside the handler wrapper) in this order, each refusing with a clear 4xx
// or 503 before any work is done:
//
//  1. Host allow-list (optional): a browser tricked by DNS rebinding sends the
//     attacker's host name; the health paths answer any Host for probes that
//     use the pod IP.
//  2. Overflow connection (see Listener): only the health paths are served.
//  3. POST routes (but webhooks, which authenticate their callers
//     themselves): a JSON content type, and no cross-site browser request
//     (http.CrossOriginProtection: Sec-Fetch-Site / Origin). Creatio sends
//     application/json from .NET, which sends neither browser header. A page
//     on the intranet can send text/plain cross-site without a CORS
//     preflight; the content-type rule alone stops that, the origin check
//     stops the rest.
//  4. The body: a declared Content-Length over the route's limit is refused
//     before it is read (so "Expect: 100-continue" gets no 100), the read is
//     bounded by http.MaxBytesReader and by a read deadline, and a send takes
//     its size from the node's message budget first.

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"
)

// routeClass is the limit set of a route.
type routeClass int

const (
	plain      routeClass = iota // GET without body
	health                       // GET probe: answered on overflow connections and for any Host
	small                        // POST with a credentials object or list (MaxRequestBytes)
	idList                       // POST with a list of mailbox ids
	send                         // POST send: MaxSendBytes, a longer body timeout, the send budget
	nativeSend                   // send of the native API: also takes raw MIME (message/rfc822)
	// webhook: POST from a mail service (Graph change notifications), any
	// content type (Graph validates with an empty text/plain POST),
	// MaxRequestBytes; the handler authenticates what it reads.
	webhook
)

const (
	// idListBytes: 100,000 GUIDs in quotes with commas are 3.9 MB.
	idListBytes = 4 << 20
	// sendTimeoutFactor: a send body is larger, and comes from the same
	// Creatio host as everything else.
	sendTimeoutFactor = 4
	// budgetWait bounds how long a send waits for the message budget before
	// it is refused with 503.
	budgetWait = 30 * time.Second
	// writeTimeout bounds writing one answer to a client.
	writeTimeout = 60 * time.Second
	// maxMessage bounds an error text sent to a client: messages may quote
	// parts of the input, which is never echoed at length.
	maxMessage = 1024
)

// Refusal reasons (metric label values).
var refusalReasons = []string{"host", "overflow", "content_type", "cross_origin", "too_large", "budget", "connections", "unauthorized"}

var errBodyTimeout = errors.New("request body not received in time")

func (a *API) bodyLimit(class routeClass) int64 {
	switch class {
	case idList:
		return max(a.opts.MaxRequestBytes, idListBytes)
	case send, nativeSend:
		return a.opts.MaxSendBytes
	case small, webhook:
		return a.opts.MaxRequestBytes
	}
	return 0
}

func (a *API) bodyTimeout(class routeClass) time.Duration {
	if class == send || class == nativeSend {
		return sendTimeoutFactor * a.opts.BodyTimeout
	}
	return a.opts.BodyTimeout
}

// guard applies the checks that need no body (steps 1–3 above).
func (a *API) guard(class routeClass, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if class != health && len(a.hosts) > 0 && !a.hosts[hostOnly(r.Host)] {
			a.refuse(w, "host", http.StatusMisdirectedRequest, "unknown host name: this service answers only for the names in EL_ALLOWED_HOSTS")
			return
		}
		if class != health && overflowing(r.Context()) {
			w.Header().Set("Connection", "close")
			a.refuse(w, "overflow", http.StatusServiceUnavailable, "too many open connections; retry later")
			return
		}
		if ct := r.Header.Get("Content-Type"); r.Method == http.MethodPost && class != webhook && !jsonContentType(ct) &&
			!(class == nativeSend && mimeContentType(ct)) {
			msg := "Content-Type must be application/json"
			if class == nativeSend {
				msg += " or message/rfc822"
			}
			a.refuse(w, "content_type", http.StatusUnsupportedMediaType, msg)
			return
		}
		if err := a.cop.Check(r); err != nil {
			a.refuse(w, "cross_origin", http.StatusForbidden, "cross-origin request refused: the API does not serve browsers")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// admitBody applies the body limits (step 4). The release it returns gives
// back the send budget; it is never nil when err is nil.
func (a *API) admitBody(w http.ResponseWriter, r *http.Request, class routeClass) (release func(), err error) {
	limit := a.bodyLimit(class)
	if limit == 0 {
		return func() {}, nil
	}
	if r.ContentLength > limit {
		a.refused.WithLabelValues("too_large").Inc()
		w.Header().Set("Connection", "close") // the rest of the body is not read
		return nil, &http.MaxBytesError{Limit: limit}
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(a.bodyTimeout(class)))
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	if (class != send && class != nativeSend) || a.opts.SendBudget == nil {
		return func() {}, nil
	}
	n := r.ContentLength
	if n < 0 {
		n = limit // chunked: assume the worst
	}
	ctx, cancel := context.WithTimeout(r.Context(), budgetWait)
	defer cancel()
	release, err = a.opts.SendBudget.Acquire(ctx, n)
	if err != nil {
		a.refused.WithLabelValues("budget").Inc()
		return nil, fmt.Errorf("%w: the service is busy with other large messages; retry later", ErrUnavailable)
	}
	return release, nil
}

func (a *API) refuse(w http.ResponseWriter, reason string, code int, msg string) {
	a.refused.WithLabelValues(reason).Inc()
	writeError(w, code, msg)
}

// jsonContentType accepts application/json, text/json and application/*+json,
// with any parameters.
func jsonContentType(v string) bool {
	mt, _, err := mime.ParseMediaType(v)
	if err != nil {
		return false
	}
	return mt == "application/json" || mt == "text/json" ||
		(strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

// mimeContentType: a raw email, as the native API's send takes it.
func mimeContentType(v string) bool {
	mt, _, err := mime.ParseMediaType(v)
	return err == nil && mt == "message/rfc822"
}

func hostSet(hosts []string) map[string]bool {
	if len(hosts) == 0 {
		return nil
	}
	m := make(map[string]bool, len(hosts))
	for _, h := range hosts {
		if h = strings.ToLower(strings.TrimSpace(h)); h != "" {
			m[h] = true
		}
	}
	return m
}

// hostOnly returns the lower-case host of a Host header value, without port
// or IPv6 brackets.
func hostOnly(hostport string) string {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	return strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"))
}
