// SPDX-License-Identifier: Apache-2.0

// Package outbox sends the client's outgoing mail for IMAP mailboxes: SMTP
// submission (package sender) with the send credentials, then a copy in the
// Sent folder of the mailbox's IMAP account, unless the provider files sent
// mail itself.
package outbox

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/obs"
	"github.com/emaillistener/emaillistener/internal/sender"
	"github.com/emaillistener/emaillistener/internal/source/imapsrc"
)

// Append-to-Sent policies (EL_APPEND_SENT).
const (
	AppendSentAuto   = "auto"   // append unless the provider files sent mail itself
	AppendSentAlways = "always" // always append
	AppendSentNever  = "never"  // never append
)

// selfFilingHosts are providers whose SMTP submission already stores a copy
// in the Sent folder; appending would create a duplicate.
var selfFilingHosts = []string{"gmail.com", "googlemail.com", "google.com", "office365.com", "outlook.com", "office.com", "live.com", "hotmail.com"}

// Registry finds the IMAP registration of the mailbox whose mail is sent.
type Registry interface {
	Mailbox(ctx context.Context, id mail.MailboxID) (*mail.Mailbox, error)
}

// Options configures an SMTP outbox.
type Options struct {
	SMTP     *sender.Options
	IMAP     *imapsrc.Options
	Policy   string // AppendSent*; default auto
	Registry Registry
	// IsMissing reports a Registry error meaning "not registered here".
	IsMissing func(error) bool
	Logger    *slog.Logger
}

// SMTP sends over SMTP and files a copy over IMAP.
type SMTP struct {
	opts Options
	log  *slog.Logger
}

// New returns an SMTP outbox; it does no I/O.
func New(opts Options) *SMTP {
	if opts.Policy == "" {
		opts.Policy = AppendSentAuto
	}
	if opts.Logger == nil {
		opts.Logger = obs.Discard()
	}
	return &SMTP{opts: opts, log: opts.Logger}
}

// Send submits msg through smtp (the send credentials) and files the copy.
func (s *SMTP) Send(ctx context.Context, smtp *mail.Mailbox, msg *mail.Message) error {
	raw, err := sender.Send(ctx, smtp, msg, s.opts.SMTP)
	if err != nil {
		return &mail.UserError{Err: err, Msg: sender.UserMessage(err)}
	}
	s.appendSent(ctx, smtp, raw)
	return nil
}

// SendRaw submits raw, a complete message, through smtp and files the copy.
func (s *SMTP) SendRaw(ctx context.Context, smtp *mail.Mailbox, raw []byte) error {
	sent, err := sender.SendRaw(ctx, smtp, raw, s.opts.SMTP)
	if err != nil {
		return &mail.UserError{Err: err, Msg: sender.UserMessage(err)}
	}
	s.appendSent(ctx, smtp, sent)
	return nil
}

// appendSent files raw in the Sent folder of the registered (IMAP) mailbox
// with the same id. The email is already sent, so failures are only logged.
func (s *SMTP) appendSent(ctx context.Context, smtp *mail.Mailbox, raw []byte) {
	log := s.log.With("mailbox", string(smtp.ID))
	policy := s.opts.Policy
	if policy == AppendSentNever || (policy == AppendSentAuto && selfFiling(smtp.Host)) {
		return
	}
	imapMB, err := s.opts.Registry.Mailbox(ctx, smtp.ID)
	if err != nil {
		if s.opts.IsMissing != nil && s.opts.IsMissing(err) {
			log.Info("sent mail not filed in Sent: the mailbox has no IMAP subscription on this service")
		} else {
			log.Warn("sent mail not filed in Sent", "err", err)
		}
		return
	}
	if imapMB.Kind != mail.ServerIMAP || (policy == AppendSentAuto && selfFiling(imapMB.Host)) {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	conn, err := imapsrc.Dial(ctx, imapMB, s.opts.IMAP, nil)
	if err != nil {
		log.Warn("sent mail not filed in Sent: cannot log in to the IMAP server", "class", mail.ClassOf(err), "err", err)
		return
	}
	defer conn.Close()
	folder, err := conn.AppendSent(ctx, raw)
	if err != nil {
		obs.Check(log, err, "sent mail not filed in Sent")
		return
	}
	log.Debug("sent mail filed", "folder", folder)
}

func selfFiling(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, h := range selfFilingHosts {
		if host == h || strings.HasSuffix(host, "."+h) {
			return true
		}
	}
	return false
}
