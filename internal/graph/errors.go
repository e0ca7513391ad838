// SPDX-License-Identifier: Apache-2.0

package graph

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Conditions callers branch on, matched with errors.Is against any error this
// package returns.
var (
	// ErrNotFound: the message, folder, subscription or mailbox does not
	// exist (any more). For a message it was deleted or moved out of reach
	// before it could be read (ClassProtocol); for a folder or mailbox the
	// configuration names something that is not there (ClassConfig).
	ErrNotFound = errors.New("graph: not found")
	// ErrNoMailbox: the user does not exist, or has no mailbox Graph can
	// reach (on-premises, inactive, unlicensed). It also matches
	// ErrNotFound.
	ErrNoMailbox = errors.New("graph: no Exchange Online mailbox for this user")
	// ErrSyncReset: the delta link is no longer valid (410 Gone, or an
	// expired sync state); drop it and start a new round. The *ResetError
	// carries the server's suggested restart URL, if any.
	ErrSyncReset = errors.New("graph: delta sync must start over")
	// ErrThrottled: Graph throttles the app on this mailbox (429) or is
	// overloaded (503, 504); BackOff tells how long it asked to wait.
	ErrThrottled = errors.New("graph: throttled or busy")
	// ErrLinkRefused: a link from the server points to another scheme,
	// host or API root than BaseURL and was not followed.
	ErrLinkRefused = errors.New("graph: link refused")
)

// maxExcerpt bounds the server text quoted in an error.
const maxExcerpt = 300

// APIError is a Graph response other than success, with the JSON error
// body's detail when there was one.
type APIError struct {
	Status    int    // HTTP status
	Code      string // error.code, e.g. "ErrorAccessDenied"
	InnerCode string // error.innerError.code, when present
	Message   string // an excerpt of error.message (or of a non-JSON body)
	// RequestID and ClientRequestID identify the request at Microsoft
	// (support cases quote them); neither is a secret.
	RequestID       string
	ClientRequestID string
	Retry           time.Duration // Retry-After, 0 when absent
	// Hint says what the failure means for the listener and names the fix
	// where there is one.
	Hint string
	is   []error // the sentinels it matches
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP %d %s", e.Status, http.StatusText(e.Status))
	if e.Code != "" {
		b.WriteString(": " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.Hint != "" {
		b.WriteString(" (" + e.Hint + ")")
	}
	if e.RequestID != "" || e.ClientRequestID != "" {
		b.WriteString(" [request-id " + e.RequestID + ", client-request-id " + e.ClientRequestID + "]")
	}
	return b.String()
}

// Is matches the sentinels of the status and code.
func (e *APIError) Is(target error) bool {
	for _, s := range e.is {
		if s == target {
			return true
		}
	}
	return false
}

// RetryAfter is the server's Retry-After, 0 when none.
func (e *APIError) RetryAfter() time.Duration { return e.Retry }

// ResetError is the server's refusal of a delta link: 410 Gone, or an
// expired or unknown sync state (syncStateNotFound, resyncRequired). It
// matches ErrSyncReset.
type ResetError struct {
	Status int
	Code   string // error.code, empty for a bare 410
	// Location is the URL the server suggests for the new round (a 410's
	// Location header), already checked to be on BaseURL's host; empty when
	// absent or refused. Passing "" to Delta starts a new round as well.
	Location string
}

func (e *ResetError) Error() string {
	s := fmt.Sprintf("HTTP %d: the delta link is no longer valid", e.Status)
	if e.Code != "" {
		s += " (" + e.Code + ")"
	}
	return s + "; sync the folder from the start"
}

// Is matches ErrSyncReset.
func (e *ResetError) Is(target error) bool { return target == ErrSyncReset }

// LinkError is a link from the server that was not followed.
type LinkError struct{ Reason string }

func (e *LinkError) Error() string { return "link from the server refused: it " + e.Reason }

// Is matches ErrLinkRefused.
func (e *LinkError) Is(target error) bool { return target == ErrLinkRefused }

// BackOff returns how long the server asked the client to wait before the
// next request (Retry-After of a 429 or 503, of the whole response or of a
// batched one, or of the token endpoint), and whether it said anything.
func BackOff(err error) (time.Duration, bool) {
	var r interface{ RetryAfter() time.Duration }
	if errors.As(err, &r) {
		if d := r.RetryAfter(); d > 0 {
			return d, true
		}
	}
	return 0, false
}

// target is what a request addresses; it decides what a 404 means.
type target int

const (
	tItem         target = iota // a message
	tFolder                     // a folder named by the caller's configuration
	tMailbox                    // the mailbox as a whole (folder list, sendMail, id translation)
	tSubscription               // a change notification subscription
	tSubscribe                  // a new subscription to a folder named by configuration
	tBatch                      // a $batch request as a whole
)

// failure is a non-2xx outcome to classify.
type failure struct {
	status    int
	code      string // Graph error code
	message   string // Graph error message (for the subscription validation case)
	kind      target
	perm      string // the permission the operation needs, for 403 hints
	tokenKind string // "app-only", "delegated" or "bearer", for 401 hints
}

// classify maps a failure to its class, the sentinels it matches and a hint.
// It does no I/O; the table in errors_test.go covers every status.
//
//	401                       ClassAuth: the token was refused (says app-only or delegated)
//	403                       ClassConfig: the app or token lacks the permission
//	404                       ErrNotFound; ClassProtocol for a message or subscription,
//	                          ClassConfig for a folder or mailbox named by configuration
//	                          (also when subscribing to it)
//	400 failed validation     ClassConfig when creating a subscription (the notification URL)
//	user/mailbox codes        ClassConfig, ErrNoMailbox (MailboxNotEnabledForRESTAPI,
//	                          ErrorInvalidUser, ResourceNotFound on a mailbox …)
//	400 with our fault        ClassInternal (a malformed request is a bug here)
//	400 other                 ClassProtocol
//	410, sync-state codes     ErrSyncReset (ClassProtocol)
//	429, 503, 504, 509        ErrThrottled (ClassProtocol, Retry-After)
//	3xx, other 4xx, 5xx       ClassProtocol
func (f failure) classify() (mail.ErrorClass, []error, string) {
	code := strings.ToLower(f.code)
	switch code {
	case "syncstatenotfound", "syncstateinvalid", "resyncrequired", "syncstateexpired":
		return mail.ClassProtocol, []error{ErrSyncReset}, ""
	case "mailboxnotenabledforrestapi", "mailboxnotsupportedforrestapi":
		return mail.ClassConfig, []error{ErrNoMailbox, ErrNotFound},
			"Graph cannot reach this mailbox: it is on-premises, inactive, soft-deleted or has no Exchange Online licence"
	case "errorinvaliduser", "errornonexistentmailbox", "request_resourcenotfound", "errormailboxnotfound":
		return mail.ClassConfig, []error{ErrNoMailbox, ErrNotFound}, "no user with this id or address exists in the tenant"
	case "resourcenotfound":
		switch f.kind {
		case tMailbox:
			return mail.ClassConfig, []error{ErrNoMailbox, ErrNotFound},
				"the user does not exist or has no Exchange Online mailbox"
		case tFolder, tSubscribe:
			return mail.ClassConfig, []error{ErrNotFound}, "the folder or the user's mailbox does not exist"
		}
	}
	switch s := f.status; {
	case s == http.StatusUnauthorized:
		return mail.ClassAuth, nil, "the " + f.tokenKind + " token was refused: expired, revoked, or issued for another resource or tenant"
	case s == http.StatusForbidden:
		return mail.ClassConfig, nil, forbiddenHint(code, f.perm)
	case s == http.StatusNotFound:
		switch f.kind {
		case tFolder, tSubscribe:
			return mail.ClassConfig, []error{ErrNotFound}, "no such folder in this mailbox"
		case tMailbox:
			return mail.ClassConfig, []error{ErrNotFound}, "no such user or mailbox"
		case tBatch:
			return mail.ClassConfig, nil, "no $batch endpoint at the Graph URL: check the configured endpoint"
		}
		return mail.ClassProtocol, []error{ErrNotFound}, ""
	case s == http.StatusGone:
		return mail.ClassProtocol, []error{ErrSyncReset}, ""
	case s == http.StatusBadRequest:
		return badRequest(code, f)
	case s == http.StatusMethodNotAllowed, s == http.StatusNotAcceptable, s == http.StatusUnsupportedMediaType:
		return mail.ClassInternal, nil, "the request does not fit the API: a bug in the listener"
	case s == http.StatusTooManyRequests:
		return mail.ClassProtocol, []error{ErrThrottled}, "throttled: too many requests for this app and mailbox"
	case s == http.StatusServiceUnavailable, s == http.StatusGatewayTimeout, s == 509:
		return mail.ClassProtocol, []error{ErrThrottled}, "Graph is busy, retry later"
	case s == http.StatusRequestEntityTooLarge:
		return mail.ClassProtocol, nil, "the request is larger than Graph accepts"
	case s/100 == 3:
		return mail.ClassProtocol, nil, "unexpected redirect"
	case s >= 500:
		return mail.ClassProtocol, nil, "server error, retry later"
	}
	return mail.ClassProtocol, nil, "unexpected response"
}

// badRequest classifies a 400 by its code.
func badRequest(code string, f failure) (mail.ErrorClass, []error, string) {
	switch code {
	case "errorinvalididmalformed":
		if f.kind == tFolder || f.kind == tSubscribe {
			return mail.ClassConfig, []error{ErrNotFound}, "the folder id is malformed"
		}
		if f.kind == tItem {
			return mail.ClassProtocol, []error{ErrNotFound}, "the message id is malformed"
		}
	case "errormimecontentinvalidbase64string", "badrequest", "invalidrequest", "errorinvalidrequest",
		"requestbodyread", "errorinvalidproperty", "errorinvalidurlquery", "errorinvalidurlqueryfilter",
		"errorinvalidparameter":
		if f.kind == tSubscribe && strings.Contains(strings.ToLower(f.message), "validation") {
			break
		}
		return mail.ClassInternal, nil, "Graph refused the request as malformed: a bug in the listener"
	}
	if f.kind == tSubscribe && (code == "validationerror" || strings.Contains(strings.ToLower(f.message), "validation")) {
		return mail.ClassConfig, nil, "the notification URL did not pass Graph's validation: it must be public HTTPS and echo validationToken within 10 s"
	}
	return mail.ClassProtocol, nil, ""
}

// forbiddenHint names the missing permission.
func forbiddenHint(code, perm string) string {
	switch code {
	case "errorsendasdenied":
		return "the mailbox may not send as the message's From address"
	case "authorization_requestdenied":
		return "the app lacks the permission " + perm + " (or admin consent for it)"
	case "erroraccessdenied", "accessdenied", "erroraccessdeniedexception":
		return "the app or token lacks the permission " + perm + " for this mailbox, or an application access policy excludes the mailbox"
	}
	return "access denied: the app or token may lack the permission " + perm
}

// maxRetryAfter caps a Retry-After.
const maxRetryAfter = time.Hour

// retryAfter reads Retry-After: seconds, possibly fractional (Graph sends
// "2.128"), or an HTTP date; capped at an hour, 0 when absent or unreadable.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if f <= 0 || math.IsNaN(f) {
			return 0
		}
		if f >= maxRetryAfter.Seconds() {
			return maxRetryAfter
		}
		return time.Duration(f * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return min(d, maxRetryAfter)
		}
	}
	return 0
}

// excerpt shortens server text for an error message: one line, printable,
// at most maxExcerpt bytes cut at a rune boundary.
func excerpt(s string) string {
	s = strings.TrimSpace(s)
	var b strings.Builder
	space := false
	for _, r := range s {
		if b.Len() >= maxExcerpt {
			b.WriteString("…")
			break
		}
		if unicode.IsSpace(r) {
			space = true
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			r = '?'
		}
		b.WriteRune(r)
	}
	return b.String()
}
