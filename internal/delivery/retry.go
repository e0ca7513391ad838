// SPDX-License-Identifier: Apache-2.0

package delivery

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Reason is the closed set of delivery failure reasons, used in metrics and logs.
type Reason string

const (
	ReasonNone        Reason = ""
	ReasonNetwork     Reason = "network"      // connection refused, reset, DNS
	ReasonTimeout     Reason = "timeout"      // the attempt's deadline ran out
	ReasonServerError Reason = "server_error" // 5xx
	ReasonThrottled   Reason = "throttled"    // 429
	ReasonEndpoint    Reason = "endpoint"     // 401, 403, 404, 405: the endpoint, not the email, is wrong
	ReasonRejected    Reason = "rejected"     // other 4xx: this payload is refused
)

// Reasons lists every failure reason, for pre-initializing metric labels.
var Reasons = []Reason{ReasonNetwork, ReasonTimeout, ReasonServerError, ReasonThrottled, ReasonEndpoint, ReasonRejected}

// Verdict is what to do after one attempt.
type Verdict int

const (
	Success   Verdict = iota // 2xx
	Retry                    // try again after a backoff
	Permanent                // this payload will not be accepted
)

// Check maps the outcome of one HTTP attempt to a verdict and a reason. It does no
// I/O, so it is tested over every status code.
//
// Endpoint errors (401/403/404/405) are retried rather than dropped: they mean the
// client's URL or deployment is wrong, which an admin fixes, and the mail must
// still arrive afterwards. Only errors that point at the payload itself (400,
// 413, 422, …) are permanent.
func Check(status int, err error) (Verdict, Reason) {
	if err != nil {
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			return Retry, ReasonTimeout
		}
		return Retry, ReasonNetwork
	}
	switch {
	case status >= 200 && status < 300:
		return Success, ReasonNone
	case status == http.StatusTooManyRequests:
		return Retry, ReasonThrottled
	case status == http.StatusRequestTimeout:
		return Retry, ReasonTimeout
	case status == http.StatusUnauthorized, status == http.StatusForbidden,
		status == http.StatusNotFound, status == http.StatusMethodNotAllowed:
		return Retry, ReasonEndpoint
	case status >= 500:
		return Retry, ReasonServerError
	case status >= 400:
		return Permanent, ReasonRejected
	default:
		// 1xx/3xx: redirects are followed by the client; anything left is odd
		// enough to retry rather than lose mail.
		return Retry, ReasonServerError
	}
}

// retryAfter parses a Retry-After header (seconds or HTTP date), capped.
func retryAfter(h string, now time.Time, limit time.Duration) time.Duration {
	if h == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.Atoi(h); err == nil {
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(h); err == nil {
		d = t.Sub(now)
	}
	if d < 0 {
		return 0
	}
	if d > limit {
		return limit
	}
	return d
}
