// SPDX-License-Identifier: Apache-2.0

package service

import (
	"context"
	"errors"
	"time"

	"github.com/emaillistener/emaillistener/internal/creatio"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/syncer"
)

// stateReportTimeout bounds a ProcessMailboxState call: the report is advisory,
// and a supervisor must not hang on it while Creatio is down.
const stateReportTimeout = 30 * time.Second

// Poster posts a JSON body to a callback URL with retries (delivery.Client):
// Post until it is acknowledged, refused for good or ctx ends; PostWithin
// gives up with a retryable error after patience.
type Poster interface {
	Post(ctx context.Context, op, target string, body []byte) error
	PostWithin(ctx context.Context, op, target string, body []byte, patience time.Duration) error
}

// Sink delivers parsed emails and mailbox states to Creatio's
// ExchangeListenerService.svc, one email per ProcessFullEmail call
// (docs/CREATIO-PROTOCOL.md §11).
type Sink struct {
	Post Poster
}

var _ syncer.Sink = (*Sink)(nil)

func (s *Sink) Deliver(ctx context.Context, mb *mail.Mailbox, msg *mail.Message) error {
	return s.deliver(ctx, mb, msg, 0)
}

// HistoryPatience is how long a history load's delivery retries before the
// load steps aside (history.Loader then frees its slot and retries later):
// a dead callback must not hold the slots other mailboxes' loads wait for.
const HistoryPatience = 10 * time.Second

// DeliverWithin is Deliver that gives up, with a retryable error, once
// retrying has taken patience.
func (s *Sink) DeliverWithin(patience time.Duration) func(ctx context.Context, mb *mail.Mailbox, msg *mail.Message) error {
	return func(ctx context.Context, mb *mail.Mailbox, msg *mail.Message) error {
		return s.deliver(ctx, mb, msg, patience)
	}
}

// deliver posts msg to ProcessFullEmail; patience 0 retries until ctx ends.
func (s *Sink) deliver(ctx context.Context, mb *mail.Mailbox, msg *mail.Message, patience time.Duration) error {
	url, err := creatio.CallbackURL(mb.Endpoint, "ProcessFullEmail")
	if err != nil {
		return mail.Wrap(mail.ClassConfig, "callback url", err)
	}
	email := creatio.NewEmail(msg)
	body, err := creatio.Marshal(creatio.NewLoadEmailCommand(mb, []creatio.Email{email}, time.Now()))
	if err != nil {
		return mail.Wrap(mail.ClassInternal, "encode email", err)
	}
	if patience > 0 {
		return s.Post.PostWithin(ctx, "ProcessFullEmail", url, body, patience)
	}
	return s.Post.Post(ctx, "ProcessFullEmail", url, body)
}

func (s *Sink) ReportState(ctx context.Context, mb *mail.Mailbox, failure error) error {
	url, err := creatio.CallbackURL(mb.Endpoint, "ProcessMailboxState")
	if err != nil {
		return mail.Wrap(mail.ClassConfig, "callback url", err)
	}
	body, err := creatio.Marshal(creatio.NewMailboxStateForError(mb, failure))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeoutCause(ctx, stateReportTimeout, errors.New("mailbox state report timeout"))
	defer cancel()
	return s.Post.Post(ctx, "ProcessMailboxState", url, body)
}

// RefreshToken asks Creatio for a fresh OAuth token (docs/CREATIO-PROTOCOL.md §11.7); Creatio
// answers by calling POST /api/listeners/update with new credentials.
func (s *Sink) RefreshToken(ctx context.Context, mb *mail.Mailbox) error {
	url, err := creatio.CallbackURL(mb.Endpoint, "RefreshToken")
	if err != nil {
		return mail.Wrap(mail.ClassConfig, "callback url", err)
	}
	body, err := creatio.Marshal(creatio.NewMailboxInfo(mb))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeoutCause(ctx, stateReportTimeout, errors.New("token refresh request timeout"))
	defer cancel()
	return s.Post.Post(ctx, "RefreshToken", url, body)
}
