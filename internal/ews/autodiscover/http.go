// SPDX-License-Identifier: Apache-2.0

package autodiscover

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/netguard"
)

// drainBytes is what is read of a body that is not parsed (redirects,
// errors), so the connection can be reused without reading a large body.
const drainBytes = 4 << 10

// errorBodyBytes is what is read of an error answer, for its SOAP fault.
const errorBodyBytes = 64 << 10

// answer is what one request to a candidate gave: a result, a URL or
// address redirect, or a classified failure (*mail.Error).
type answer struct {
	res      *Result
	location *url.URL
	address  string
	err      error
	// decisive: the service answered that it cannot serve the address.
	decisive bool
	// unreachable: the host failed below HTTP (DNS, connect, TLS, timeout).
	unreachable bool
}

func failed(c mail.ErrorClass, format string, args ...any) answer {
	return answer{err: mail.Errorf(c, "", format, args...)}
}

// ask sends the SOAP or POX request for addr to c and interprets the answer.
func (d *discoverer) ask(ctx context.Context, addr string, c candidate) answer {
	rctx, cancel := context.WithTimeoutCause(ctx, d.o.RequestTimeout,
		fmt.Errorf("no answer within %s", d.o.RequestTimeout))
	defer cancel()
	var body []byte
	if c.kind == kindSOAP {
		body = soapRequest(addr, c.u)
	} else {
		body = poxRequest(addr)
	}
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, c.u.String(), bytes.NewReader(body))
	if err != nil {
		return failed(mail.ClassProtocol, "unusable URL")
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	req.Header.Set("Accept", "text/xml")
	// The routing hint Exchange 2013+ and Exchange Online use to find the
	// mailbox's server; harmless where ignored.
	req.Header.Set("X-AnchorMailbox", addr)
	resp, err := d.client.Do(req)
	if err != nil {
		return answer{err: transportError(rctx, err), unreachable: true}
	}
	defer resp.Body.Close()
	switch {
	case isRedirect(resp.StatusCode):
		drain(resp.Body)
		u, err := location(c.u, resp)
		if err != nil {
			return answer{err: err}
		}
		return answer{location: u}
	case resp.StatusCode == http.StatusUnauthorized:
		drain(resp.Body)
		return failed(mail.ClassAuth, "HTTP %s: the credentials were rejected%s", status(resp), offered(resp))
	case resp.StatusCode != http.StatusOK:
		// An error page is only read for a SOAP fault; its size does not
		// matter beyond that.
		data, _ := readBody(resp.Body, min(d.o.MaxResponseBytes, errorBodyBytes))
		if f := soapFault(data); f != "" {
			return failed(mail.ClassProtocol, "HTTP %s: SOAP fault: %s", status(resp), f)
		}
		c := mail.ClassConfig // not an autodiscover endpoint
		if resp.StatusCode >= 500 {
			c = mail.ClassProtocol
		}
		return answer{err: &mail.Error{Class: c, Err: &statusError{code: resp.StatusCode, status: status(resp)}}}
	}
	data, err := readBody(resp.Body, d.o.MaxResponseBytes)
	if err != nil {
		return answer{err: transportError(rctx, err)}
	}
	if c.kind == kindSOAP {
		return soapAnswer(addr, c.u, data)
	}
	return poxAnswer(addr, c.u, data)
}

// get sends the unauthenticated probe GET and returns its redirect target.
func (d *discoverer) get(ctx context.Context, u *url.URL) (*url.URL, error) {
	rctx, cancel := context.WithTimeoutCause(ctx, d.o.RequestTimeout,
		fmt.Errorf("no answer within %s", d.o.RequestTimeout))
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, mail.Errorf(mail.ClassProtocol, "", "unusable URL")
	}
	resp, err := d.probe.Do(req)
	if err != nil {
		return nil, transportError(rctx, err)
	}
	defer resp.Body.Close()
	drain(resp.Body)
	if !isRedirect(resp.StatusCode) {
		return nil, mail.Errorf(mail.ClassConfig, "", "no redirect (HTTP %s)", status(resp))
	}
	return location(u, resp)
}

// isRedirect: the 3xx codes that carry a Location to resend to.
func isRedirect(code int) bool {
	switch code {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// location resolves a redirect's Location against the request URL.
func location(base *url.URL, resp *http.Response) (*url.URL, error) {
	loc := resp.Header.Get("Location")
	if loc == "" {
		return nil, mail.Errorf(mail.ClassProtocol, "", "HTTP %s without a Location", status(resp))
	}
	u, err := base.Parse(loc)
	if err != nil {
		return nil, mail.Errorf(mail.ClassProtocol, "", "HTTP %s with an unusable Location %q", status(resp), mail.Excerpt(loc, 200))
	}
	return u, nil
}

func status(resp *http.Response) string { return mail.Excerpt(resp.Status, 100) }

// offered names the authentication schemes a 401 offers (" (the server
// offers NTLM, Negotiate)"): a client that speaks none of them fails there
// whatever the password.
func offered(resp *http.Response) string {
	var schemes []string
	for _, v := range resp.Header.Values("WWW-Authenticate") {
		if f := strings.Fields(v); len(f) > 0 {
			schemes = append(schemes, mail.Excerpt(strings.TrimSuffix(f[0], ","), 30))
		}
		if len(schemes) == 5 {
			break
		}
	}
	if len(schemes) == 0 {
		return ""
	}
	return " (the server offers " + strings.Join(schemes, ", ") + ")"
}

func drain(r io.Reader) { _, _ = io.Copy(io.Discard, io.LimitReader(r, drainBytes)) }

// errTooLarge: a body over Options.MaxResponseBytes.
var errTooLarge = errors.New("response too large")

// readBody reads at most max bytes of r; more is errTooLarge.
func readBody(r io.Reader, max int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w: larger than %d bytes", errTooLarge, max)
	}
	return data, nil
}

// transportError classifies a failed request or body read; rctx is the
// request's context, whose own deadline makes it a timeout.
func transportError(rctx context.Context, err error) error {
	if errors.Is(err, errTooLarge) {
		return &mail.Error{Class: mail.ClassProtocol, Err: err}
	}
	if rctx.Err() != nil {
		return &mail.Error{Class: mail.ClassTimeout, Err: context.Cause(rctx)}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // its Op and URL are in the attempt already
	}
	var (
		certErr    *tls.CertificateVerificationError
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
		recErr     tls.RecordHeaderError
		alertErr   tls.AlertError
		dnsErr     *net.DNSError
		netErr     net.Error
	)
	switch {
	case errors.Is(err, netguard.ErrForbidden):
		return &mail.Error{Class: mail.ClassConfig, Err: err} // refused again next time: not a blip
	case errors.As(err, &certErr), errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &invalidErr):
		return &mail.Error{Class: mail.ClassCertificate, Err: err}
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return &mail.Error{Class: mail.ClassConfig, Err: &relabeled{"no such host", err}}
	case errors.As(err, &dnsErr):
		return &mail.Error{Class: mail.ClassConnect, Err: err}
	case errors.As(err, &recErr), errors.As(err, &alertErr), strings.Contains(err.Error(), "tls:"):
		return &mail.Error{Class: mail.ClassTLS, Err: err}
	case errors.As(err, &netErr) && netErr.Timeout():
		return &mail.Error{Class: mail.ClassTimeout, Err: err}
	}
	return &mail.Error{Class: mail.ClassConnect, Err: err}
}

// relabeled is an error with a shorter text than its cause ("no such host"
// instead of the resolver's sentence), still reachable by errors.As.
type relabeled struct {
	msg string
	err error
}

func (e *relabeled) Error() string { return e.msg }
func (e *relabeled) Unwrap() error { return e.err }

// statusError is an HTTP answer that is neither success nor redirect.
type statusError struct {
	code   int
	status string
}

func (e *statusError) Error() string { return "HTTP " + e.status }
