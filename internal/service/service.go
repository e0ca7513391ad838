// SPDX-License-Identifier: Apache-2.0

// Package service is what the API does, in the client's terms: register and
// close subscriptions (through a placement, local or clustered), report their
// states, and the calls that work on one mailbox's server at once (validate,
// folders, synchronize, send, availability), dispatched to the mailbox's
// protocol. It implements the HTTP layer's Service and MailboxService; the
// wire shapes come from package creatio.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/emaillistener/emaillistener/internal/creatio"
	"github.com/emaillistener/emaillistener/internal/history"
	"github.com/emaillistener/emaillistener/internal/httpapi"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/obs"
	"github.com/emaillistener/emaillistener/internal/placement"
	"github.com/emaillistener/emaillistener/internal/syncer"
)

// Placement registers subscriptions and tells where they run.
type Placement interface {
	Subscribe(ctx context.Context, mb *mail.Mailbox, mode mail.Mode) error
	Close(ctx context.Context, id mail.MailboxID) error
	// States returns the status of the ids some node serves.
	States(ctx context.Context, ids []mail.MailboxID) (map[mail.MailboxID]mail.Status, error)
}

// Loads runs history loads.
type Loads interface {
	Load(ctx context.Context, mb *mail.Mailbox, q mail.Query) error
	Progress(id mail.MailboxID) (mail.HistoryProgress, bool)
	Forget(id mail.MailboxID)
}

// Counter counts this node's subscriptions per state.
type Counter interface{ Counts() map[string]int }

// Probe is a logged-in session with a mailbox's server.
type Probe interface {
	Folders(ctx context.Context) ([]mail.Folder, error)
	Close() error
}

// Protocol is what the mailbox calls need of one mail protocol.
type Protocol struct {
	// Open connects and logs in (validate, folders).
	Open func(ctx context.Context, mb *mail.Mailbox) (Probe, error)
	// Send sends msg with the send credentials mb; a non-nil error's
	// UserMessage, if it has one, is shown to the user.
	Send func(ctx context.Context, mb *mail.Mailbox, msg *mail.Message) error
	// SendRaw sends a complete message as it is (nil: not supported).
	SendRaw func(ctx context.Context, mb *mail.Mailbox, raw []byte) error
	// Describe turns a failed Open into a sentence for the diagnostics page
	// (nil: the error's text).
	Describe func(mb *mail.Mailbox, err error) string
}

// Options configures New. Placement, Loads and Counter are required.
type Options struct {
	Placement Placement
	Loads     Loads
	Counter   Counter
	Protocols map[mail.ServerKind]Protocol
	Version   string
	Store     string // "memory" or "redis", for status
	Node      string
	// ProbeTimeout bounds validate and folders; ProbeConcurrency how many
	// validate, folders and availability checks run at once.
	ProbeTimeout     time.Duration
	ProbeConcurrency int
	// PingClient is the availability check's HTTP client; Restricted says a
	// callback allow-list is set (the check then says nothing about why a
	// host was not reached).
	PingClient *http.Client
	Restricted bool
	// OAuth redeems native accounts' refresh tokens (oauthtoken.Client;
	// nil: native accounts cannot use OAuth).
	OAuth  TokenRedeemer
	Logger *slog.Logger
}

// TokenRedeemer redeems an OAuth refresh token for an access token; it
// returns the refresh token to keep (rotated or not).
type TokenRedeemer interface {
	Token(ctx context.Context, o *mail.OAuth2) (access, refresh string, err error)
}

// Service implements httpapi.Service and httpapi.MailboxService.
type Service struct {
	opts    Options
	log     *slog.Logger
	started time.Time
	probes  chan struct{}
	// renewals joins concurrent token renewals of one account (the live
	// subscription and a send may both find the token expired): a rotated
	// refresh token can be redeemed only once.
	renewals singleflight.Group
}

var (
	_ httpapi.Service        = (*Service)(nil)
	_ httpapi.MailboxService = (*Service)(nil)
)

// New returns a Service; it does no I/O.
func New(opts Options) (*Service, error) {
	if opts.Placement == nil || opts.Loads == nil || opts.Counter == nil {
		return nil, errors.New("service: Options.Placement, Loads and Counter are required")
	}
	if opts.ProbeTimeout <= 0 {
		opts.ProbeTimeout = 20 * time.Second
	}
	if opts.ProbeConcurrency <= 0 {
		opts.ProbeConcurrency = 16
	}
	if opts.PingClient == nil {
		opts.PingClient = PingClient(nil)
	}
	if opts.Logger == nil {
		opts.Logger = obs.Discard()
	}
	return &Service{opts: opts, log: opts.Logger, started: time.Now(), probes: make(chan struct{}, opts.ProbeConcurrency)}, nil
}

// Subscribe registers and starts (or restarts, or updates) subscriptions.
func (s *Service) Subscribe(ctx context.Context, mbs []*mail.Mailbox, mode mail.Mode) error {
	for _, mb := range mbs { // all or nothing: refuse before subscribing any
		if _, ok := s.opts.Protocols[mb.Kind]; !ok {
			return &creatio.RequestError{Field: "ServerTypeId", Offset: -1, Err: httpapi.ErrUnsupported,
				Msg: fmt.Sprintf("credentials: %s mailboxes are not supported by this version of the service", mb.Kind)}
		}
	}
	for _, mb := range mbs {
		if err := s.opts.Placement.Subscribe(ctx, mb, mode); err != nil {
			return unavailable(err)
		}
	}
	return nil
}

// unavailable maps the placement's temporary refusals to the API's 503.
func unavailable(err error) error {
	switch {
	case errors.Is(err, placement.ErrFull), errors.Is(err, placement.ErrUnreadable):
		return fmt.Errorf("%w: %v", httpapi.ErrUnavailable, err)
	case errors.Is(err, syncer.ErrStopped), errors.Is(err, history.ErrStopped):
		return httpapi.ErrUnavailable
	}
	return err
}

// Close stops and forgets subscriptions and their history loads.
func (s *Service) Close(ctx context.Context, ids []mail.MailboxID) error {
	for _, id := range ids {
		s.opts.Loads.Forget(id)
		if err := s.opts.Placement.Close(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// States reports each id's subscription state, wherever it runs.
func (s *Service) States(ctx context.Context, ids []mail.MailboxID) (map[mail.MailboxID]creatio.SubscriptionState, error) {
	states, err := s.opts.Placement.States(ctx, ids)
	if err != nil {
		return nil, unavailable(err)
	}
	out := make(map[mail.MailboxID]creatio.SubscriptionState, len(ids))
	for _, id := range ids {
		var st *mail.Status
		if v, ok := states[id]; ok {
			st = &v
		}
		var hist *mail.HistoryProgress
		if p, ok := s.opts.Loads.Progress(id); ok {
			hist = &p
		}
		out[id] = creatio.SubscriptionStateOf(st, hist)
	}
	return out, nil
}

// Status is the body of /status and /exists.
func (s *Service) Status(context.Context) creatio.ServiceStatus {
	counts := s.opts.Counter.Counts()
	total := 0
	for _, n := range counts {
		total += n
	}
	return creatio.ServiceStatus{
		ServiceStatus: creatio.StatusStarted,
		Version:       s.opts.Version,
		Extra: map[string]any{
			"Subscriptions": counts,
			"Total":         total,
			"Goroutines":    runtime.NumGoroutine(),
			"Uptime":        time.Since(s.started).Round(time.Second).String(),
			"Store":         s.opts.Store,
			"Node":          s.opts.Node,
		},
	}
}
