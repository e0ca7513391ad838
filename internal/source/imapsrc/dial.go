// SPDX-License-Identifier: Apache-2.0

// Package imapsrc is the IMAP adapter: it connects and logs in (plain, STARTTLS or
// implicit TLS; LOGIN, AUTHENTICATE PLAIN or XOAUTH2), lists the folders worth
// syncing, reads folder status, lists and fetches new messages with BODY.PEEK[]
// (mail is never marked as read), and waits in IDLE for the server's EXISTS push.
//
// go-imap has no contexts, so every blocking call is bridged: when ctx ends the
// connection is closed, which unblocks the call. go-imap types never leave this
// package; errors come back classified as *mail.Error.
//
// A mail server is not trusted: everything go-imap reads passes through a
// guard (guard.go) that bounds response lines, literals and the bytes of
// each command's responses (limits.go), so a hostile or broken server can
// neither hang a call past its timeout nor make a connection hold more than
// its command's budget; a message larger than the server announced is
// delivered with its header only (fetch.go).
package imapsrc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Defaults for Options.
const (
	DefaultDialTimeout    = 30 * time.Second
	DefaultCommandTimeout = 60 * time.Second
	DefaultMaxMessage     = 64 << 20
	// TCP keepalive finds a silently dead peer (NAT drop, pulled cable) in about
	// Idle + Interval*Count = 2 min, while IDLE itself is quiet for up to 29 min.
	keepAliveIdle     = 60 * time.Second
	keepAliveInterval = 15 * time.Second
	keepAliveCount    = 4
)

// Options configures connections. The zero value is usable.
type Options struct {
	DialTimeout    time.Duration // TCP connect + TLS handshake + greeting
	CommandTimeout time.Duration // any single command except IDLE
	// TLSConfig is the base TLS configuration (root CAs, InsecureSkipVerify for
	// servers with self-signed certificates). ServerName is set per mailbox.
	TLSConfig *tls.Config
	// MaxMessageBytes: larger messages are delivered with headers only and a
	// warning (default 64 MiB).
	MaxMessageBytes int64
	Logger          *slog.Logger
	// Control, if set, is called for every connection after the address is
	// resolved and before connecting, like net.Dialer.Control: an error
	// refuses the connection (the app's network allow-list). The refusal is
	// a config-class error, never retried as a network failure.
	Control func(network, address string, c syscall.RawConn) error
	// Rechecks, when set, suspends the re-checks after activity on servers
	// that are slow to answer (see Rechecks); nil: sessions always re-check.
	Rechecks *Rechecks
}

func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.DialTimeout <= 0 {
		r.DialTimeout = DefaultDialTimeout
	}
	if r.CommandTimeout <= 0 {
		r.CommandTimeout = DefaultCommandTimeout
	}
	if r.MaxMessageBytes <= 0 {
		r.MaxMessageBytes = DefaultMaxMessage
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	return r
}

// Endpoint is where and how to connect, derived from a mailbox.
type Endpoint struct {
	Addr     string // host:port
	Host     string
	Implicit bool // TLS from the first byte (port 993 style)
	StartTLS bool // upgrade with STARTTLS
	Required bool // fail when STARTTLS is not offered
}

// ResolveEndpoint applies the mailbox's security settings. Creatio sends both
// UseSsl and SecureOption; SecureOption wins when it says SSL or STARTTLS, and a
// ticked UseSsl is never downgraded to plain text.
func ResolveEndpoint(mb *mail.Mailbox) (Endpoint, error) {
	host := strings.TrimSpace(mb.Host)
	if host == "" {
		return Endpoint{}, mail.Errorf(mail.ClassConfig, "resolve", "mailbox has no server address (ServiceUrl)")
	}
	port := mb.Port
	if h, p, err := net.SplitHostPort(host); err == nil {
		host = h
		if port == 0 {
			port, _ = strconv.Atoi(p)
		}
	}
	ep := Endpoint{Host: host}
	switch mb.Secure {
	case mail.SecureSSL:
		ep.Implicit = true
	case mail.SecureStartTLS:
		ep.StartTLS, ep.Required = true, true
	case mail.SecureNone:
		ep.Implicit = mb.UseSSL
	default: // Auto
		switch {
		case mb.UseSSL || port == 993:
			ep.Implicit = true
		default:
			ep.StartTLS = true // opportunistic
		}
	}
	if port == 0 {
		port = 143
		if ep.Implicit {
			port = 993
		}
	}
	if port < 1 || port > 65535 {
		return Endpoint{}, mail.Errorf(mail.ClassConfig, "resolve", "invalid port %d", port)
	}
	ep.Addr = net.JoinHostPort(host, strconv.Itoa(port))
	return ep, nil
}

// Dial connects, secures and authenticates. handler (may be nil) receives
// unilateral data on the reader goroutine and must not block.
func Dial(ctx context.Context, mb *mail.Mailbox, opts *Options, onExists func()) (*Conn, error) {
	o := opts.withDefaults()
	ep, err := ResolveEndpoint(mb)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeoutCause(ctx, o.DialTimeout, errors.New("imap dial timeout"))
	defer cancel()

	// Only TLS connections get a config (a clone is ~0.5 KiB per mailbox);
	// we do the handshakes ourselves, go-imap never sees it.
	var tcfg *tls.Config
	if ep.Implicit || ep.StartTLS {
		if o.TLSConfig != nil {
			tcfg = o.TLSConfig.Clone()
		} else {
			tcfg = &tls.Config{}
		}
		if tcfg.ServerName == "" {
			tcfg.ServerName = ep.Host
		}
	}
	dialer := &net.Dialer{KeepAliveConfig: net.KeepAliveConfig{
		Enable: true, Idle: keepAliveIdle, Interval: keepAliveInterval, Count: keepAliveCount,
	}, Control: allowList(o.Control)}
	raw, err := dialer.DialContext(dctx, "tcp", ep.Addr)
	if err != nil {
		return nil, dialError(err)
	}
	c := &Conn{opts: o, log: o.Logger}
	copts := &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil && onExists != nil {
					onExists()
				}
			},
		},
	}
	cl, g, err := greet(dctx, raw, ep, tcfg, copts)
	if err != nil && ep.StartTLS && !ep.Required && mail.ClassOf(err) == mail.ClassProtocol {
		// Opportunistic STARTTLS was refused by the server (not a failed
		// handshake, which must never downgrade): fall back to plain text.
		if raw, err = dialer.DialContext(dctx, "tcp", ep.Addr); err != nil {
			return nil, dialError(err)
		}
		ep.StartTLS = false
		cl, g, err = greet(dctx, raw, ep, tcfg, copts)
	}
	if err != nil {
		return nil, err
	}
	c.c, c.g = cl, g
	// Everything until the login completes runs under the dial deadline.
	stop := context.AfterFunc(dctx, func() { cl.Close() })
	defer stop()
	if err := authenticate(cl, mb); err != nil {
		err = readFailure(dctx, g, "login", err) // before Close adds its own failure
		cl.Close()
		return nil, err
	}
	if !stop() {
		cl.Close()
		return nil, classify("login", context.Cause(dctx))
	}
	return c, nil
}

// greet sets up TLS as the endpoint asks and waits for the server greeting.
// Everything go-imap reads passes through the returned guard, which starts
// with the limits of the greeting and login.
func greet(ctx context.Context, raw net.Conn, ep Endpoint, tcfg *tls.Config, copts *imapclient.Options) (*imapclient.Client, *guard, error) {
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	var g *guard
	op := "greeting"
	switch {
	case ep.Implicit:
		tc := tls.Client(raw, tcfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, nil, classify("tls handshake", ctxErr(ctx, err))
		}
		g = newGuard(tc, commandLimits(commandBudget))
	case ep.StartTLS:
		tc, err := startTLS(ctx, raw, tcfg)
		if err != nil {
			raw.Close()
			return nil, nil, err
		}
		// The greeting was the plain-text one; the client must forget what
		// it said and ask for the capabilities again (RFC 9051 §6.2.1).
		g = newGuard(tc, commandLimits(commandBudget))
		g.prefix = []byte("* OK TLS established\r\n")
		op = "starttls"
	default:
		g = newGuard(raw, commandLimits(commandBudget))
	}
	cl := imapclient.New(g, copts)
	if err := cl.WaitGreeting(); err != nil {
		if ctx.Err() == nil && strings.Contains(err.Error(), "connection closed before greeting") {
			// go-imap says so when the connection ended, whether or not the
			// greeting came first (a server that greets and hangs up): the
			// server closed it.
			err = mail.Errorf(mail.ClassConnect, op, "connection closed by the server")
		}
		err = readFailure(ctx, g, op, err)
		cl.Close()
		return nil, nil, err
	}
	return cl, g, nil
}

func authenticate(cl *imapclient.Client, mb *mail.Mailbox) error {
	if mb.UseOAuth {
		if mb.AccessToken == "" {
			return mail.Errorf(mail.ClassAuth, "login", "OAuth mailbox has no access token")
		}
		return cl.Authenticate(newXOAuth2(mb.UserName, mb.AccessToken))
	}
	caps := cl.Caps()
	if caps.Has(imap.AuthCap(sasl.Plain)) || caps.Has(imap.CapLoginDisabled) {
		return cl.Authenticate(sasl.NewPlainClient("", mb.UserName, mb.Password))
	}
	return cl.Login(mb.UserName, mb.Password).Wait()
}

// ctxErr prefers the context's verdict over the error a closed connection
// produced: cancellation stays cancellation (shutdown, close), a deadline is a
// timeout whatever its cause says.
func ctxErr(ctx context.Context, err error) error {
	switch {
	case ctx.Err() == nil:
		return err
	case errors.Is(ctx.Err(), context.Canceled):
		return ctx.Err()
	default:
		return &mail.Error{Class: mail.ClassTimeout, Op: "timeout", Err: context.Cause(ctx)}
	}
}

// classify maps a network, TLS or IMAP error to a mail.Error class.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var me *mail.Error
	if errors.As(err, &me) || errors.Is(err, context.Canceled) {
		return err
	}
	var ie *imap.Error
	if errors.As(err, &ie) {
		switch {
		case op == "login" && ie.Type == imap.StatusResponseTypeNo:
			return &mail.Error{Class: mail.ClassAuth, Op: op, Err: err}
		case ie.Code == imap.ResponseCodeAuthenticationFailed || ie.Code == imap.ResponseCodeAuthorizationFailed:
			return &mail.Error{Class: mail.ClassAuth, Op: op, Err: err}
		case ie.Code == imap.ResponseCodeNonExistent:
			return &mail.Error{Class: mail.ClassConfig, Op: op, Err: err}
		}
		return &mail.Error{Class: mail.ClassProtocol, Op: op, Err: err}
	}
	var (
		certErr    *tls.CertificateVerificationError
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
		recErr     tls.RecordHeaderError
		alertErr   tls.AlertError
		dnsErr     *net.DNSError
		netErr     net.Error
	)
	switch {
	case errors.As(err, &certErr), errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &invalidErr):
		return &mail.Error{Class: mail.ClassCertificate, Op: op, Err: err}
	case errors.As(err, &recErr), errors.As(err, &alertErr), strings.Contains(err.Error(), "tls:"):
		return &mail.Error{Class: mail.ClassTLS, Op: op, Err: err}
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout(),
		strings.Contains(err.Error(), "timeout"):
		return &mail.Error{Class: mail.ClassTimeout, Op: op, Err: err}
	case errors.As(err, &dnsErr), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed), errors.As(err, &netErr):
		return &mail.Error{Class: mail.ClassConnect, Op: op, Err: err}
	}
	return &mail.Error{Class: mail.ClassProtocol, Op: op, Err: fmt.Errorf("%w", err)}
}
