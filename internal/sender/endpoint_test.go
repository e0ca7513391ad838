// SPDX-License-Identifier: Apache-2.0

package sender

import (
	"testing"

	"github.com/emaillistener/emaillistener/internal/mail"
)

func TestResolveEndpoint(t *testing.T) {
	cases := []struct {
		mb                          mail.Mailbox
		addr                        string
		implicit, starttls, require bool
	}{
		{mail.Mailbox{Host: "smtp.x", Secure: mail.SecureSSL}, "smtp.x:465", true, false, false},
		{mail.Mailbox{Host: "smtp.x", Secure: mail.SecureSSL, Port: 2465}, "smtp.x:2465", true, false, false},
		{mail.Mailbox{Host: "smtp.x", Secure: mail.SecureStartTLS}, "smtp.x:587", false, true, true},
		{mail.Mailbox{Host: "smtp.x", Secure: mail.SecureStartTLS, Port: 25}, "smtp.x:25", false, true, true},
		{mail.Mailbox{Host: "smtp.x", Secure: mail.SecureNone}, "smtp.x:25", false, false, false},
		{mail.Mailbox{Host: "smtp.x", Secure: mail.SecureNone, Port: 587}, "smtp.x:587", false, false, false},
		{mail.Mailbox{Host: "smtp.x", Secure: mail.SecureAuto}, "smtp.x:587", false, true, false},
		{mail.Mailbox{Host: "smtp.x", Secure: mail.SecureAuto, Port: 465}, "smtp.x:465", true, false, false},
		{mail.Mailbox{Host: "smtp.x", Secure: mail.SecureAuto, Port: 25}, "smtp.x:25", false, true, false},
		// A ticked "Use SSL" never means plain text: STARTTLS on 25/587, else implicit TLS.
		{mail.Mailbox{Host: "smtp.x", Secure: mail.SecureAuto, UseSSL: true}, "smtp.x:465", true, false, false},
		{mail.Mailbox{Host: "smtp.x", Secure: mail.SecureAuto, UseSSL: true, Port: 587}, "smtp.x:587", false, true, true},
		{mail.Mailbox{Host: "smtp.x", Secure: mail.SecureNone, UseSSL: true, Port: 25}, "smtp.x:25", false, true, true},
		{mail.Mailbox{Host: "smtp.x", Secure: mail.SecureNone, UseSSL: true, Port: 2525}, "smtp.x:2525", true, false, false},
		{mail.Mailbox{Host: "smtp.x:2525", Secure: mail.SecureStartTLS}, "smtp.x:2525", false, true, true},
		{mail.Mailbox{Host: " ::1 ", Port: 1025, Secure: mail.SecureNone}, "[::1]:1025", false, false, false},
	}
	for _, c := range cases {
		ep, err := ResolveEndpoint(&c.mb)
		if err != nil || ep.Addr != c.addr || ep.Implicit != c.implicit || ep.StartTLS != c.starttls || ep.Required != c.require {
			t.Errorf("%+v: got %+v, %v", c.mb, ep, err)
		}
	}
	for _, mb := range []mail.Mailbox{{Host: ""}, {Host: "x", Port: 70000}, {Host: "x", Port: -1}} {
		_, err := ResolveEndpoint(&mb)
		if mail.ClassOf(err) != mail.ClassConfig || UserMessage(err) == "" {
			t.Errorf("%+v: err = %v, want a config error with a user message", mb, err)
		}
	}
}
