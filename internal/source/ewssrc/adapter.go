// SPDX-License-Identifier: Apache-2.0

package ewssrc

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/emaillistener/emaillistener/internal/ews"
	"github.com/emaillistener/emaillistener/internal/mail"
)

// Defaults for Options.
const (
	DefaultIdle          = 90 * time.Second
	DefaultGroupSize     = 200
	DefaultBusyPatience  = 2 * time.Minute
	DefaultCategory      = "Creatio"
	DefaultBaselineSlack = time.Minute
	// DefaultStreamMinutes is the longest ConnectionTimeout EWS accepts.
	DefaultStreamMinutes = 30
)

// Options configures an Adapter. The zero value of every field is a
// documented default.
type Options struct {
	// Transport is the base of every connection: TLS settings and the dialer
	// with the network allow-list. Each mailbox gets its own clone, because
	// NTLM authenticates a connection, not a request.
	Transport *http.Transport
	// Auth is how passwords are sent: ews.AuthAuto (default: NTLM when the
	// server offers it, else Basic), ews.AuthBasic or ews.AuthNTLM. Mailboxes
	// with an OAuth token always send it as a bearer token.
	Auth    ews.AuthScheme
	Version string        // RequestServerVersion; default ews.DefaultVersion
	Timeout time.Duration // per request; default ews.DefaultTimeout
	// MaxMessageBytes is the largest message downloaded in full; a larger one
	// is delivered as its header (0: no limit).
	MaxMessageBytes int64
	// Idle is how long a stream may stay silent (Exchange sends a heartbeat
	// at least every 45 s) before it is taken for dead (default 90 s).
	Idle time.Duration
	// StreamMinutes is the ConnectionTimeout asked for each
	// GetStreamingEvents, 1–30 (default 30).
	StreamMinutes int
	// Impersonation is an account with the ApplicationImpersonation role: when
	// set, it holds the subscriptions and streams of up to GroupSize
	// mailboxes of one server per connection.
	Impersonation *Account
	GroupSize     int // default 200, the most one GetStreamingEvents takes
	// AutodiscoverURLs replace the endpoints Autodiscover derives from the
	// e-mail domain (an internal autodiscover host; tests).
	AutodiscoverURLs []string
	// BusyPatience is how long one call waits out ErrorServerBusy before it
	// fails (default 2 min).
	BusyPatience time.Duration
	// Category marks delivered items when the client asks for it
	// (MarkEmailsAsSynchronized); default "Creatio".
	Category string
	// BaselineSlack is how far before a new subscription's start mail is
	// still delivered, against clock skew between this host and Exchange
	// (default 1 min; negative: none).
	BaselineSlack time.Duration
	Logger        *slog.Logger
}

// Account is a login used for every mailbox it serves.
type Account struct {
	User, Password string
}

// Adapter serves Exchange mailboxes. Start runs its streaming hub; Open is
// safe for concurrent use.
type Adapter struct {
	opts Options
	log  *slog.Logger
	hub  *hub

	mu         sync.Mutex
	discovered map[string]discovery // by e-mail address
}

// discovery is a cached Autodiscover answer.
type discovery struct {
	url, group string
	expires    time.Time
}

// discoveryTTL is how long an Autodiscover answer is reused; Exchange moves a
// mailbox rarely, and a failing call rediscovers at once.
const discoveryTTL = time.Hour

// New returns an Adapter; call Start before Open.
func New(opts Options) *Adapter {
	if opts.Transport == nil {
		opts.Transport = http.DefaultTransport.(*http.Transport)
	}
	if opts.Idle <= 0 {
		opts.Idle = DefaultIdle
	}
	if opts.StreamMinutes <= 0 || opts.StreamMinutes > DefaultStreamMinutes {
		opts.StreamMinutes = DefaultStreamMinutes
	}
	if opts.GroupSize <= 0 || opts.GroupSize > DefaultGroupSize {
		opts.GroupSize = DefaultGroupSize
	}
	if opts.BusyPatience <= 0 {
		opts.BusyPatience = DefaultBusyPatience
	}
	if opts.Category == "" {
		opts.Category = DefaultCategory
	}
	if opts.BaselineSlack == 0 {
		opts.BaselineSlack = DefaultBaselineSlack
	}
	opts.BaselineSlack = max(opts.BaselineSlack, 0)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Adapter{opts: opts, log: opts.Logger, discovered: map[string]discovery{}}
	a.hub = newHub(a)
	return a
}

// Start runs the streaming hub until Stop.
func (a *Adapter) Start(ctx context.Context) error { return a.hub.start(ctx) }

// Stop ends every stream and waits for the hub's goroutines.
func (a *Adapter) Stop(ctx context.Context) error { return a.hub.stop(ctx) }

// WatchByDefault is the folder rule when the client names no folders: the
// inbox only. Creatio lists Exchange folders by id and sends the ones the user
// picked; "all folders" on Exchange has always meant the inbox.
func WatchByDefault(f mail.Folder) bool { return f.Inbox }

// address is the mailbox's SMTP address: what impersonation, X-AnchorMailbox
// and Autodiscover need.
func address(mb *mail.Mailbox) string {
	if strings.Contains(mb.SenderAddress, "@") {
		return mb.SenderAddress
	}
	if strings.Contains(mb.UserName, "@") {
		return mb.UserName
	}
	return mb.SenderAddress
}

// credentials is how mb logs in.
func (a *Adapter) credentials(mb *mail.Mailbox) ews.Auth {
	if mb.UseOAuth {
		return ews.Auth{Scheme: ews.AuthBearer, Token: mb.AccessToken}
	}
	user := mb.UserName
	if user == "" {
		user = mb.SenderAddress
	}
	return ews.Auth{Scheme: a.opts.Auth, User: user, Password: mb.Password}
}

// fetchIdle is how long a mailbox keeps the connection of its last sync or
// download open: long enough for a burst of mail to reuse it, short enough
// that an idle mailbox holds only its stream (an idle TLS connection costs
// about 40 KiB and two goroutines).
const fetchIdle = 15 * time.Second

// client returns an EWS client for url logging in with auth, on its own
// connections.
func (a *Adapter) client(url string, auth ews.Auth) (*ews.Client, error) {
	return ews.New(ews.Options{URL: url, Transport: a.opts.Transport, Auth: auth, Version: a.opts.Version, Timeout: a.opts.Timeout,
		IdleConnTimeout: fetchIdle})
}
