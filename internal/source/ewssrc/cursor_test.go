// SPDX-License-Identifier: Apache-2.0

package ewssrc

import (
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

func TestCursorRoundTrip(t *testing.T) {
	for _, c := range []cursor{
		{},
		{Baseline: true, Mark: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)},
		{Mark: time.Date(2026, 12, 6, 10, 0, 1, 0, time.UTC), State: "H4sIAAAAAAAEAO29B2AcSZ+/R0/2lZ4="},
	} {
		got, err := parseCursor(c.String())
		if err != nil || got != c {
			t.Errorf("parseCursor(%q) = %+v, %v; want %+v", c.String(), got, err, c)
		}
	}
	for _, bad := range []string{"", "1:2:3", "ews1:x:0:", "ews1:s:zz:abc", "ews1:s"} {
		if _, err := parseCursor(bad); err == nil {
			t.Errorf("parseCursor(%q) accepted a foreign cursor", bad)
		}
	}
}

func TestEWSURL(t *testing.T) {
	for _, c := range []struct {
		mb   mail.Mailbox
		want string
	}{
		{mail.Mailbox{Host: "mail.example.com", UseSSL: true}, "https://mail.example.com/EWS/Exchange.asmx"},
		{mail.Mailbox{Host: "mail.example.com", Secure: mail.SecureAuto}, "https://mail.example.com/EWS/Exchange.asmx"}, // an old client without UseSsl
		{mail.Mailbox{Host: "mail.example.com:8443/", Secure: mail.SecureSSL}, "https://mail.example.com:8443/EWS/Exchange.asmx"},
		{mail.Mailbox{Host: "mail.example.com", Port: 444, UseSSL: true}, "https://mail.example.com:444/EWS/Exchange.asmx"},
		{mail.Mailbox{Host: "127.0.0.1:8080", Secure: mail.SecureNone}, "http://127.0.0.1:8080/EWS/Exchange.asmx"},
		{mail.Mailbox{Host: "https://mail.example.com"}, "https://mail.example.com/EWS/Exchange.asmx"},
		{mail.Mailbox{Host: "https://mail.example.com/ews/exchange.asmx"}, "https://mail.example.com/ews/exchange.asmx"},
		{mail.Mailbox{Host: "http://10.0.0.5/EWS/Exchange.asmx"}, "http://10.0.0.5/EWS/Exchange.asmx"},
	} {
		got, err := EWSURL(&c.mb)
		if err != nil || got != c.want {
			t.Errorf("EWSURL(%+v) = %q, %v; want %q", c.mb, got, err, c.want)
		}
	}
	for _, host := range []string{"", "ftp://mail.example.com", "https://user:pw@mail.example.com/", "https:///x"} {
		if u, err := EWSURL(&mail.Mailbox{Host: host}); err == nil || mail.ClassOf(err) != mail.ClassConfig {
			t.Errorf("EWSURL(%q) = %q, %v; want a ClassConfig error", host, u, err)
		}
	}
}
