// SPDX-License-Identifier: Apache-2.0

package sender

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/emaillistener/emaillistener/internal/mail"
)

func TestErrorClassAndUserMessage(t *testing.T) {
	const server = "smtp.example.com:587"
	reply := func(code int, enh smtp.EnhancedCode, msg string) error {
		return &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: msg}
	}
	refused := func(e *Error) *Error {
		e.Refused = []Refusal{{Address: "bad@example.com", Code: 550, Enhanced: "5.1.1", Reply: "User unknown"}}
		return e
	}
	cases := []struct {
		name  string
		err   *Error
		class mail.ErrorClass
		msg   string // substring of UserMessage
	}{
		{"refused", newError(StepConnect, server, &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}),
			mail.ClassConnect, "Could not connect to the SMTP server smtp.example.com:587: connection refused."},
		{"dns", newError(StepConnect, server, &net.DNSError{Err: "no such host", Name: "smtp.example.com", IsNotFound: true}),
			mail.ClassConnect, "the host name smtp.example.com was not found"},
		{"connect timeout", newError(StepConnect, server, errDialTimeout),
			mail.ClassTimeout, "did not answer in time"},
		{"command timeout", newError(StepData, server, &net.OpError{Op: "read", Err: timeoutErr{}}),
			mail.ClassTimeout, "did not answer in time"},
		{"cancelled", newError(StepRcpt, server, context.Canceled),
			mail.ClassInternal, "Sending was cancelled."},
		{"untrusted cert", newError(StepTLS, server, fmt.Errorf("tls: %w", x509.UnknownAuthorityError{})),
			mail.ClassTLS, "Could not establish a secure (TLS) connection with the SMTP server smtp.example.com:587: the server's certificate is not trusted"},
		{"no starttls", newError(StepTLS, server, errNoStartTLS),
			mail.ClassTLS, "does not offer STARTTLS"},
		{"starttls refused", newError(StepStartTLS, server, reply(454, smtp.EnhancedCode{4, 7, 0}, "TLS not available")),
			mail.ClassTLS, "refused to start TLS: 454 4.7.0 TLS not available."},
		{"closed mid-session", newError(StepMail, server, io.EOF),
			mail.ClassConnect, "the server closed the connection"},
		{"greeting 554", newError(StepHello, server, reply(554, smtp.EnhancedCode{5, 3, 2}, "No service")),
			mail.ClassProtocol, "answered unexpectedly: 554 5.3.2 No service."},
		{"bad password", func() *Error {
			e := newError(StepAuth, server, reply(535, smtp.EnhancedCode{5, 7, 8}, "Authentication failed"))
			e.User = "alice@example.com"
			return e
		}(), mail.ClassAuth, "The SMTP server rejected the login for alice@example.com: 535 5.7.8 Authentication failed."},
		{"auth temporary", newError(StepAuth, server, reply(454, smtp.EnhancedCode{4, 7, 0}, "Temporary authentication failure")),
			mail.ClassProtocol, "454 4.7.0"},
		{"no mechanism", newError(StepAuth, server, errNoMechanism),
			mail.ClassAuth, "offers no supported AUTH mechanism"},
		{"auth required", newError(StepMail, server, reply(530, smtp.EnhancedCode{5, 7, 0}, "Authentication required")),
			mail.ClassAuth, "requires a login (530 5.7.0 Authentication required)"},
		{"too large at MAIL", newError(StepMail, server, reply(552, smtp.EnhancedCode{5, 3, 4}, "Message size exceeds fixed limit")),
			mail.ClassProtocol, "The message is too large for the server (552 5.3.4 Message size exceeds fixed limit)."},
		{"too large at DATA", newError(StepData, server, reply(552, smtp.EnhancedCode{5, 3, 4}, "Message too big")),
			mail.ClassProtocol, "too large"},
		{"sender refused", func() *Error {
			e := newError(StepMail, server, reply(553, smtp.EnhancedCode{5, 7, 1}, "Sender address rejected: not owned by user"))
			e.User = "boss@example.com"
			return e
		}(), mail.ClassProtocol, "refused the sender address boss@example.com: 553 5.7.1"},
		{"no smtputf8", newError(StepMail, server, errNoSMTPUTF8),
			mail.ClassProtocol, "international (non-ASCII)"},
		{"recipient refused", refused(&Error{Step: StepRcpt, Server: server}),
			mail.ClassProtocol, "The recipient bad@example.com was refused: 550 5.1.1 User unknown. The email was not sent to anyone."},
		{"message refused", newError(StepData, server, reply(554, smtp.EnhancedCode{5, 7, 1}, "Spam detected")),
			mail.ClassProtocol, "The SMTP server refused the message: 554 5.7.1 Spam detected."},
		{"allow-list", newError(StepConnect, server, &net.OpError{Op: "dial", Err: &refusedError{addr: "10.0.0.1:587", err: errors.New("not allowed")}}),
			mail.ClassConfig, "was refused by the email listener's network allow-list"},
		{"too much from the server", newError(StepHello, server, errTooMuchFromServer),
			mail.ClassProtocol, "sent more data than any SMTP reply needs"},
		{"too long a reply line", newError(StepAuth, server, smtp.ErrTooLongLine),
			mail.ClassProtocol, "sent a reply line longer than SMTP allows"},
	}
	for _, c := range cases {
		err := c.err.wrap()
		if got := mail.ClassOf(err); got != c.class {
			t.Errorf("%s: class %s, want %s (%v)", c.name, got, c.class, err)
		}
		if got := UserMessage(err); !strings.Contains(got, c.msg) {
			t.Errorf("%s: UserMessage = %q, want it to contain %q", c.name, got, c.msg)
		}
		var me *mail.Error
		if !errors.As(err, &me) || !strings.HasPrefix(me.Op, "smtp ") {
			t.Errorf("%s: not a *mail.Error with an smtp op: %v", c.name, err)
		}
	}

	several := &Error{Step: StepRcpt, Refused: []Refusal{
		{Address: "a@x.test", Code: 550, Enhanced: "5.1.1", Reply: "unknown"},
		{Address: "b@x.test", Code: 450, Enhanced: "4.2.0", Reply: "greylisted"},
	}}
	if got := several.UserMessage(); !strings.Contains(got, "These recipients were refused: a@x.test (550 5.1.1 unknown); b@x.test (450 4.2.0 greylisted).") {
		t.Errorf("several refusals: %q", got)
	}
	if UserMessage(nil) != "" || UserMessage(errors.New("boom")) != "Sending failed: boom." {
		t.Error("UserMessage of nil or a foreign error")
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }
