// SPDX-License-Identifier: Apache-2.0

package ews

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Conditions callers branch on, matched with errors.Is against any error this
// package returns.
var (
	// ErrNotFound: the item or folder does not exist (any more): deleted or
	// moved before it could be read (ErrorItemNotFound, ErrorFolderNotFound).
	ErrNotFound = errors.New("ews: item or folder not found")
	// ErrInvalidSyncState: the server no longer accepts the sync state
	// (ErrorInvalidSyncStateData); drop it and sync from scratch.
	ErrInvalidSyncState = errors.New("ews: sync state no longer valid")
	// ErrSubscriptionLost: the subscription is gone (expired, server
	// restarted, lost affinity, mailbox moved); subscribe again and resync.
	ErrSubscriptionLost = errors.New("ews: subscription lost")
	// ErrExceededConnectionCount: too many open streaming connections for
	// the account whose budget the request draws on.
	ErrExceededConnectionCount = errors.New("ews: too many streaming connections")
	// ErrExceededSubscriptionCount: the account holds the maximum number of
	// subscriptions.
	ErrExceededSubscriptionCount = errors.New("ews: too many subscriptions")
	// ErrServerBusy: the server throttles or is overloaded; BackOff tells how
	// long to wait when it said so.
	ErrServerBusy = errors.New("ews: server busy")
	// ErrStreamClosed: Next was called after Close.
	ErrStreamClosed = errors.New("ews: stream closed")
)

// maxExcerpt bounds the server text quoted in an error.
const maxExcerpt = 300

// ResponseError is a per-message error: the server processed the request
// (HTTP 200) but answered one response message with ResponseClass Error.
type ResponseError struct {
	Op   string // the EWS operation, e.g. "GetItem"
	Code string // ResponseCode, e.g. "ErrorItemNotFound"
	// Inner is the more specific code an ErrorInternalServerError carries in
	// its MessageXml (InnerErrorResponseCode), e.g. "ErrorServerBusy".
	Inner string
	Text  string // an excerpt of MessageText
	// Class is the mail error class this code maps to (also the class of the
	// *mail.Error wrapping it).
	Class   mail.ErrorClass
	BackOff time.Duration // MessageXml BackOffMilliseconds, 0 when absent
}

func (e *ResponseError) Error() string {
	s := e.Code
	if e.Inner != "" {
		s += " (" + e.Inner + ")"
	}
	if e.Text != "" {
		s += ": " + e.Text
	}
	if h := codeHint(e.effective()); h != "" {
		s += " (" + h + ")"
	}
	return s
}

// effective is the code that decides: the inner one when there is one.
func (e *ResponseError) effective() string {
	if e.Inner != "" {
		return e.Inner
	}
	return e.Code
}

// Is matches the sentinel of the response code.
func (e *ResponseError) Is(target error) bool {
	return target != nil && codeSentinel(e.effective()) == target
}

// RetryAfter is the back-off the server asked for, 0 when none.
func (e *ResponseError) RetryAfter() time.Duration { return e.BackOff }

// Fault is a request-level failure the server answered with a SOAP fault
// (usually HTTP 500): throttling, schema violations, bad server version,
// impersonation refused.
type Fault struct {
	Code    string // the EWS code (detail ResponseCode, else the faultcode's local part)
	Text    string // an excerpt of faultstring (or the detail Message)
	Status  int    // HTTP status it came with
	BackOff time.Duration
}

func (e *Fault) Error() string {
	s := fmt.Sprintf("SOAP fault %s (HTTP %d)", e.Code, e.Status)
	if e.Text != "" {
		s += ": " + e.Text
	}
	if h := codeHint(e.Code); h != "" {
		s += " (" + h + ")"
	}
	return s
}

// Is matches the sentinel of the fault code.
func (e *Fault) Is(target error) bool { return target != nil && codeSentinel(e.Code) == target }

// RetryAfter is the back-off the server asked for, 0 when none.
func (e *Fault) RetryAfter() time.Duration { return e.BackOff }

// StatusError is an HTTP response without a usable SOAP body.
type StatusError struct {
	Status int
	Text   string        // what it means for the listener
	Retry  time.Duration // Retry-After, 0 when absent
}

// Error reads like .NET's WebException ("(401) Unauthorized"), which
// Creatio's error handlers for Exchange are written against.
func (e *StatusError) Error() string {
	return fmt.Sprintf("HTTP (%d) %s: %s", e.Status, http.StatusText(e.Status), e.Text)
}

// RetryAfter is the server's Retry-After, 0 when none.
func (e *StatusError) RetryAfter() time.Duration { return e.Retry }

// Is reports 503 and 429 as ErrServerBusy.
func (e *StatusError) Is(target error) bool {
	return target == ErrServerBusy && (e.Status == 503 || e.Status == 429)
}

// BackOff returns how long the server asked the client to wait before the
// next request (ErrorServerBusy's BackOffMilliseconds, Retry-After), and
// whether it said anything.
func BackOff(err error) (time.Duration, bool) {
	var r interface{ RetryAfter() time.Duration }
	if errors.As(err, &r) {
		if d := r.RetryAfter(); d > 0 {
			return d, true
		}
	}
	return 0, false
}

// codeSentinel maps response codes to the sentinels callers branch on.
func codeSentinel(code string) error {
	switch code {
	case "ErrorItemNotFound", "ErrorFolderNotFound":
		return ErrNotFound
	case "ErrorInvalidSyncStateData":
		return ErrInvalidSyncState
	case "ErrorSubscriptionNotFound", "ErrorInvalidSubscription", "ErrorExpiredSubscription",
		"ErrorReadEventsFailed", "ErrorMissedNotificationEvents", "ErrorInvalidWatermark",
		"ErrorProxyRequestNotAllowed":
		return ErrSubscriptionLost
	case "ErrorExceededConnectionCount":
		return ErrExceededConnectionCount
	case "ErrorExceededSubscriptionCount":
		return ErrExceededSubscriptionCount
	case "ErrorServerBusy":
		return ErrServerBusy
	}
	return nil
}

// codeClass maps a response or fault code to a mail error class. Unknown
// codes are protocol errors: the caller retries with back-off.
func codeClass(code string) mail.ErrorClass {
	switch code {
	case "ErrorImpersonateUserDenied", "ErrorImpersonationDenied", "ErrorImpersonationFailed",
		"ErrorNonExistentMailbox", "ErrorInvalidExchangeImpersonationHeaderData",
		"ErrorAccessDenied", "ErrorSendAsDenied", "ErrorFolderNotFound", "ErrorInvalidLicense",
		"ErrorInvalidServerVersion", "ErrorInvalidSchemaVersionForMailboxVersion",
		"ErrorSubscriptionDelegateAccessNotSupported", "ErrorSubscriptionAccessDenied",
		"ErrorMailboxConfiguration", "ErrorAccountDisabled":
		return mail.ClassConfig
	case "ErrorSchemaValidation", "ErrorInvalidRequest", "ErrorInvalidSubscriptionRequest":
		// The request did not validate: a bug on our side, not the server's.
		return mail.ClassInternal
	case "ErrorTimeoutExpired":
		return mail.ClassTimeout
	}
	return mail.ClassProtocol
}

// codeHint says in plain words what the configuration codes mean, so that
// the error shown to the mailbox owner names the fix.
func codeHint(code string) string {
	switch code {
	case "ErrorImpersonateUserDenied", "ErrorImpersonationDenied", "ErrorImpersonationFailed":
		return "the service account may not impersonate this mailbox: grant it the ApplicationImpersonation role (on-premises) or full_access_as_app"
	case "ErrorNonExistentMailbox":
		return "no mailbox with this address exists on the server"
	case "ErrorInvalidExchangeImpersonationHeaderData":
		return "the token requires impersonation of a mailbox address"
	case "ErrorAccessDenied", "ErrorSubscriptionAccessDenied":
		return "the account lacks the rights for this mailbox"
	case "ErrorSendAsDenied":
		return "the account may not send as this sender"
	case "ErrorInvalidServerVersion", "ErrorInvalidSchemaVersionForMailboxVersion":
		return "the requested server version is not supported by this server"
	}
	return ""
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
		switch {
		case unicode.IsSpace(r):
			space = true
			continue
		case space:
			b.WriteByte(' ')
		}
		space = false
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			r = '?'
		}
		b.WriteRune(r)
	}
	return b.String()
}
