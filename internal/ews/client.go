// SPDX-License-Identifier: Apache-2.0

package ews

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Defaults for Options.
const (
	DefaultVersion          = "Exchange2013_SP1"
	DefaultTimeout          = 60 * time.Second
	DefaultMaxResponseBytes = 16 << 20
	DefaultUserAgent        = "emaillistener"
	// DefaultMaxMIME bounds GetMIME when the caller passes no limit.
	DefaultMaxMIME = 64 << 20
)

// Options configures a Client. URL is required; the zero value of every
// other field is a documented default.
type Options struct {
	// URL is the EWS endpoint, https://host/EWS/Exchange.asmx.
	URL string
	// Transport is the base transport: TLS settings, the dialer with the
	// network allow-list. nil: a clone of http.DefaultTransport. An
	// *http.Transport is cloned and limited to HTTP/1.1, because NTLM
	// authenticates a TCP connection (and does not work over HTTP/2), and so
	// that no pooled connection authenticated by this Client's credentials is
	// ever used by another. Any other RoundTripper is used as it is; it must
	// then not be shared between clients with different NTLM credentials.
	Transport http.RoundTripper
	Auth      Auth
	// Version is sent as RequestServerVersion (default Exchange2013_SP1;
	// streaming needs Exchange2010_SP1 or later).
	Version string
	// Timeout bounds every request except Stream, from sending to the last
	// byte of the response (default 60 s).
	Timeout time.Duration
	// MaxResponseBytes bounds ordinary responses (default 16 MiB); larger
	// ones fail as ClassProtocol. GetMIME is bounded by its limit instead.
	MaxResponseBytes int64
	UserAgent        string // default "emaillistener"
	// IdleConnTimeout, when positive, replaces the transport's: how long an
	// idle connection of this client stays open.
	IdleConnTimeout time.Duration
}

// Client talks to one EWS endpoint with one set of credentials. It is safe
// for concurrent use. Constructing it does no I/O.
type Client struct {
	url       string
	version   string
	timeout   time.Duration
	maxResp   int64
	userAgent string
	transport *http.Transport // the clone we own, nil when the caller's is used as is
	auth      *authTransport
	hc        *http.Client
}

// New checks o and builds a Client; the error is ClassConfig.
func New(o Options) (*Client, error) {
	const op = "ews client"
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, mail.Errorf(mail.ClassConfig, op, "the EWS URL must be an absolute http(s) URL")
	}
	if u.User != nil {
		return nil, mail.Errorf(mail.ClassConfig, op, "the EWS URL must not carry credentials")
	}
	if o.Version == "" {
		o.Version = DefaultVersion
	}
	if !knownVersion(o.Version) {
		return nil, mail.Errorf(mail.ClassConfig, op, "unknown RequestServerVersion %q", o.Version)
	}
	if err := o.Auth.validate(); err != nil {
		return nil, mail.Errorf(mail.ClassConfig, op, "%v", err)
	}
	c := &Client{
		url:       u.String(),
		version:   o.Version,
		timeout:   o.Timeout,
		maxResp:   o.MaxResponseBytes,
		userAgent: o.UserAgent,
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.maxResp <= 0 {
		c.maxResp = DefaultMaxResponseBytes
	}
	if c.userAgent == "" {
		c.userAgent = DefaultUserAgent
	}
	base := o.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	if t, ok := base.(*http.Transport); ok {
		c.transport = http1(t)
		if o.IdleConnTimeout > 0 {
			c.transport.IdleConnTimeout = o.IdleConnTimeout
		}
		base = c.transport
	}
	c.auth = newAuthTransport(base, o.Auth)
	c.hc = c.HTTPClient()
	return c, nil
}

// http1 clones t and limits the clone to HTTP/1.1: no HTTP/2 over TLS
// (ALPN offers only http/1.1) or in cleartext.
//
// The clone shares t's TLS configuration instead of copying it (1.4 KiB per
// client, for thousands of mailboxes) when t is limited to HTTP/1.1 itself,
// so that nothing will write to it (net/http writes its ALPN list on a
// transport's first use when HTTP/2 is allowed) and it offers no h2.
func http1(t *http.Transport) *http.Transport {
	c := t.Clone() // runs t's first-use set-up: t's fields are settled after it
	var p http.Protocols
	p.SetHTTP1(true)
	c.Protocols = &p
	c.ForceAttemptHTTP2 = false
	c.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	switch tc := t.TLSClientConfig; {
	case tc != nil && onlyHTTP1(t) && slices.Equal(tc.NextProtos, []string{"http/1.1"}):
		c.TLSClientConfig = tc
	case c.TLSClientConfig != nil:
		c.TLSClientConfig.NextProtos = []string{"http/1.1"} // Clone copied it
	}
	return c
}

// onlyHTTP1 reports whether t speaks nothing but HTTP/1.1.
func onlyHTTP1(t *http.Transport) bool {
	return t.Protocols != nil && t.Protocols.HTTP1() && !t.Protocols.HTTP2() && !t.Protocols.UnencryptedHTTP2()
}

// HTTPClient returns an http.Client that authenticates like c (sharing c's
// connections and AuthAuto's choice), does not follow redirects, and has no
// overall timeout (use request contexts). The autodiscover client uses it.
func (c *Client) HTTPClient() *http.Client {
	return &http.Client{
		Transport:     c.auth,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// CloseIdleConnections closes the idle connections of the transport c owns;
// call it when dropping a Client.
func (c *Client) CloseIdleConnections() {
	c.auth.CloseIdleConnections()
}

// deadline is the cause of a request's timeout; it is a
// context.DeadlineExceeded for errors.Is.
type deadline struct {
	what string
	d    time.Duration
}

func (e *deadline) Error() string { return fmt.Sprintf("%s within %s", e.what, e.d) }
func (e *deadline) Unwrap() error { return context.DeadlineExceeded }

// withTimeout bounds one ordinary request.
func (c *Client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, c.timeout, &deadline{what: "no complete response", d: c.timeout})
}

// opError wraps err for op unless it already carries a class.
func opError(op string, c mail.ErrorClass, err error) error {
	var me *mail.Error
	if errors.As(err, &me) {
		return err
	}
	return &mail.Error{Class: c, Op: "ews " + op, Err: err}
}

// knownVersion checks v against the schema's ExchangeVersionType values.
func knownVersion(v string) bool {
	switch v {
	case "Exchange2007", "Exchange2007_SP1", "Exchange2009", "Exchange2010", "Exchange2010_SP1",
		"Exchange2010_SP2", "Exchange2012", "Exchange2013", "Exchange2013_SP1", "Exchange2015",
		"Exchange2016", "V2015_10_05", "V2016_01_06", "V2016_04_13", "V2016_07_13", "V2016_10_10":
		return true
	}
	return false
}
