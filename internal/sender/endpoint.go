// SPDX-License-Identifier: Apache-2.0

package sender

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Standard SMTP ports: message submission with STARTTLS (RFC 6409), submission
// over implicit TLS (RFC 8314 §3.3), and relay.
const (
	portSubmission  = 587
	portSubmissions = 465
	portSMTP        = 25
)

// Endpoint is where and how to connect, derived from a mailbox's outgoing
// settings.
type Endpoint struct {
	Addr     string // host:port
	Host     string // for SNI and certificate verification
	Implicit bool   // TLS from the first byte (port 465 style)
	StartTLS bool   // upgrade with STARTTLS when the server offers it
	Required bool   // with StartTLS: fail when the server does not offer it
}

// ResolveEndpoint applies the mailbox's security settings, Creatio's
// SecureOption (from SmtpSecureOptionId) and UseSsl (UseSSLforSending):
//
//	SecureOption  UseSsl  port given   connection                  default port
//	SSL (2)       any     any          implicit TLS                465
//	StartTls (3)  any     any          STARTTLS, required          587
//	None (0)      false   any          plain text                  25
//	Auto (1)      false   465          implicit TLS
//	Auto (1)      false   other/none   STARTTLS when offered       587
//	Auto/None     true    25 or 587    STARTTLS, required
//	Auto/None     true    other/none   implicit TLS                465
//
// A ticked "Use SSL" is never downgraded to plain text, as for IMAP (README,
// "Security of the mail connection"); but on the two ports where the standard
// way to get TLS is STARTTLS it means STARTTLS rather than a handshake the
// server would not understand, which is how users mean "SSL on port 587".
func ResolveEndpoint(mb *mail.Mailbox) (Endpoint, error) {
	host := strings.TrimSpace(mb.Host)
	if host == "" {
		return Endpoint{}, configError("The mailbox has no SMTP server address.")
	}
	port := mb.Port
	if h, p, err := net.SplitHostPort(host); err == nil {
		host = h
		if port == 0 {
			port, _ = strconv.Atoi(p)
		}
	}
	ep := Endpoint{Host: host}
	defaultPort := portSubmission
	switch {
	case mb.Secure == mail.SecureSSL:
		ep.Implicit, defaultPort = true, portSubmissions
	case mb.Secure == mail.SecureStartTLS:
		ep.StartTLS, ep.Required = true, true
	case mb.UseSSL: // None or Auto with "Use SSL" ticked
		if port == portSubmission || port == portSMTP {
			ep.StartTLS, ep.Required = true, true
		} else {
			ep.Implicit, defaultPort = true, portSubmissions
		}
	case mb.Secure == mail.SecureNone:
		defaultPort = portSMTP
	default: // Auto
		if port == portSubmissions {
			ep.Implicit = true
		} else {
			ep.StartTLS = true
		}
	}
	if port == 0 {
		port = defaultPort
	}
	if port < 1 || port > 65535 {
		return Endpoint{}, configError(fmt.Sprintf("The SMTP port %d of the mailbox is not valid.", port))
	}
	ep.Addr = net.JoinHostPort(host, strconv.Itoa(port))
	return ep, nil
}
