// SPDX-License-Identifier: Apache-2.0

package ews

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

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/netguard"
)

// Classify returns err, a failure of an HTTP exchange with an Exchange server
// (dial, TLS, reading the response), as a *mail.Error: an untrusted
// certificate is ClassCertificate (Creatio shows a dedicated warning for it),
// a failed handshake ClassTLS, a deadline ClassTimeout, a refused, reset or
// cut connection ClassConnect, and a refusal by the network allow-list
// ClassConfig (retrying cannot help). An error that already carries a class
// keeps it; nil stays nil. The autodiscover client uses it too.
func Classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var me *mail.Error
	if errors.As(err, &me) {
		return err
	}
	return &mail.Error{Class: netClass(err), Op: op, Err: err}
}

// netClass decides the class of a transport failure.
func netClass(err error) mail.ErrorClass {
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
	msg := err.Error()
	switch {
	case errors.Is(err, netguard.ErrForbidden):
		return mail.ClassConfig
	case errors.Is(err, context.Canceled):
		// Our own cancellation (shutdown, Close): nothing about the server.
		return mail.ClassInternal
	case errors.As(err, &certErr), errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &invalidErr):
		return mail.ClassCertificate
	case errors.As(err, &recErr), errors.As(err, &alertErr), strings.Contains(msg, "tls:"),
		// net/http's text for a TLS client that met a plain-HTTP server.
		strings.Contains(msg, "server gave HTTP response to HTTPS client"):
		return mail.ClassTLS
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return mail.ClassTimeout
	case errors.As(err, &dnsErr), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.As(err, &netErr):
		return mail.ClassConnect
	}
	return mail.ClassProtocol
}

// ctxError turns the failure of a request whose context ended into the
// context's verdict: our cancellation stays cancellation, a deadline is a
// timeout named by its cause ("ews GetItem: no response within 1m0s").
func ctxError(ctx context.Context, op string, err error) error {
	if ctx.Err() == nil {
		return Classify(op, err)
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
