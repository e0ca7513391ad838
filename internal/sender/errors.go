// SPDX-License-Identifier: Apache-2.0

package sender

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/emersion/go-smtp"

	"github.com/emaillistener/emaillistener/internal/compose"
	"github.com/emaillistener/emaillistener/internal/mail"
)

// Step is the part of a send that failed.
type Step string

// The steps of Send, in order.
const (
	StepPrepare  Step = "prepare"  // settings, sender, recipients, building the message
	StepConnect  Step = "connect"  // DNS and TCP connect
	StepTLS      Step = "tls"      // TLS handshake, or STARTTLS required but not offered
	StepHello    Step = "hello"    // greeting and EHLO
	StepStartTLS Step = "starttls" // the STARTTLS command
	StepAuth     Step = "auth"     // AUTH
	StepMail     Step = "mail"     // MAIL FROM
	StepRcpt     Step = "rcpt"     // RCPT TO
	StepData     Step = "data"     // DATA, the message and the server's verdict on it
)

// Error is a failed send: where it failed, what the SMTP server answered, and a
// message a CRM user can act on (UserMessage). Send returns it wrapped in a
// *mail.Error that carries its class. It never holds a password or token.
type Error struct {
	Step   Step
	Server string // host:port of the SMTP server; empty before connecting
	// Code, Enhanced and Reply are the server's reply (RFC 5321 §4.2, RFC 3463),
	// e.g. 550, "5.1.1", "<bob@example.com>: Recipient address rejected"; Code
	// is 0 when the failure was not a reply (network, TLS).
	Code     int
	Enhanced string
	Reply    string
	// Refused lists every refused recipient (StepRcpt).
	Refused []Refusal
	// Temporary: a 4xx reply or a network failure; the same send may work later.
	Temporary bool
	// User is the login name (StepAuth) or the sender address (StepMail) the
	// message talks about.
	User string
	Err  error

	msg string // preset user message for failures found before talking SMTP
}

// Refusal is one recipient the server refused at RCPT TO.
type Refusal struct {
	Address  string
	Code     int
	Enhanced string
	Reply    string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Server != "" {
		b.WriteString(e.Server + ": ")
	}
	switch {
	case len(e.Refused) > 0:
		b.WriteString("recipients refused:")
		for i, r := range e.Refused {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, " %s (%s)", r.Address, reply(r.Code, r.Enhanced, r.Reply))
		}
	case e.Code != 0:
		b.WriteString(reply(e.Code, e.Enhanced, e.Reply))
	case e.Err != nil:
		b.WriteString(e.Err.Error())
	default:
		b.WriteString(e.msg)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// UserMessage explains the failure in one or two sentences for the person who
// pressed "Send", quoting the server's reply when there is one.
func (e *Error) UserMessage() string {
	if e.msg != "" {
		return e.msg
	}
	server := e.Server
	if server == "" {
		server = "the SMTP server"
	}
	rep := reply(e.Code, e.Enhanced, e.Reply)
	switch {
	case errors.Is(e.Err, context.Canceled):
		return "Sending was cancelled."
	case e.Code == 0 && isTimeout(e.Err):
		return fmt.Sprintf("The SMTP server %s did not answer in time.", server)
	case isRefused(e.Err):
		return sentence(fmt.Sprintf("The connection to the SMTP server %s was refused by the email listener's network allow-list; ask its administrator to allow that server", server))
	case errors.Is(e.Err, errTooMuchFromServer):
		return fmt.Sprintf("The SMTP server %s sent more data than any SMTP reply needs (over %d KiB); sending was aborted.", server, maxServerBytes>>10)
	case errors.Is(e.Err, smtp.ErrTooLongLine):
		return fmt.Sprintf("The SMTP server %s sent a reply line longer than SMTP allows; sending was aborted.", server)
	case e.Step == StepConnect:
		return sentence(fmt.Sprintf("Could not connect to the SMTP server %s: %s", server, netReason(e.Err)))
	case e.Step == StepTLS && errors.Is(e.Err, errNoStartTLS):
		return fmt.Sprintf("The SMTP server %s does not offer STARTTLS, which the mailbox's security setting requires.", server)
	case e.Step == StepStartTLS && e.Code != 0:
		return sentence(fmt.Sprintf("The SMTP server %s refused to start TLS: %s", server, rep))
	case e.Step == StepTLS || e.Step == StepStartTLS:
		return sentence(fmt.Sprintf("Could not establish a secure (TLS) connection with the SMTP server %s: %s", server, netReason(e.Err)))
	case e.Code == 0 && isNetwork(e.Err):
		return sentence(fmt.Sprintf("The connection to the SMTP server %s was lost: %s", server, netReason(e.Err)))
	case e.Step == StepAuth && e.Code != 0:
		return sentence(fmt.Sprintf("The SMTP server rejected the login for %s: %s", e.User, rep))
	case e.Step == StepAuth:
		return sentence(fmt.Sprintf("Could not log in to the SMTP server %s as %s: %s", server, e.User, errText(e.Err)))
	case e.Step == StepMail && authRequired(e.Code, e.Enhanced):
		return sentence(fmt.Sprintf("The SMTP server requires a login (%s); set the mailbox's user name and password", rep))
	case (e.Step == StepMail || e.Step == StepData) && tooLarge(e.Code, e.Enhanced):
		return fmt.Sprintf("The message is too large for the server (%s).", rep)
	case e.Step == StepMail && errors.Is(e.Err, errNoSMTPUTF8):
		return fmt.Sprintf("The SMTP server %s does not support international (non-ASCII) email addresses.", server)
	case e.Step == StepMail && e.Code != 0:
		return sentence(fmt.Sprintf("The SMTP server refused the sender address %s: %s", e.User, rep))
	case e.Step == StepRcpt && len(e.Refused) > 0:
		return refusedMessage(e.Refused)
	case e.Step == StepData && e.Code != 0:
		return sentence("The SMTP server refused the message: " + rep)
	case e.Code != 0:
		return sentence(fmt.Sprintf("The SMTP server %s answered unexpectedly: %s", server, rep))
	default:
		return sentence(fmt.Sprintf("Sending through %s failed: %s", server, errText(e.Err)))
	}
}

func refusedMessage(refused []Refusal) string {
	var b strings.Builder
	if len(refused) == 1 {
		r := refused[0]
		fmt.Fprintf(&b, "The recipient %s was refused: %s", r.Address, reply(r.Code, r.Enhanced, r.Reply))
	} else {
		b.WriteString("These recipients were refused:")
		for i, r := range refused {
			if i > 0 {
				b.WriteByte(';')
			}
			fmt.Fprintf(&b, " %s (%s)", r.Address, reply(r.Code, r.Enhanced, r.Reply))
		}
	}
	return sentence(b.String()) + " The email was not sent to anyone."
}

// UserMessage returns the message for the CRM user carried by an error from
// Send, or a generic one for any other error; "" for nil.
func UserMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.UserMessage()
	}
	return sentence("Sending failed: " + err.Error())
}

// Sentinel causes that the user message names specifically.
var (
	errNoStartTLS  = errors.New("sender: server does not offer STARTTLS")
	errNoSMTPUTF8  = errors.New("sender: server does not support SMTPUTF8")
	errNoMechanism = errors.New("sender: server offers no supported AUTH mechanism")
	// errDialTimeout is the cause when the connection setup budget runs out.
	errDialTimeout = fmt.Errorf("sender: connection setup timed out: %w", context.DeadlineExceeded)
)

// newError records a failure of step, taking the reply apart when err is one.
func newError(step Step, server string, err error) *Error {
	e := &Error{Step: step, Server: server, Err: err}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		e.Code, e.Enhanced, e.Reply, e.Temporary = se.Code, enhanced(se.EnhancedCode), compose.OneLine(se.Message), se.Temporary()
		return e
	}
	e.Temporary = (isNetwork(err) || isTimeout(err)) && !isRefused(err)
	return e
}

// class decides the mail.ErrorClass of e.
func (e *Error) class() mail.ErrorClass {
	switch {
	case e.msg != "":
		return mail.ClassConfig
	case errors.Is(e.Err, context.Canceled):
		return mail.ClassInternal
	case isRefused(e.Err):
		return mail.ClassConfig // the allow-list will refuse again: not a network blip
	case errors.Is(e.Err, errTooMuchFromServer), errors.Is(e.Err, smtp.ErrTooLongLine):
		return mail.ClassProtocol // whatever the step: the server broke the protocol
	case e.Code == 0 && isTimeout(e.Err):
		return mail.ClassTimeout
	case e.Step == StepConnect:
		return mail.ClassConnect
	case e.Step == StepTLS, e.Step == StepStartTLS:
		return mail.ClassTLS
	case e.Code == 0 && isNetwork(e.Err):
		return mail.ClassConnect
	case e.Step == StepAuth && (e.Code == 0 || e.Code >= 500):
		return mail.ClassAuth // 4xx (e.g. 454 temporary failure) is the server's problem
	case e.Step == StepMail && authRequired(e.Code, e.Enhanced):
		return mail.ClassAuth
	default:
		return mail.ClassProtocol
	}
}

// wrap returns e as the *mail.Error Send returns.
func (e *Error) wrap() error {
	return &mail.Error{Class: e.class(), Op: "smtp " + string(e.Step), Err: e}
}

// configError is a failure found before talking to the server.
func configError(userMsg string) error {
	return (&Error{Step: StepPrepare, msg: userMsg}).wrap()
}

// authRequired: 530 5.7.0 "Authentication required" (RFC 4954 §6).
func authRequired(code int, enh string) bool {
	return code == 530 || enh == "5.7.0" && code/100 == 5
}

// tooLarge: 552 at MAIL or DATA, 5.3.4 "message too big for system", 5.2.3
// "message length exceeds administrative limit" (RFC 3463).
func tooLarge(code int, enh string) bool {
	return code == 552 || enh == "5.3.4" || enh == "5.2.3"
}

func enhanced(c smtp.EnhancedCode) string {
	if c == (smtp.EnhancedCode{}) || c == smtp.NoEnhancedCode {
		return ""
	}
	return fmt.Sprintf("%d.%d.%d", c[0], c[1], c[2])
}

// reply renders "550 5.1.1 text".
func reply(code int, enh, text string) string {
	parts := make([]string, 0, 3)
	if code != 0 {
		parts = append(parts, fmt.Sprintf("%03d", code))
	}
	if enh != "" {
		parts = append(parts, enh)
	}
	if text != "" {
		parts = append(parts, text)
	}
	return strings.Join(parts, " ")
}

// sentence ends s with a full stop unless it already ends with punctuation.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" || strings.ContainsAny(s[len(s)-1:], ".!?") {
		return s
	}
	return s + "."
}

func errText(err error) string {
	if err == nil {
		return "unknown error"
	}
	return err.Error()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errDialTimeout) ||
		errors.As(err, &ne) && ne.Timeout()
}

// isNetwork reports a connection-level failure (refused, reset, closed, DNS).
func isNetwork(err error) bool {
	var (
		ne     net.Error
		dnsErr *net.DNSError
		certE  *tls.CertificateVerificationError
	)
	if errors.As(err, &certE) {
		return false
	}
	return errors.As(err, &dnsErr) || errors.As(err, &ne) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// netReason is the most telling part of a network or TLS error: "connection
// refused" rather than "dial tcp 10.0.0.1:587: connect: connection refused".
func netReason(err error) string {
	var (
		dnsErr  *net.DNSError
		errno   syscall.Errno
		certErr *tls.CertificateVerificationError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
	)
	switch {
	case err == nil:
		return "unknown error"
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return fmt.Sprintf("the host name %s was not found", dnsErr.Name)
	case errors.As(err, &dnsErr):
		return "DNS lookup failed: " + dnsErr.Err
	case errors.As(err, &unknown):
		return "the server's certificate is not trusted (" + unknown.Error() + ")"
	case errors.As(err, &host):
		return "the server's certificate does not match its name (" + host.Error() + ")"
	case errors.As(err, &invalid):
		return "the server's certificate is invalid (" + invalid.Error() + ")"
	case errors.As(err, &certErr):
		return "the server's certificate could not be verified (" + certErr.Err.Error() + ")"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the server closed the connection"
	case errors.As(err, &errno):
		return errno.Error()
	}
	return err.Error()
}
