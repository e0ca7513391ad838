// SPDX-License-Identifier: Apache-2.0

package mail

import (
	"errors"
	"fmt"
)

// ErrorClass is the closed set of failure kinds. It decides retry behaviour, the
// state shown to the client, metric labels and the .NET exception class name
// reported to Creatio.
type ErrorClass string

const (
	ClassAuth ErrorClass = "auth" // credentials rejected
	ClassTLS  ErrorClass = "tls"  // TLS handshake failure (protocol, port not speaking TLS)
	// ClassCertificate: the server's certificate is not trusted (self-signed,
	// expired, wrong host name). Kept apart from ClassTLS because Creatio has a
	// dedicated warning for it (BaseSslWarningException).
	ClassCertificate ErrorClass = "certificate"
	ClassConnect     ErrorClass = "connect"  // DNS, refused, unreachable, reset
	ClassTimeout     ErrorClass = "timeout"  // a deadline ran out
	ClassProtocol    ErrorClass = "protocol" // unexpected server response
	ClassConfig      ErrorClass = "config"   // the mailbox settings cannot work (no host, bad folder)
	ClassInternal    ErrorClass = "internal" // a bug or resource problem on our side
)

// Classes lists every class, for pre-initializing metric labels.
var Classes = []ErrorClass{ClassAuth, ClassTLS, ClassCertificate, ClassConnect, ClassTimeout, ClassProtocol, ClassConfig, ClassInternal}

// Error is a classified failure of an operation against a mail server.
type Error struct {
	Class ErrorClass
	Op    string // what was being done: "dial", "login", "select INBOX", …
	Err   error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Op
	}
	return e.Op + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of class c.
func Errorf(c ErrorClass, op string, format string, args ...any) error {
	return &Error{Class: c, Op: op, Err: fmt.Errorf(format, args...)}
}

// Wrap classifies err (nil stays nil). An err that already carries a class keeps it.
func Wrap(c ErrorClass, op string, err error) error {
	if err == nil {
		return nil
	}
	var me *Error
	if errors.As(err, &me) {
		return err
	}
	return &Error{Class: c, Op: op, Err: err}
}

// ClassOf returns the class of err, ClassInternal when it has none.
func ClassOf(err error) ErrorClass {
	var me *Error
	if errors.As(err, &me) {
		return me.Class
	}
	return ClassInternal
}

// UserError is a failure with a sentence for the person using the client
// application, shown to them as is; Err keeps the classified cause for logs
// and status mapping.
type UserError struct {
	Err error
	Msg string
}

func (e *UserError) Error() string { return e.Msg }
func (e *UserError) Unwrap() error { return e.Err }

// UserMessage returns the sentence for the user.
func (e *UserError) UserMessage() string { return e.Msg }
