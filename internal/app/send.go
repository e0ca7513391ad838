package app

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/obs"
	"github.com/emaillistener/emaillistener/internal/sender"
	"github.com/emaillistener/emaillistener/internal/source/imapsrc"
	"github.com/emaillistener/emaillistener/internal/store"
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

// smtpSender sends Creatio's outgoing mail over SMTP and files a copy in the
// mailbox's Sent folder over IMAP when the server does not do so itself.
type smtpSender struct {
	opts     *sender.Options
	imap     *imapsrc.Options
	policy   string
	registry interface {
		Mailbox(ctx context.Context, id mail.MailboxID) (*mail.Mailbox, error)
	}
	log *slog.Logger
}

func (s *smtpSender) Send(ctx context.Context, smtp *mail.Mailbox, msg *mail.Message) error {
	raw, err := sender.Send(ctx, smtp, msg, s.opts)
	if err != nil {
		return &opError{err: err, msg: sender.UserMessage(err)}
	}
	s.appendSent(ctx, smtp, raw)
	return nil
}

// appendSent files raw in the Sent folder of the registered (IMAP) mailbox
// with the same id. The email is already sent, so failures are only logged.
func (s *smtpSender) appendSent(ctx context.Context, smtp *mail.Mailbox, raw []byte) {
	log := s.log.With("mailbox", string(smtp.ID))
	if s.policy == AppendSentNever || (s.policy == AppendSentAuto && selfFiling(smtp.Host)) {
		return
	}
	imapMB, err := s.registry.Mailbox(ctx, smtp.ID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			log.Info("sent mail not filed in Sent: the mailbox has no IMAP subscription on this service")
		} else {
			log.Warn("sent mail not filed in Sent", "err", err)
		}
		return
	}
	if imapMB.Kind != mail.ServerIMAP || (s.policy == AppendSentAuto && selfFiling(imapMB.Host)) {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	conn, err := imapsrc.Dial(ctx, imapMB, s.imap, nil)
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

func newSMTPSender(tlsCfg *tls.Config, dialTimeout time.Duration, imapOpts *imapsrc.Options, policy string,
	reg interface {
		Mailbox(ctx context.Context, id mail.MailboxID) (*mail.Mailbox, error)
	}, log *slog.Logger) *smtpSender {
	return &smtpSender{
		opts:     &sender.Options{DialTimeout: dialTimeout, TLSConfig: tlsCfg, Control: imapOpts.Control, Logger: log},
		imap:     imapOpts,
		policy:   policy,
		registry: reg,
		log:      log,
	}
}
