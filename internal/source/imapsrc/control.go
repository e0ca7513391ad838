// SPDX-License-Identifier: Apache-2.0

package imapsrc

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// allowList adapts Options.Control for net.Dialer: a refusal becomes a
// config-class error (retrying cannot help), which dialError finds inside the
// *net.OpError the dialer wraps it in. nil stays nil.
func allowList(control func(network, address string, c syscall.RawConn) error) func(string, string, syscall.RawConn) error {
	if control == nil {
		return nil
	}
	return func(network, address string, c syscall.RawConn) error {
		if err := control(network, address, c); err != nil {
			return &mail.Error{Class: mail.ClassConfig, Op: "connect",
				Err: fmt.Errorf("connection to %s refused by the network allow-list: %w", address, err)}
		}
		return nil
	}
}

// dialError classifies a failed connect: the allow-list's refusal as it is,
// anything else as the network's failure.
func dialError(err error) error {
	var me *mail.Error
	if errors.As(err, &me) {
		return me
	}
	return classify("connect", err)
}
