// SPDX-License-Identifier: Apache-2.0

package graph

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
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/netguard"
)

// transportError classifies err, a failed HTTP exchange (dial, TLS, reading
// the response), as a *mail.Error for op. An error that already carries a
// class keeps it.
func transportError(op string, err error) error {
	var me *mail.Error
	if errors.As(err, &me) {
		return err
	}
	return &mail.Error{Class: transportClass(err), Op: op, Err: err}
}

// transportClass decides the class of a transport failure:
//
//	netguard refusal          ClassConfig (the allow-list forbids the address; retrying cannot help)
//	our cancellation          ClassInternal (nothing about the server)
//	untrusted certificate     ClassCertificate (Creatio shows a dedicated warning)
//	failed TLS handshake      ClassTLS
//	deadline                  ClassTimeout
//	DNS, refused, reset, EOF  ClassConnect
//	anything else             ClassProtocol
func transportClass(err error) mail.ErrorClass {
	if errors.Is(err, netguard.ErrForbidden) {
		return mail.ClassConfig
	}
	if errors.Is(err, context.Canceled) {
		return mail.ClassInternal
	}
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	if errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid) {
		return mail.ClassCertificate
	}
	var (
		record tls.RecordHeaderError
		alert  tls.AlertError
	)
	text := err.Error()
	if errors.As(err, &record) || errors.As(err, &alert) || strings.Contains(text, "tls:") ||
		strings.Contains(text, "server gave HTTP response to HTTPS client") {
		return mail.ClassTLS
	}
	var ne net.Error
	isNet := errors.As(err, &ne)
	if errors.Is(err, context.DeadlineExceeded) || (isNet && ne.Timeout()) {
		return mail.ClassTimeout
	}
	var dns *net.DNSError
	if isNet || errors.As(err, &dns) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) {
		return mail.ClassConnect
	}
	return mail.ClassProtocol
}

// deadline is the cause of a request's timeout; it is a
// context.DeadlineExceeded for errors.Is.
type deadline struct{ d time.Duration }

func (e *deadline) Error() string { return fmt.Sprintf("no complete response within %s", e.d) }
func (e *deadline) Unwrap() error { return context.DeadlineExceeded }

// ctxError classifies the failure of a request whose context may have
// ended: our cancellation is ClassInternal, a deadline ClassTimeout named
// by its cause, and a failure while the context is alive a transport error.
func ctxError(ctx context.Context, op string, err error) error {
	if ctx.Err() == nil {
		return transportError(op, err)
	}
	cause := context.Cause(ctx)
	var me *mail.Error
	if errors.As(cause, &me) {
		return cause
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return &mail.Error{Class: mail.ClassInternal, Op: op, Err: cause}
	}
	if cause == nil || cause == context.DeadlineExceeded {
		cause = fmt.Errorf("%w", context.DeadlineExceeded)
	}
	return &mail.Error{Class: mail.ClassTimeout, Op: op, Err: cause}
}
