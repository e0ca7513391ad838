// SPDX-License-Identifier: Apache-2.0

package sender

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// The behaviours Postfix in front of Dovecot cannot show — a server without
// STARTTLS, XOAUTH2, LOGIN as the only mechanism, a message refused at DATA —
// are tested against go-smtp's server, a real SMTP implementation run in-process:
// the tests talk to real protocol peers, never to mocks.

// smtpServer is a go-smtp server on a loopback port recording what it accepts.
type smtpServer struct {
	addr string

	mu       sync.Mutex
	mechs    []string    // AUTH mechanisms offered (needs no TLS: AllowInsecureAuth)
	token    string      // the XOAUTH2 bearer token accepted
	password string      // the LOGIN password accepted
	dataErr  error       // returned for DATA
	mailErr  error       // returned for MAIL FROM
	received []delivered // accepted messages
	authed   []string    // identities that logged in
}

type delivered struct {
	from  string
	rcpts []string
	data  []byte
}

func newSMTPServer(t *testing.T, configure func(*smtpServer)) *smtpServer {
	t.Helper()
	s := &smtpServer{}
	if configure != nil {
		configure(s)
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &smtpSession{s: s}, nil }))
	srv.Domain = "fake.test"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return s
}

func (s *smtpServer) mailbox(t *testing.T, secure mail.SecureOption) *mail.Mailbox {
	host, port, _ := net.SplitHostPort(s.addr)
	n, _ := strconv.Atoi(port)
	return &mail.Mailbox{Host: host, Port: n, Secure: secure, SenderAddress: "alice@example.com"}
}

func (s *smtpServer) messages() []delivered {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]delivered(nil), s.received...)
}

type smtpSession struct {
	s     *smtpServer
	cur   delivered
	login string
}

func (ss *smtpSession) AuthMechanisms() []string {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	return ss.s.mechs
}

func (ss *smtpSession) Auth(mech string) (sasl.Server, error) {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	switch mech {
	case "XOAUTH2":
		return &xoauth2Server{want: ss.s.token, done: ss.loggedIn}, nil
	case "LOGIN":
		return &loginServer{password: ss.s.password, done: ss.loggedIn}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (ss *smtpSession) loggedIn(user string) {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	ss.s.authed = append(ss.s.authed, user)
}

func (ss *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	ss.cur = delivered{from: from}
	return ss.s.mailErr
}

func (ss *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.cur.rcpts = append(ss.cur.rcpts, to)
	return nil
}

func (ss *smtpSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	if ss.s.dataErr != nil {
		return ss.s.dataErr
	}
	ss.cur.data = data
	ss.s.received = append(ss.s.received, ss.cur)
	return nil
}

func (ss *smtpSession) Reset()        { ss.cur = delivered{} }
func (ss *smtpSession) Logout() error { return nil }

// xoauth2Server checks "user=…\x01auth=Bearer <token>\x01\x01" and, on a wrong
// token, sends the JSON error challenge real servers send before failing.
type xoauth2Server struct {
	want     string
	done     func(string)
	failSent bool
}

func (x *xoauth2Server) Next(resp []byte) ([]byte, bool, error) {
	if x.failSent {
		return nil, true, smtp.ErrAuthFailed
	}
	user, token, _ := strings.Cut(strings.TrimSuffix(string(resp), "\x01\x01"), "\x01auth=Bearer ")
	if token == x.want && strings.HasPrefix(user, "user=") {
		x.done(strings.TrimPrefix(user, "user="))
		return nil, true, nil
	}
	x.failSent = true
	return []byte(`{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}`), false, nil
}

// loginServer is the LOGIN mechanism (draft-murchison-sasl-login).
type loginServer struct {
	password string
	done     func(string)
	step     int
	user     string
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	l.step++
	switch l.step {
	case 1:
		if len(resp) > 0 { // initial response carries the user name
			l.user, l.step = string(resp), 2
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 2:
		l.user = string(resp)
		return []byte("Password:"), false, nil
	default:
		if string(resp) != l.password {
			return nil, true, smtp.ErrAuthFailed
		}
		l.done(l.user)
		return nil, true, nil
	}
}

func TestSendNoStartTLS(t *testing.T) {
	t.Parallel()
	s := newSMTPServer(t, nil) // no TLSConfig: STARTTLS is not offered

	_, err := Send(t.Context(), s.mailbox(t, mail.SecureStartTLS), simpleMessage(t, "bob@example.com"), nil)
	if mail.ClassOf(err) != mail.ClassTLS || !strings.Contains(UserMessage(err), "does not offer STARTTLS") {
		t.Fatalf("required STARTTLS: err = %v (%s), want a TLS error", err, UserMessage(err))
	}
	if n := len(s.messages()); n != 0 {
		t.Fatalf("%d messages were sent in plain text although STARTTLS was required", n)
	}

	// Auto: opportunistic, so the mail goes out in plain text.
	msg := simpleMessage(t, "bob@example.com")
	msg.Bcc = []mail.Address{{Address: "dave@example.com"}}
	if _, err := Send(t.Context(), s.mailbox(t, mail.SecureAuto), msg, nil); err != nil {
		t.Fatalf("opportunistic STARTTLS: %v", err)
	}
	got := s.messages()
	if len(got) != 1 || got[0].from != "alice@example.com" ||
		strings.Join(got[0].rcpts, ",") != "bob@example.com,dave@example.com" {
		t.Fatalf("received %+v", got)
	}
	if bytes.Contains(got[0].data, []byte("dave@example.com")) {
		t.Fatal("the Bcc address is in the message data")
	}
}

// TestNoStartTLSMessage pins the go-smtp error text isNoStartTLS depends on.
func TestNoStartTLSMessage(t *testing.T) {
	t.Parallel()
	s := newSMTPServer(t, nil)
	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := smtp.NewClientStartTLS(conn, nil); !isNoStartTLS(err) {
		t.Fatalf("go-smtp's error for a server without STARTTLS changed: %v", err)
	}
}

func TestSendXOAuth2(t *testing.T) {
	t.Parallel()
	s := newSMTPServer(t, func(s *smtpServer) { s.mechs, s.token = []string{"PLAIN", "XOAUTH2"}, "ya29.good-token" })
	mb := s.mailbox(t, mail.SecureNone)
	mb.UseOAuth, mb.UserName, mb.AccessToken = true, "alice@example.com", "ya29.good-token"
	if _, err := Send(t.Context(), mb, simpleMessage(t, "bob@example.com"), nil); err != nil {
		t.Fatalf("XOAUTH2: %v", err)
	}

	mb.AccessToken = "ya29.expired"
	_, err := Send(t.Context(), mb, simpleMessage(t, "bob@example.com"), nil)
	if mail.ClassOf(err) != mail.ClassAuth || !strings.Contains(UserMessage(err), "rejected the login for alice@example.com: 535") ||
		strings.Contains(err.Error(), "ya29") {
		t.Fatalf("expired token: err = %v (%s), want an auth error without the token", err, UserMessage(err))
	}

	mb.AccessToken = ""
	if _, err := Send(t.Context(), mb, simpleMessage(t, "bob@example.com"), nil); mail.ClassOf(err) != mail.ClassAuth {
		t.Fatalf("no token: err = %v, want an auth error", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.authed) != 1 || s.authed[0] != "alice@example.com" || len(s.received) != 1 {
		t.Fatalf("logins %v, %d messages", s.authed, len(s.received))
	}
}

func TestSendLoginMechanism(t *testing.T) {
	t.Parallel()
	s := newSMTPServer(t, func(s *smtpServer) { s.mechs, s.password = []string{"LOGIN"}, "secret" })
	mb := s.mailbox(t, mail.SecureNone)
	mb.UserName, mb.Password = "alice", "secret"
	if _, err := Send(t.Context(), mb, simpleMessage(t, "bob@example.com"), nil); err != nil {
		t.Fatalf("AUTH LOGIN: %v", err)
	}
	mb.Password = "wrong"
	if _, err := Send(t.Context(), mb, simpleMessage(t, "bob@example.com"), nil); mail.ClassOf(err) != mail.ClassAuth {
		t.Fatalf("wrong LOGIN password: err = %v, want an auth error", err)
	}

	// A mechanism we do not speak is an auth error that names what the server offers.
	s.mu.Lock()
	s.mechs = []string{"CRAM-MD5"}
	s.mu.Unlock()
	_, err := Send(t.Context(), mb, simpleMessage(t, "bob@example.com"), nil)
	if mail.ClassOf(err) != mail.ClassAuth || !strings.Contains(UserMessage(err), "CRAM-MD5") {
		t.Fatalf("unsupported mechanism: err = %v (%s)", err, UserMessage(err))
	}
}

func TestSendServerRefusals(t *testing.T) {
	t.Parallel()
	s := newSMTPServer(t, func(s *smtpServer) {
		s.dataErr = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Message rejected as spam"}
	})
	_, err := Send(t.Context(), s.mailbox(t, mail.SecureNone), simpleMessage(t, "bob@example.com"), nil)
	var se *Error
	if !errors.As(err, &se) || se.Step != StepData || UserMessage(err) != "The SMTP server refused the message: 554 5.7.1 Message rejected as spam." {
		t.Fatalf("refused at DATA: err = %v (%s)", err, UserMessage(err))
	}

	s.mu.Lock()
	s.dataErr = nil
	s.mailErr = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	s.mu.Unlock()
	_, err = Send(t.Context(), s.mailbox(t, mail.SecureNone), simpleMessage(t, "bob@example.com"), nil)
	if mail.ClassOf(err) != mail.ClassAuth || !strings.Contains(UserMessage(err), "requires a login") {
		t.Fatalf("530 at MAIL FROM: err = %v (%s)", err, UserMessage(err))
	}
}
