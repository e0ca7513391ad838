// SPDX-License-Identifier: Apache-2.0

package ews

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// maxErrorBody bounds what is read of a non-200 response to find a SOAP
// fault in it; faults are a few KiB.
const maxErrorBody = 256 << 10

// statusError classifies a response other than 200. A SOAP fault or
// response message in the body wins over the status (Exchange sends faults
// with 500, and throttling with a fault before it sends 503).
//
//	401                 ClassAuth: credentials rejected; says which scheme was tried
//	403                 ClassConfig: EWS is disabled for this account or it may not use it
//	                    (not ClassAuth: the credentials were accepted, and retrying them
//	                    would count towards an account lock-out)
//	404                 ClassConfig: wrong EWS URL
//	3xx                 ClassProtocol (transient): Exchange redirects to its error page under load
//	500 without SOAP,   ClassProtocol (transient), ErrServerBusy for 503/429 with Retry-After
//	502–504, 429
//	other               ClassProtocol
func (c *Client) statusError(ctx context.Context, op string, resp *http.Response, note *authNote) error {
	code := resp.StatusCode
	if code != http.StatusUnauthorized && code != http.StatusForbidden && code != http.StatusNotFound && code/100 != 3 {
		data, err := readBounded(resp.Body, maxErrorBody, op)
		if err != nil && ctx.Err() != nil {
			return ctxError(ctx, "ews "+op, err)
		}
		if err == nil && len(data) > 0 {
			if ferr := soapError(op, code, data); ferr != nil {
				return ferr
			}
		}
	}
	se := &StatusError{Status: code, Retry: retryAfter(resp.Header)}
	class := mail.ClassProtocol
	switch {
	case code == http.StatusUnauthorized:
		class, se.Text = mail.ClassAuth, unauthorizedText(resp, note)
	case code == http.StatusForbidden:
		class = mail.ClassConfig
		se.Text = "access to EWS is forbidden: EWS is disabled for this mailbox or organisation, or the account may not use EWS"
	case code == http.StatusNotFound:
		class = mail.ClassConfig
		se.Text = "no EWS endpoint at this URL (expected https://host/EWS/Exchange.asmx)"
	case code/100 == 3:
		se.Text = "redirected" + redirectTarget(resp) + "; Exchange does this under load, retry later"
	case code == http.StatusServiceUnavailable, code == http.StatusTooManyRequests:
		se.Text = "server busy, retry later"
	case code >= 500:
		se.Text = "server error without a SOAP fault, retry later"
	default:
		se.Text = "unexpected response"
	}
	return &mail.Error{Class: class, Op: "ews " + op, Err: se}
}

// unauthorizedText names the scheme that was rejected and what the server
// offers, never the credentials.
func unauthorizedText(resp *http.Response, note *authNote) string {
	offered := note.offered
	if offered == "" {
		offered = schemes(resp.Header)
	}
	var s string
	if note.tried == "" {
		s = "the server requires authentication but no credentials it accepts were sent"
	} else {
		s = "the server rejected the credentials (" + note.tried + " authentication)"
	}
	if offered != "" {
		s += "; it offers " + offered
	}
	// Exchange Online explains rejected tokens in x-ms-diagnostics.
	if d := resp.Header.Get("X-Ms-Diagnostics"); d != "" {
		s += "; diagnostics: " + excerpt(d)
	}
	return s
}

// redirectTarget names where a redirect points, without its query (which
// could carry anything).
func redirectTarget(resp *http.Response) string {
	loc, err := resp.Location()
	if err != nil {
		return ""
	}
	return " to " + excerpt(loc.Scheme+"://"+loc.Host+loc.Path)
}

// retryAfter reads a Retry-After of seconds (the HTTP-date form is not used
// by Exchange); capped at an hour.
func retryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0
	}
	return min(time.Duration(n)*time.Second, time.Hour)
}

// soapError finds a fault or a failed response message in a non-200 body;
// nil when the body is not SOAP.
func soapError(op string, status int, data []byte) error {
	f, msgs, err := parseEnvelope[responseMessage](data)
	switch {
	case err != nil:
		return nil
	case f != nil:
		f.Status = status
		return &mail.Error{Class: codeClass(f.Code), Op: "ews " + op, Err: f}
	}
	// Some servers answer a per-message error with 500.
	for _, m := range msgs {
		if err := m.check(op); err != nil {
			return err
		}
	}
	return nil
}
