// SPDX-License-Identifier: Apache-2.0

package graph

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Defaults for Options.
const (
	DefaultBaseURL          = "https://graph.microsoft.com/v1.0"
	DefaultTimeout          = 60 * time.Second
	DefaultMaxResponseBytes = 16 << 20
	DefaultUserAgent        = "emaillistener"
	// DefaultMaxConcurrentPerMailbox is Outlook's limit of concurrent
	// requests per app and mailbox; more are answered with 429.
	DefaultMaxConcurrentPerMailbox = 4
	// DefaultMaxMIME bounds MIME when the caller passes no limit.
	DefaultMaxMIME = 64 << 20
)

// Options configures a Client. Tokens is required; the zero value of every
// other field is a documented default.
type Options struct {
	// BaseURL is the Graph endpoint with its version,
	// https://graph.microsoft.com/v1.0 by default (national clouds have
	// their own host). Links the server returns are followed only on its
	// scheme and host.
	BaseURL string
	// Transport carries the requests: TLS settings, the dialer with the
	// network allow-list. nil: a clone of http.DefaultTransport. It is used
	// as it is (Graph speaks HTTP/2, and bearer tokens do not bind a
	// connection to a mailbox), so one transport may serve many clients.
	Transport http.RoundTripper
	// Tokens supplies the bearer token of every request.
	Tokens TokenSource
	// Timeout bounds every request, from sending to the last byte of the
	// response (default 60 s). Waiting for a mailbox's concurrency slot
	// comes before it and is bounded by the caller's context only.
	Timeout time.Duration
	// MaxResponseBytes bounds ordinary responses (default 16 MiB); larger
	// ones fail as ClassProtocol. MIME is bounded by its limit instead.
	MaxResponseBytes int64
	UserAgent        string // default "emaillistener"
	// MaxConcurrentPerMailbox bounds the requests to one mailbox in flight
	// at once (default 4, Outlook's limit). Mailboxes are told apart by
	// the user argument as given (case-insensitively): a caller that
	// addresses one mailbox by both its id and its address gets two
	// budgets, so use one form per mailbox. A $batch (DeltaBatch) takes
	// one slot per sub-request to the mailbox, at most this many, since
	// Graph runs the sub-requests concurrently.
	MaxConcurrentPerMailbox int
}

// Client talks to Microsoft Graph with one token source. It is safe for
// concurrent use; constructing it does no I/O.
type Client struct {
	base      *url.URL // BaseURL, without a trailing slash
	baseStr   string
	timeout   time.Duration
	maxResp   int64
	userAgent string
	tokens    TokenSource
	own       *http.Transport // the default transport's clone we own, nil otherwise
	hc        *http.Client
	slots     *mailboxSlots
	now       func() time.Time // the clock of Retry-After dates and subscription lifetimes
}

// New checks o and builds a Client; the error is ClassConfig.
func New(o Options) (*Client, error) {
	const op = "graph client"
	if o.BaseURL == "" {
		o.BaseURL = DefaultBaseURL
	}
	u, err := url.Parse(strings.TrimRight(o.BaseURL, "/"))
	switch {
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		return nil, mail.Errorf(mail.ClassConfig, op, "Options.BaseURL must be an absolute http(s) URL")
	case u.User != nil:
		return nil, mail.Errorf(mail.ClassConfig, op, "Options.BaseURL must not carry credentials")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, mail.Errorf(mail.ClassConfig, op, "Options.BaseURL must not have a query or fragment")
	case o.Tokens == nil:
		return nil, mail.Errorf(mail.ClassConfig, op, "Options.Tokens is required")
	}
	c := &Client{
		base:      u,
		baseStr:   u.String(),
		timeout:   o.Timeout,
		maxResp:   o.MaxResponseBytes,
		userAgent: o.UserAgent,
		tokens:    o.Tokens,
		now:       time.Now,
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
	n := o.MaxConcurrentPerMailbox
	if n <= 0 {
		n = DefaultMaxConcurrentPerMailbox
	}
	c.slots = newMailboxSlots(n)
	t := o.Transport
	if t == nil {
		c.own = http.DefaultTransport.(*http.Transport).Clone()
		t = c.own
	}
	c.hc = &http.Client{
		Transport: t,
		// Graph answers these calls directly; a redirect is unexpected and
		// is reported, never followed with the token.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, nil
}

// CloseIdleConnections closes the idle connections of the transport c owns
// (none when Options.Transport was given); call it when dropping a Client.
func (c *Client) CloseIdleConnections() {
	if c.own != nil {
		c.own.CloseIdleConnections()
	}
}

// userPath is /users/{user}, the prefix of every mailbox resource.
func userPath(user string) string { return "/users/" + url.PathEscape(user) }

// resolve makes an absolute URL of a path below BaseURL (starting with
// "/") and an encoded query (may be empty).
func (c *Client) resolve(path, query string) string {
	s := c.baseStr + path
	if query != "" {
		s += "?" + query
	}
	return s
}

// query builds an OData query string. Keys are written as they are ("$select"
// stays readable, as in Microsoft's documentation), values are escaped with
// %20 for spaces.
type query []string

func (q query) add(key, value string) query { return append(q, key, value) }

func (q query) String() string {
	var b strings.Builder
	for i := 0; i+1 < len(q); i += 2 {
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(q[i])
		b.WriteByte('=')
		b.WriteString(strings.ReplaceAll(url.QueryEscape(q[i+1]), "+", "%20"))
	}
	return b.String()
}

// odataTime renders t for an OData $filter (DateTimeOffset literals take no
// quotes).
func odataTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// maxLinkLen bounds a link accepted from the server; delta and skip tokens
// are a few hundred bytes.
const maxLinkLen = 16 << 10

// checkLink accepts a link handed out by the server (@odata.nextLink,
// @odata.deltaLink, Location) only on BaseURL's scheme and host and below
// its path, so that following it sends the token nowhere else.
func (c *Client) checkLink(op, link string) (*url.URL, error) {
	if len(link) > maxLinkLen {
		return nil, &mail.Error{Class: mail.ClassProtocol, Op: op, Err: &LinkError{Reason: "longer than 16 KiB"}}
	}
	u, err := url.Parse(link)
	if err != nil {
		return nil, &mail.Error{Class: mail.ClassProtocol, Op: op, Err: &LinkError{Reason: "not a URL"}}
	}
	switch {
	case !strings.EqualFold(u.Scheme, c.base.Scheme) || !strings.EqualFold(u.Host, c.base.Host):
		return nil, &mail.Error{Class: mail.ClassProtocol, Op: op, Err: &LinkError{Reason: "points to " + excerpt(u.Scheme+"://"+u.Host) + ", not to " + c.base.Scheme + "://" + c.base.Host}}
	case u.User != nil:
		return nil, &mail.Error{Class: mail.ClassProtocol, Op: op, Err: &LinkError{Reason: "carries credentials"}}
	case !strings.HasPrefix(u.EscapedPath(), c.base.EscapedPath()+"/"):
		return nil, &mail.Error{Class: mail.ClassProtocol, Op: op, Err: &LinkError{Reason: "is outside " + c.base.EscapedPath()}}
	}
	return u, nil
}

// relative returns link, already checked, relative to BaseURL (for $batch).
func (c *Client) relative(u *url.URL) string {
	s := strings.TrimPrefix(u.EscapedPath(), c.base.EscapedPath())
	if u.RawQuery != "" {
		s += "?" + u.RawQuery
	}
	return s
}
