// SPDX-License-Identifier: Apache-2.0

package ews

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Target says whose mailbox a call acts on and how the request is routed.
type Target struct {
	// Impersonate is the SMTP address sent as ExchangeImpersonation
	// (ConnectingSID/SmtpAddress); empty: act as the authenticated account.
	Impersonate string
	// Anchor is sent as X-AnchorMailbox, the routing hint Exchange needs
	// with impersonation (and with app-only tokens); default Impersonate.
	// For a group of subscriptions sharing one streaming connection it is
	// the group's anchor mailbox for every member.
	Anchor string
	// Affinity, when set, pins the request to the backend server holding
	// the group's subscriptions.
	Affinity *Affinity
}

func (t Target) anchor() string {
	if t.Anchor != "" {
		return t.Anchor
	}
	return t.Impersonate
}

// check refuses addresses that cannot go into a header or an XML element.
func (t Target) check() error {
	for _, s := range []string{t.Impersonate, t.Anchor} {
		if strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			return mail.Errorf(mail.ClassConfig, "ews target", "the mailbox address contains control characters")
		}
	}
	return nil
}

// affinityCookie is the cookie Exchange sets on the anchor's Subscribe and
// routes by while X-PreferServerAffinity is sent.
const affinityCookie = "X-BackEndOverrideCookie"

// Affinity keeps the backend cookie of a group of mailboxes whose
// subscriptions share one streaming connection. The zero value is ready; it
// is safe for concurrent use. Requests with an Affinity send
// X-PreferServerAffinity and, once known, the cookie (both as a Cookie and as
// an X-BackEndOverrideCookie header, since clients in the field do either);
// every response's Set-Cookie updates it. Exchange sets it on the response to
// the anchor mailbox's Subscribe and does not repeat it, so subscribe the
// anchor first.
type Affinity struct {
	mu     sync.Mutex
	cookie string
}

// Cookie returns the backend cookie, "" while unknown.
func (a *Affinity) Cookie() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cookie
}

// SetCookie restores a cookie saved earlier ("" forgets it).
func (a *Affinity) SetCookie(v string) {
	a.mu.Lock()
	a.cookie = v
	a.mu.Unlock()
}

// capture takes the cookie from a response's Set-Cookie, if there.
func (a *Affinity) capture(resp *http.Response) {
	for _, ck := range resp.Cookies() {
		if ck.Name == affinityCookie && ck.Value != "" {
			a.SetCookie(ck.Value)
		}
	}
}

// setHeaders adds the routing and tracing headers of t to req.
func (c *Client) setHeaders(req *http.Request, t Target) {
	h := req.Header
	h.Set("Content-Type", "text/xml; charset=utf-8")
	h.Set("Accept", "text/xml")
	h.Set("User-Agent", c.userAgent)
	h.Set("client-request-id", newGUID())
	h.Set("return-client-request-id", "true")
	if a := t.anchor(); a != "" {
		h.Set("X-AnchorMailbox", a)
	}
	if t.Affinity != nil {
		h.Set("X-PreferServerAffinity", "true")
		if v := t.Affinity.Cookie(); v != "" {
			h.Set(affinityCookie, v)
			req.AddCookie(&http.Cookie{Name: affinityCookie, Value: v})
		}
	}
}

// newGUID returns a random (version 4) GUID for client-request-id, which
// Exchange echoes and logs, so a request can be found in its logs.
func newGUID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand panics rather than return an error)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
