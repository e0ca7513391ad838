// SPDX-License-Identifier: Apache-2.0

package creatio

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Operations of Creatio's ExchangeListenerService.svc that this service calls
// (docs/CREATIO-PROTOCOL.md §11). NewEmail and ProcessBinarySerializedEmail are
// deliberately absent: the first is the legacy id-only mode, the second
// silently drops emails since Creatio 8.0.6 (docs/CREATIO-PROTOCOL.md §11.8).
const (
	OpProcessFullEmail    = "ProcessFullEmail"
	OpProcessMailboxState = "ProcessMailboxState"
	OpRefreshToken        = "RefreshToken"
)

// serviceSegment is the WCF service path Creatio's callback URLs run through.
const serviceSegment = "ExchangeListenerService.svc"

// ErrBadEndpoint is wrapped by every CallbackURL error.
var ErrBadEndpoint = errors.New("creatio: bad callback endpoint")

// CallbackURL derives the URL of operation op from the BpmEndpoint Creatio sent
// (docs/CREATIO-PROTOCOL.md §11.1). Creatio gives one URL, typically ending in
// /NewEmail (the admin docs) or /ProcessFullEmail (auto-generated), so the last
// path segment is replaced by op:
//
//	https://crm/0/ServiceModel/ExchangeListenerService.svc/NewEmail  -> …/ExchangeListenerService.svc/<op>
//	https://crm/ServiceModel/ExchangeListenerService.svc/            -> …/ExchangeListenerService.svc/<op>
//	https://crm/ServiceModel/ExchangeListenerService.svc             -> …/ExchangeListenerService.svc/<op>
//
// Scheme, user info, host and port are kept; query and fragment are dropped.
// The endpoint must be an absolute http or https URL with a path. Errors wrap
// ErrBadEndpoint and show the endpoint without user info or query.
func CallbackURL(endpoint, op string) (string, error) {
	if op == "" || strings.ContainsAny(op, "/?#") {
		return "", fmt.Errorf("%w: invalid operation %q", ErrBadEndpoint, op)
	}
	u, err := url.Parse(strings.TrimSpace(endpoint))
	if err != nil {
		return "", fmt.Errorf("%w: not a URL", ErrBadEndpoint)
	}
	shown := safeURL(u)
	if scheme := strings.ToLower(u.Scheme); scheme != "http" && scheme != "https" {
		return "", fmt.Errorf("%w: %q is not an absolute http(s) URL", ErrBadEndpoint, shown)
	}
	if u.Host == "" || u.Opaque != "" {
		return "", fmt.Errorf("%w: %q has no host", ErrBadEndpoint, shown)
	}
	p := strings.TrimRight(u.EscapedPath(), "/")
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", fmt.Errorf("%w: %q has no path to derive %s from", ErrBadEndpoint, shown, op)
	}
	if last, _ := url.PathUnescape(p[i+1:]); strings.EqualFold(last, serviceSegment) {
		p += "/" + url.PathEscape(op)
	} else {
		p = p[:i+1] + url.PathEscape(op)
	}
	out := *u
	out.RawQuery, out.ForceQuery, out.Fragment, out.RawFragment = "", false, "", ""
	out.RawPath = p
	if out.Path, err = url.PathUnescape(p); err != nil {
		return "", fmt.Errorf("%w: %q has an invalid path", ErrBadEndpoint, shown)
	}
	return out.String(), nil
}

// safeURL renders u for an error message: no user info, query or fragment
// (credentials and full URLs are never logged).
func safeURL(u *url.URL) string {
	v := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, Opaque: u.Opaque}
	return mail.Excerpt(v.String(), 200)
}

// CheckEndpoint is the one rule for a mailbox's BpmEndpoint on every route
// that delivers (create, recreate, update, synchronize): an absolute http(s)
// URL with a path from which the callback operations can be derived. The
// error is a *RequestError for BpmEndpoint.
func CheckEndpoint(endpoint string) error {
	if _, err := CallbackURL(endpoint, OpProcessFullEmail); err != nil {
		return &RequestError{Field: "BpmEndpoint", Offset: -1, Msg: "credentials: BpmEndpoint: " + err.Error(), Err: err}
	}
	return nil
}
