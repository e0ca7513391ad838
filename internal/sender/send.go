// SPDX-License-Identifier: Apache-2.0

package sender

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/emaillistener/emaillistener/internal/compose"
	"github.com/emaillistener/emaillistener/internal/mail"
)

// Defaults for Options.
const (
	DefaultDialTimeout = 30 * time.Second
	DefaultTimeout     = 2 * time.Minute
)

// Options configures Send. A nil *Options and every zero field mean the
// documented default.
type Options struct {
	// DialTimeout bounds connecting, TLS, the greeting, EHLO, STARTTLS and AUTH
	// together (default 30 s).
	DialTimeout time.Duration
	// Timeout bounds each later command; for DATA it covers sending the message
	// and waiting for the server's verdict (default 2 min).
	Timeout time.Duration
	// TLSConfig is the base TLS configuration (root CAs, InsecureSkipVerify for
	// self-signed servers). ServerName defaults to the mailbox's host.
	TLSConfig *tls.Config
	// HeloName is the name sent with EHLO. Default: the address literal of the
	// local end of the connection ("[10.1.2.3]", RFC 5321 §4.1.4), which no
	// server rejects as malformed, unlike a container's bare host name. The EHLO
	// before STARTTLS says "localhost" (a go-smtp limitation); the one that
	// counts, after it, uses HeloName.
	HeloName string
	// Logger receives debug lines and warnings; never passwords or tokens.
	// Default: discard.
	Logger *slog.Logger
	// Now stamps the Date header (default time.Now).
	Now func() time.Time
	// Control, if set, is called for every connection after the address is
	// resolved and before connecting, like net.Dialer.Control: an error
	// refuses the connection (the app's network allow-list). The refusal is
	// a config-class error, never retried as a network failure.
	Control func(network, address string, c syscall.RawConn) error
}

func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.DialTimeout <= 0 {
		r.DialTimeout = DefaultDialTimeout
	}
	if r.Timeout <= 0 {
		r.Timeout = DefaultTimeout
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	return r
}

// Send builds msg (see Build) and submits it through mb's SMTP server: MAIL
// FROM is msg.From (mb.SenderAddress when msg has none, which also becomes the
// From header), RCPT TO every To, Cc and Bcc address. It returns the message
// exactly as sent, e.g. for a copy in the Sent folder.
//
// If the server refuses some recipients, nothing is sent (RSET) and the error
// lists every refused one: the CRM user then learns that the email did not
// reach everyone and can fix the address and send again, without the others
// getting it twice. Only refusals during the SMTP session can be reported; a
// server that accepts a recipient and bounces later sends the bounce to the
// sender's mailbox.
//
// When ctx ends, the connection is closed and Send returns at once. If that
// happens after the message was transmitted but before the server's answer,
// the message may have been sent although Send reports a failure.
//
// Errors are *mail.Error (class auth, tls, connect, timeout, protocol or config)
// wrapping an *Error; UserMessage turns them into text for the CRM user. Send
// is safe for concurrent use; each call has its own connection.
func Send(ctx context.Context, mb *mail.Mailbox, msg *mail.Message, opts *Options) ([]byte, error) {
	o := opts.withDefaults()
	if mb == nil || msg == nil {
		return nil, configError("Nothing to send: the mailbox or the email is missing.")
	}
	ep, err := ResolveEndpoint(mb)
	if err != nil {
		return nil, err
	}
	m := *msg // shallow: only From may be replaced
	if strings.TrimSpace(m.From.Address) == "" {
		m.From = mail.Address{Name: m.From.Name, Address: strings.TrimSpace(mb.SenderAddress)}
	}
	from := strings.TrimSpace(compose.OneLine(m.From.Address))
	rcpts := Recipients(&m)
	if err := checkEnvelope(from, rcpts); err != nil {
		return nil, err
	}
	raw, err := compose.Build(&m, o.Now())
	if err != nil {
		return nil, configError(sentence("The email cannot be sent: " + strings.TrimPrefix(err.Error(), "sender: ")))
	}
	return submit(ctx, o, ep, mb, raw, from, rcpts)
}

// checkEnvelope refuses an envelope SMTP cannot carry, in words for the user.
func checkEnvelope(from string, rcpts []string) error {
	if from == "" {
		return configError("The email has no sender address.")
	}
	if !validAddress(from) {
		return configError(fmt.Sprintf("The sender address %q is not a valid email address.", from))
	}
	if len(rcpts) == 0 {
		return configError("The email has no recipients.")
	}
	for _, r := range rcpts {
		if !validAddress(r) {
			return configError(fmt.Sprintf("The recipient address %q is not a valid email address.", r))
		}
	}
	return nil
}

// submit transmits raw through the server ep on a connection of its own
// and returns it.
func submit(ctx context.Context, o Options, ep Endpoint, mb *mail.Mailbox, raw []byte, from string, rcpts []string) ([]byte, error) {
	s := &session{o: o, ep: ep, mb: mb, log: o.Logger.With("server", ep.Addr)}
	if err := s.send(ctx, raw, from, rcpts); err != nil {
		return nil, err
	}
	return raw, nil
}

// Recipients returns the envelope recipients of msg: every To, Cc and Bcc
// address once (compared case-insensitively), in that order.
func Recipients(msg *mail.Message) []string {
	seen := map[string]bool{}
	var out []string
	for _, list := range [][]mail.Address{msg.To, msg.Cc, msg.Bcc} {
		for _, a := range list {
			addr := strings.TrimSpace(compose.OneLine(a.Address))
			key := strings.ToLower(addr)
			if addr == "" || seen[key] {
				continue
			}
			seen[key] = true
			out = append(out, addr)
		}
	}
	return out
}

// validAddress rejects what cannot be an addr-spec on the SMTP command line:
// white space, control characters and angle brackets, which would let an
// address smuggle ESMTP parameters into MAIL FROM or RCPT TO.
func validAddress(a string) bool {
	at := strings.LastIndexByte(a, '@')
	if at <= 0 || at == len(a)-1 {
		return false
	}
	for _, r := range a {
		if r <= ' ' || r == 0x7f || r == '<' || r == '>' {
			return false
		}
	}
	return true
}

// session is one SMTP connection of one Send call; it is used by one goroutine.
type session struct {
	o    Options
	ep   Endpoint
	mb   *mail.Mailbox
	log  *slog.Logger
	conn connCloser
	// read bounds what the server sends on the current connection; a
	// failure after it tripped is reported as errTooMuchFromServer.
	read *readCap
	// root is send's context. Its cause is set before any derived context or
	// AfterFunc hears of the cancellation, so error checks it too: the
	// connection may be closed by ctx's AfterFunc before dctx is cancelled.
	root context.Context
}

// errPlainFallback: opportunistic STARTTLS found the server does not offer it.
var errPlainFallback = errors.New("sender: continue without TLS")

// send runs the SMTP session. Setup (connect to AUTH) runs under the dial
// budget; ending either ctx or that budget closes the connection, and fail
// then reports the context's cause instead of "use of closed connection".
func (s *session) send(ctx context.Context, raw []byte, from string, rcpts []string) error {
	start := time.Now()
	s.root = ctx
	dctx, cancel := context.WithTimeoutCause(ctx, s.o.DialTimeout, errDialTimeout)
	defer cancel()
	defer s.conn.close()
	stopCtx := context.AfterFunc(ctx, s.conn.close)
	defer stopCtx()
	stopDial := context.AfterFunc(dctx, s.conn.close)

	c, secure, err := s.open(dctx)
	if errors.Is(err, errPlainFallback) {
		s.log.Debug("smtp: server offers no STARTTLS; continuing without TLS")
		c, secure, err = s.openPlain(dctx)
	}
	if err == nil {
		err = s.authenticate(dctx, c, secure)
	}
	if !stopDial() && err == nil {
		err = s.fail(dctx, StepAuth, net.ErrClosed) // the budget ran out just now
	}
	if err != nil {
		return err
	}
	if err := s.transaction(ctx, c, raw, from, rcpts); err != nil {
		return err
	}
	_ = c.Quit() // the message is accepted; a failing QUIT changes nothing
	s.log.Debug("smtp: sent", "recipients", len(rcpts), "bytes", len(raw), "tls", secure,
		"duration", time.Since(start).Round(time.Millisecond))
	return nil
}

// dial opens the TCP connection, bounded by maxServerBytes.
func (s *session) dial(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{KeepAlive: 30 * time.Second}
	if s.o.Control != nil {
		d.Control = s.control
	}
	conn, err := d.DialContext(ctx, "tcp", s.ep.Addr)
	if err != nil {
		return nil, s.fail(ctx, StepConnect, err)
	}
	if !s.conn.set(conn) {
		return nil, s.fail(ctx, StepConnect, net.ErrClosed)
	}
	s.read = newReadCap(conn)
	return s.read, nil
}

// control asks Options.Control about a connection to address; a refusal
// carries the address for the error message and the class.
func (s *session) control(network, address string, c syscall.RawConn) error {
	if err := s.o.Control(network, address, c); err != nil {
		return &refusedError{addr: address, err: err}
	}
	return nil
}

// open connects and secures the connection as the endpoint says, and says
// EHLO. It reports whether the connection is encrypted.
func (s *session) open(ctx context.Context) (*smtp.Client, bool, error) {
	if !s.ep.Implicit && !s.ep.StartTLS {
		return s.openPlain(ctx)
	}
	conn, err := s.dial(ctx)
	if err != nil {
		return nil, false, err
	}
	cfg := s.tlsConfig()
	if s.ep.Implicit {
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, false, s.fail(ctx, StepTLS, err)
		}
		c := s.client(tc)
		if err := c.Hello(s.heloName(conn)); err != nil {
			return nil, false, s.fail(ctx, StepHello, err)
		}
		return c, true, nil
	}
	rec := &lastCommand{Conn: conn}
	c, err := smtp.NewClientStartTLS(rec, cfg)
	if err != nil {
		switch {
		case isNoStartTLS(err) && s.ep.Required:
			return nil, false, s.fail(ctx, StepTLS, errNoStartTLS)
		case isNoStartTLS(err):
			return nil, false, errPlainFallback
		case rec.is("STARTTLS"):
			return nil, false, s.fail(ctx, StepStartTLS, err)
		default:
			return nil, false, s.fail(ctx, StepHello, err)
		}
	}
	rec.done = true
	s.setTimeouts(c)
	// The TLS handshake happens with this first command after STARTTLS, so a
	// failure other than an SMTP reply is a TLS failure.
	if err := c.Hello(s.heloName(conn)); err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return nil, false, s.fail(ctx, StepHello, err)
		}
		return nil, false, s.fail(ctx, StepTLS, err)
	}
	return c, true, nil
}

func (s *session) openPlain(ctx context.Context) (*smtp.Client, bool, error) {
	conn, err := s.dial(ctx)
	if err != nil {
		return nil, false, err
	}
	c := s.client(conn)
	if err := c.Hello(s.heloName(conn)); err != nil {
		return nil, false, s.fail(ctx, StepHello, err)
	}
	return c, false, nil
}

func (s *session) client(conn net.Conn) *smtp.Client {
	c := smtp.NewClient(conn)
	s.setTimeouts(c)
	return c
}

func (s *session) setTimeouts(c *smtp.Client) {
	c.CommandTimeout, c.SubmissionTimeout = s.o.Timeout, s.o.Timeout
}

func (s *session) tlsConfig() *tls.Config {
	var cfg *tls.Config
	if s.o.TLSConfig != nil {
		cfg = s.o.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = s.ep.Host
	}
	return cfg
}

// heloName is Options.HeloName or the address literal of conn's local end.
func (s *session) heloName(conn net.Conn) string {
	if s.o.HeloName != "" {
		return s.o.HeloName
	}
	if a, ok := conn.LocalAddr().(*net.TCPAddr); ok {
		if ip4 := a.IP.To4(); ip4 != nil {
			return "[" + ip4.String() + "]"
		}
		return "[IPv6:" + a.IP.String() + "]"
	}
	return "localhost"
}

// authenticate logs in: XOAUTH2 for OAuth mailboxes; otherwise PLAIN or LOGIN
// when a user name is set and the server offers AUTH. A server that offers no
// AUTH gets the mail without a login (it may relay for our network, or refuse
// at MAIL FROM with 530, which the user is told about).
func (s *session) authenticate(ctx context.Context, c *smtp.Client, secure bool) error {
	user := strings.TrimSpace(s.mb.UserName)
	if s.mb.UseOAuth {
		if user == "" {
			user = strings.TrimSpace(s.mb.SenderAddress)
		}
		if s.mb.AccessToken == "" {
			return s.failAuth(ctx, user, errors.New("the mailbox uses OAuth but has no access token"))
		}
		if err := c.Auth(&xoauth2{user: user, token: s.mb.AccessToken}); err != nil {
			return s.failAuth(ctx, user, err)
		}
		return nil
	}
	if user == "" {
		return nil
	}
	ok, mechs := c.Extension("AUTH")
	if !ok {
		s.log.Debug("smtp: server offers no AUTH; sending without login", "user", user)
		return nil
	}
	var client sasl.Client
	switch {
	case c.SupportsAuth(sasl.Plain):
		client = sasl.NewPlainClient("", user, s.mb.Password)
	case c.SupportsAuth(sasl.Login):
		client = &loginAuth{user: user, password: s.mb.Password}
	default:
		return s.failAuth(ctx, user, fmt.Errorf("%w (it offers %s)", errNoMechanism, mechs))
	}
	if !secure {
		s.log.Warn("smtp: sending the password without TLS: the server offers no STARTTLS", "user", user)
	}
	if err := c.Auth(client); err != nil {
		return s.failAuth(ctx, user, err)
	}
	return nil
}

func (s *session) failAuth(ctx context.Context, user string, err error) error {
	e := s.error(ctx, StepAuth, err)
	e.User = user
	return e.wrap()
}

// transaction is MAIL FROM, RCPT TO for every recipient, DATA.
func (s *session) transaction(ctx context.Context, c *smtp.Client, raw []byte, from string, rcpts []string) error {
	opts := &smtp.MailOptions{Size: int64(len(raw))}
	if !isASCII(from) || !allASCII(rcpts) {
		if ok, _ := c.Extension("SMTPUTF8"); !ok {
			return s.fail(ctx, StepMail, errNoSMTPUTF8)
		}
		opts.UTF8 = true
	}
	if err := c.Mail(from, opts); err != nil {
		e := s.error(ctx, StepMail, err)
		e.User = from
		return e.wrap()
	}
	var refused []Refusal
	for _, r := range rcpts {
		err := c.Rcpt(r, nil)
		var se *smtp.SMTPError
		switch {
		case err == nil:
		case errors.As(err, &se) && ctx.Err() == nil:
			refused = append(refused, Refusal{Address: r, Code: se.Code, Enhanced: enhanced(se.EnhancedCode), Reply: compose.OneLine(se.Message)})
		default:
			return s.fail(ctx, StepRcpt, err)
		}
	}
	if len(refused) > 0 {
		_ = c.Reset() // nothing was sent; the session ends anyway
		e := &Error{Step: StepRcpt, Server: s.ep.Addr, Refused: refused, Temporary: true,
			Code: refused[0].Code, Enhanced: refused[0].Enhanced, Reply: refused[0].Reply}
		for _, r := range refused {
			e.Temporary = e.Temporary && r.Code/100 == 4
		}
		return e.wrap()
	}
	w, err := c.Data()
	if err != nil {
		return s.fail(ctx, StepData, err)
	}
	// go-smtp bounds commands and the final reply, not the transfer itself.
	s.conn.setDeadline(time.Now().Add(s.o.Timeout))
	if _, err := w.Write(raw); err != nil {
		_ = w.Close()
		return s.fail(ctx, StepData, err)
	}
	if err := w.Close(); err != nil {
		return s.fail(ctx, StepData, err)
	}
	return nil
}

// error builds the *Error of a failed step. When ctx has ended, the failure is
// the consequence of closing the connection, so ctx's cause is reported.
func (s *session) error(ctx context.Context, step Step, err error) *Error {
	switch {
	case context.Cause(ctx) != nil:
		err = context.Cause(ctx)
	case s.root != nil && context.Cause(s.root) != nil:
		err = context.Cause(s.root)
	case s.read != nil && s.read.exceeded:
		err = errTooMuchFromServer // go-smtp or crypto/tls may have wrapped it
	}
	return newError(step, s.ep.Addr, err)
}

func (s *session) fail(ctx context.Context, step Step, err error) error {
	return s.error(ctx, step, err).wrap()
}

// isNoStartTLS recognizes go-smtp's error for a server whose EHLO lacks
// STARTTLS; go-smtp has no sentinel for it (TestNoStartTLSMessage pins the text).
func isNoStartTLS(err error) bool {
	return err != nil && err.Error() == "smtp: server doesn't support STARTTLS"
}

// connCloser closes the session's current connection exactly once, from
// whichever goroutine gets there first (a context's AfterFunc or send's defer).
// A connection set after close is closed at once.
type connCloser struct {
	mu     sync.Mutex
	conn   net.Conn
	closed bool
}

func (c *connCloser) set(conn net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		conn.Close()
		return false
	}
	if c.conn != nil {
		c.conn.Close() // opportunistic STARTTLS fallback replaces the first connection
	}
	c.conn = conn
	return true
}

// setDeadline sets the read and write deadline of the current connection.
func (c *connCloser) setDeadline(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		_ = c.conn.SetDeadline(t)
	}
}

func (c *connCloser) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.conn != nil {
		c.conn.Close()
	}
}

// lastCommand remembers the verb of the last command written, so a failure
// inside smtp.NewClientStartTLS (greeting, EHLO or STARTTLS) is attributed to
// the right step. It is used by one goroutine.
type lastCommand struct {
	net.Conn
	verb string
	done bool // set once STARTTLS succeeded: later writes are TLS records
}

func (l *lastCommand) Write(b []byte) (int, error) {
	if !l.done {
		verb, _, _ := strings.Cut(strings.TrimSpace(string(b[:min(len(b), 16)])), " ")
		l.verb = strings.ToUpper(verb)
	}
	return l.Conn.Write(b)
}

func (l *lastCommand) is(verb string) bool { return l.verb == verb }

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func allASCII(ss []string) bool {
	for _, s := range ss {
		if !isASCII(s) {
			return false
		}
	}
	return true
}
