// SPDX-License-Identifier: Apache-2.0

package graphsrc

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/emaillistener/emaillistener/internal/backoff"
	"github.com/emaillistener/emaillistener/internal/graph"
	"github.com/emaillistener/emaillistener/internal/mail"
)

// Defaults for Options.
const (
	DefaultPollInterval = 30 * time.Second
	DefaultBusyPatience = 2 * time.Minute
	DefaultCategory     = "Creatio"
	DefaultSlack        = time.Minute
	// DefaultSafetyPolls is how many poll intervals pass between two polls
	// of a mailbox whose folders have notification subscriptions.
	DefaultSafetyPolls = 10
)

// Options configures an Adapter. The zero value of every field is a
// documented default, except that application mode needs the tenant, client
// id and secret.
type Options struct {
	// BaseURL and LoginURL are Graph's and the identity platform's
	// endpoints (graph.DefaultBaseURL, graph.DefaultLoginURL).
	BaseURL, LoginURL string
	// Tenant, ClientID and ClientSecret are the service's Entra application
	// (application permissions Mail.ReadWrite and Mail.Send). Without them
	// only mailboxes that bring a Graph token of their own are served.
	Tenant, ClientID, ClientSecret string
	// Transport carries every request (TLS settings, the dialer with the
	// network allow-list); nil: http.DefaultTransport's clone.
	Transport http.RoundTripper
	Timeout   time.Duration // per request; default graph.DefaultTimeout
	// MaxMessageBytes is the largest message downloaded in full; a larger one
	// is delivered as its header (0: graph.DefaultMaxMIME).
	MaxMessageBytes int64
	// PollInterval is how often waiting mailboxes are checked (default 30 s).
	PollInterval time.Duration
	// NotificationURL, when set, is the public URL Graph posts change
	// notifications to; Handler serves its path.
	NotificationURL string
	// SafetyPolls: with notifications, a mailbox is still polled every
	// SafetyPolls × PollInterval (default 10).
	SafetyPolls int
	// BusyPatience is how long one call waits out throttling before it fails
	// (default 2 min).
	BusyPatience time.Duration
	// Category marks delivered messages when the client asks for it
	// (MarkEmailsAsSynchronized); default "Creatio".
	Category string
	// Slack is how far before a new subscription's start mail is still
	// delivered, against clock skew between this host and Exchange (default
	// 1 min; negative: none).
	Slack time.Duration
	// Relay hands change notifications between the replicas of a cluster:
	// Graph posts to whichever replica the load balancer picks, and only
	// the one that made a subscription can check and act on its
	// notifications (nil: a single process).
	Relay  Relay
	Logger *slog.Logger
}

// Relay carries notifications to every replica, this one included.
type Relay interface {
	// Forward publishes a notification collection (graph.MarshalNotifications)
	// that every replica's Adapter.Relayed receives; at most once.
	Forward(ctx context.Context, body []byte) error
}

// Adapter serves Exchange Online mailboxes over Graph. Start runs its
// poller; Open is safe for concurrent use.
type Adapter struct {
	opts Options
	log  *slog.Logger
	app  *graph.Client // nil without application credentials
	poll *poller

	mu        sync.Mutex
	delegated map[string]*delegated // clients of mailboxes with their own Graph token, by token
}

// delegated is a client for one access token, shared by that mailbox's
// sessions (live sync, history, checks) while any is open.
type delegated struct {
	c    *graph.Client
	refs int
}

// New checks opts and returns an Adapter; call Start before Open.
func New(opts Options) (*Adapter, error) {
	if opts.BaseURL == "" {
		opts.BaseURL = graph.DefaultBaseURL
	}
	if opts.LoginURL == "" {
		opts.LoginURL = graph.DefaultLoginURL
	}
	if opts.Transport == nil {
		opts.Transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.SafetyPolls <= 0 {
		opts.SafetyPolls = DefaultSafetyPolls
	}
	if opts.BusyPatience <= 0 {
		opts.BusyPatience = DefaultBusyPatience
	}
	if opts.Category == "" {
		opts.Category = DefaultCategory
	}
	if opts.Slack == 0 {
		opts.Slack = DefaultSlack
	}
	opts.Slack = max(opts.Slack, 0)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Adapter{opts: opts, log: opts.Logger, delegated: map[string]*delegated{}}
	if a.AppMode() {
		c, err := a.client(graph.AppTokens(opts.LoginURL, opts.Tenant, opts.ClientID, opts.ClientSecret, opts.Transport))
		if err != nil {
			return nil, err
		}
		a.app = c
	} else if _, err := a.client(graph.StaticToken("")); err != nil {
		return nil, err // the endpoint is checked even when unused yet
	}
	a.poll = newPoller(a)
	return a, nil
}

// AppMode reports whether the adapter has application credentials.
func (a *Adapter) AppMode() bool {
	return a.opts.Tenant != "" && a.opts.ClientID != "" && a.opts.ClientSecret != ""
}

// Start runs the poller until Stop.
func (a *Adapter) Start(ctx context.Context) error { return a.poll.start(ctx) }

// Stop ends the poller, deletes the notification subscriptions it made and
// waits for its goroutines.
func (a *Adapter) Stop(ctx context.Context) error { return a.poll.stop(ctx) }

func (a *Adapter) client(tokens graph.TokenSource) (*graph.Client, error) {
	return graph.New(graph.Options{BaseURL: a.opts.BaseURL, Transport: a.opts.Transport, Tokens: tokens, Timeout: a.opts.Timeout})
}

// clientFor returns the client mb is read with and its release: the
// application's, or one for the mailbox's own Graph token.
func (a *Adapter) clientFor(mb *mail.Mailbox) (*graph.Client, func(), error) {
	if a.app != nil {
		return a.app, func() {}, nil
	}
	if !mb.UseOAuth || mb.AccessToken == "" {
		return nil, nil, mail.Errorf(mail.ClassConfig, "graph", "Microsoft Graph needs application credentials (EL_GRAPH_TENANT_ID, EL_GRAPH_CLIENT_ID, EL_GRAPH_CLIENT_SECRET) or a Graph access token for the mailbox")
	}
	key := mb.AccessToken
	a.mu.Lock()
	defer a.mu.Unlock()
	d := a.delegated[key]
	if d == nil {
		c, err := a.client(graph.StaticToken(key))
		if err != nil {
			return nil, nil, err
		}
		d = &delegated{c: c}
		a.delegated[key] = d
	}
	d.refs++
	var once sync.Once
	return d.c, func() {
		once.Do(func() {
			a.mu.Lock()
			defer a.mu.Unlock()
			if d.refs--; d.refs == 0 {
				delete(a.delegated, key)
				d.c.CloseIdleConnections()
			}
		})
	}, nil
}

// address is how Graph addresses the mailbox: its e-mail address, which
// Exchange Online accepts wherever a user id or principal name goes.
func address(mb *mail.Mailbox) string {
	if strings.Contains(mb.SenderAddress, "@") {
		return mb.SenderAddress
	}
	if strings.Contains(mb.UserName, "@") {
		return mb.UserName
	}
	return mb.SenderAddress
}

// busyPolicy spaces retries of a throttled call when Graph did not say how
// long to wait; maxBusyWait caps one wait it asks for.
var busyPolicy = backoff.Policy{Min: time.Second, Max: 30 * time.Second}

const maxBusyWait = time.Minute

// retry calls f again while Graph throttles or is busy, for at most the
// adapter's patience.
func retry[T any](ctx context.Context, a *Adapter, f func() (T, error)) (T, error) {
	return backoff.Patient(ctx, busyPolicy, a.opts.BusyPatience, maxBusyWait, throttled, f)
}

// throttled reports whether err is Graph throttling or busy, and how long it
// asked to wait.
func throttled(err error) (time.Duration, bool) {
	d, ok := graph.BackOff(err)
	if ok {
		return d, true
	}
	return 0, errors.Is(err, graph.ErrThrottled)
}
