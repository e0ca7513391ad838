// SPDX-License-Identifier: Apache-2.0

package service

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/emaillistener/emaillistener/internal/creatio"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/syncer"
	"github.com/emaillistener/emaillistener/internal/webhook"
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
//
// Mailboxes registered through the native API (mail.Mailbox.Native) get
// their emails as signed webhook events (package webhook) instead, through
// Webhook; they have no mailbox state reports, and their OAuth tokens are
// renewed by Renew instead of by the client.
type Sink struct {
	Post    Poster
	Webhook SignedPoster
	// LinkBase prefixes the links to attachments too large to travel inside
	// an event (EL_PUBLIC_URL; "": links relative to the service).
	LinkBase string
	// Renew gets a native account a fresh access token and registers it
	// (Service.RenewToken; nil: native accounts cannot use OAuth).
	Renew func(ctx context.Context, mb *mail.Mailbox) error
}

// SignedPoster posts with headers made anew for every attempt
// (delivery.Client.PostSigned); patience 0 retries until ctx ends.
type SignedPoster interface {
	PostSigned(ctx context.Context, op, target string, body []byte, headers func() http.Header, patience time.Duration) error
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
	if mb.Native() {
		return s.deliverWebhook(ctx, mb, msg, patience)
	}
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

// deliverWebhook posts msg as a message.new event to mb's webhook; the
// event's id stays the same on every retry, its signature is made anew.
func (s *Sink) deliverWebhook(ctx context.Context, mb *mail.Mailbox, msg *mail.Message, patience time.Duration) error {
	if s.Webhook == nil {
		return mail.Errorf(mail.ClassInternal, "webhook", "no webhook sender configured")
	}
	if mb.WebhookURL == "" {
		return mail.Errorf(mail.ClassConfig, "webhook", "the account has no webhook url")
	}
	if !mb.Wants(webhook.TypeMessageNew) {
		return nil // filtered out by the account: acknowledged, the cursor moves on
	}
	ev := webhook.NewMessageEvent(mb.ID, msg, mb.WebhookRaw,
		webhook.MessageOptions{InlineMax: mb.WebhookInlineMax, LinkBase: s.LinkBase}, time.Now())
	body, err := webhook.Marshal(ev)
	if err != nil {
		return mail.Wrap(mail.ClassInternal, "encode event", err)
	}
	headers := func() http.Header { return webhook.Headers(mb.WebhookSecret, ev.ID, body, time.Now()) }
	return s.Webhook.PostSigned(ctx, "WebhookMessage", mb.WebhookURL, body, headers, patience)
}

func (s *Sink) ReportState(ctx context.Context, mb *mail.Mailbox, failure error) error {
	if mb.Native() {
		return nil // the state is read with GET /v1/accounts/{id}
	}
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
	if mb.Native() {
		if s.Renew == nil {
			return mail.Errorf(mail.ClassConfig, "refresh token", "native accounts cannot renew OAuth tokens here")
		}
		return s.Renew(ctx, mb)
	}
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
