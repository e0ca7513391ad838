// SPDX-License-Identifier: Apache-2.0

package imapsrc

import (
	"errors"
	"fmt"
	"net"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Describe turns a classified connection error into a sentence for the
// client's diagnostics page (validate, folders). It names the server and
// login but never echoes more than a few hundred bytes of either.
func Describe(mb *mail.Mailbox, err error) string {
	ep, _ := ResolveEndpoint(mb)
	where := ep.Addr
	if where == "" {
		where = mb.Host
	}
	where = mail.Excerpt(where, 300)
	switch mail.ClassOf(err) {
	case mail.ClassAuth:
		return fmt.Sprintf("Authentication failed for %q on %s: %v", mail.Excerpt(mb.UserName, 300), where, err)
	case mail.ClassCertificate:
		return fmt.Sprintf("The TLS certificate of %s is not trusted (self-signed, expired or issued for another host name): %v", where, err)
	case mail.ClassTLS:
		return fmt.Sprintf("Secure connection to %s failed (TLS handshake; does the port speak TLS?): %v", where, err)
	case mail.ClassConnect:
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) {
			return fmt.Sprintf("Unknown mail server host %q: %v", mail.Excerpt(ep.Host, 300), err)
		}
		return fmt.Sprintf("Cannot connect to %s: %v", where, err)
	case mail.ClassTimeout:
		return fmt.Sprintf("The mail server %s did not answer in time: %v", where, err)
	case mail.ClassConfig:
		return fmt.Sprintf("The mailbox settings cannot work: %v", err)
	default:
		return fmt.Sprintf("Unexpected answer from %s: %v", where, err)
	}
}
