// SPDX-License-Identifier: Apache-2.0

package ewssrc

import (
	"errors"
	"fmt"
	"net"
	"net/url"

	"github.com/emaillistener/emaillistener/internal/creatio"
	"github.com/emaillistener/emaillistener/internal/ews"
	"github.com/emaillistener/emaillistener/internal/ews/autodiscover"
	"github.com/emaillistener/emaillistener/internal/mail"
)

// Describe turns a failed Exchange call into a sentence for the client's
// diagnostics page (validate, folders, send): which server, which login, and
// what to check. It never echoes more than a few hundred bytes of either.
func Describe(mb *mail.Mailbox, err error) string {
	where := mb.Host
	if u, uerr := EWSURL(mb); uerr == nil {
		where = u
	}
	if mb.Extra[creatio.ExtraIsAutodiscover] == "true" {
		where = "the Exchange server found by Autodiscover for " + address(mb)
	}
	where = mail.Excerpt(where, 300)
	user := mail.Excerpt(mb.UserName, 300)
	var (
		ad  *autodiscover.Error
		dns *net.DNSError
		se  *ews.StatusError
	)
	switch {
	case errors.As(err, &ad) && mail.ClassOf(err) != mail.ClassAuth:
		return fmt.Sprintf("Autodiscover could not find the Exchange server for %s: %v", mail.Excerpt(address(mb), 300), err)
	case mail.ClassOf(err) == mail.ClassAuth && mb.UseOAuth:
		return fmt.Sprintf("Exchange rejected the OAuth access token of %q at %s (401 Unauthorized); sign in to the mailbox again: %v", user, where, err)
	case mail.ClassOf(err) == mail.ClassAuth:
		return fmt.Sprintf("Authentication failed for %q at %s (401 Unauthorized): wrong user name or password: %v", user, where, err)
	case errors.As(err, &se) && se.Status == 403:
		return fmt.Sprintf("Exchange Web Services (EWS) is disabled for %q at %s, or the account may not use it: ask the Exchange administrator to enable EWS for the mailbox: %v", user, where, err)
	case errors.As(err, &se) && se.Status == 404:
		return fmt.Sprintf("%s does not answer Exchange Web Services (404 Not Found): check the server address (expected https://host/EWS/Exchange.asmx): %v", where, err)
	case mail.ClassOf(err) == mail.ClassCertificate:
		return fmt.Sprintf("The TLS certificate of %s is not trusted (self-signed, expired or issued for another host name): %v", where, err)
	case mail.ClassOf(err) == mail.ClassTLS:
		return fmt.Sprintf("Secure connection to %s failed (TLS handshake): %v", where, err)
	case mail.ClassOf(err) == mail.ClassConnect && errors.As(err, &dns):
		return fmt.Sprintf("Unknown Exchange server host %q: %v", mail.Excerpt(hostOf(where), 300), err)
	case mail.ClassOf(err) == mail.ClassConnect:
		return fmt.Sprintf("Cannot connect to %s: %v", where, err)
	case mail.ClassOf(err) == mail.ClassTimeout:
		return fmt.Sprintf("The Exchange server %s did not answer in time: %v", where, err)
	case mail.ClassOf(err) == mail.ClassConfig:
		return fmt.Sprintf("The mailbox settings cannot work with %s: %v", where, err)
	default:
		return fmt.Sprintf("Unexpected answer from %s: %v", where, err)
	}
}

// hostOf is the host name of an EWS URL (or the text itself).
func hostOf(s string) string {
	if u, err := url.Parse(s); err == nil && u.Hostname() != "" {
		return u.Hostname()
	}
	return s
}
