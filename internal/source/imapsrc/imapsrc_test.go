// SPDX-License-Identifier: Apache-2.0

package imapsrc

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/emaillistener/emaillistener/internal/mail"
)

func TestResolveEndpoint(t *testing.T) {
	cases := []struct {
		mb                          mail.Mailbox
		addr                        string
		implicit, starttls, require bool
	}{
		{mail.Mailbox{Host: "imap.x", Secure: mail.SecureSSL}, "imap.x:993", true, false, false},
		{mail.Mailbox{Host: "imap.x", Secure: mail.SecureStartTLS}, "imap.x:143", false, true, true},
		{mail.Mailbox{Host: "imap.x", Secure: mail.SecureNone}, "imap.x:143", false, false, false},
		{mail.Mailbox{Host: "imap.x", Secure: mail.SecureNone, UseSSL: true}, "imap.x:993", true, false, false},
		{mail.Mailbox{Host: "imap.x", Secure: mail.SecureAuto, Port: 993}, "imap.x:993", true, false, false},
		{mail.Mailbox{Host: "imap.x", Secure: mail.SecureAuto, Port: 143}, "imap.x:143", false, true, false},
		{mail.Mailbox{Host: "imap.x:1993", Secure: mail.SecureSSL}, "imap.x:1993", true, false, false},
		{mail.Mailbox{Host: "::1", Port: 10143, Secure: mail.SecureNone}, "[::1]:10143", false, false, false},
	}
	for _, c := range cases {
		ep, err := ResolveEndpoint(&c.mb)
		if err != nil || ep.Addr != c.addr || ep.Implicit != c.implicit || ep.StartTLS != c.starttls || ep.Required != c.require {
			t.Errorf("%+v: got %+v, %v", c.mb, ep, err)
		}
	}
	for _, mb := range []mail.Mailbox{{Host: ""}, {Host: "x", Port: 70000}} {
		if _, err := ResolveEndpoint(&mb); mail.ClassOf(err) != mail.ClassConfig {
			t.Errorf("%+v: err = %v, want config error", mb, err)
		}
	}
}

func TestXOAuth2(t *testing.T) {
	mech, ir, err := newXOAuth2("user@example.com", "tok").Start()
	if err != nil || mech != "XOAUTH2" || string(ir) != "user=user@example.com\x01auth=Bearer tok\x01\x01" {
		t.Fatalf("Start = %q %q %v", mech, ir, err)
	}
	_, err = newXOAuth2("u", "t").Next([]byte(`{"status":"401","schemes":"Bearer","scope":"https://mail.google.com/"}`))
	if mail.ClassOf(err) != mail.ClassAuth {
		t.Fatalf("Next(error challenge) err = %v; want an auth error", err)
	}
	if _, err := newXOAuth2("u", "t").Next([]byte("garbage")); err == nil {
		t.Fatal("unexpected challenge accepted")
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		op   string
		err  error
		want mail.ErrorClass
	}{
		{"login", &imap.Error{Type: imap.StatusResponseTypeNo, Text: "Authentication failed."}, mail.ClassAuth},
		{"select", &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent}, mail.ClassConfig},
		{"fetch", &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Error in IMAP command"}, mail.ClassProtocol},
		{"connect", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, mail.ClassConnect},
		{"connect", &net.DNSError{Err: "no such host", Name: "nope.invalid"}, mail.ClassConnect},
		{"tls handshake", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, mail.ClassTLS},
		{"noop", context.DeadlineExceeded, mail.ClassTimeout},
		{"fetch", io.ErrUnexpectedEOF, mail.ClassConnect},
		{"login", mail.Errorf(mail.ClassAuth, "login", "x"), mail.ClassAuth},
	}
	for _, c := range cases {
		if got := mail.ClassOf(classify(c.op, c.err)); got != c.want {
			t.Errorf("classify(%s, %v) = %s, want %s", c.op, c.err, got, c.want)
		}
	}
}

func TestWatchByDefault(t *testing.T) {
	yes := []mail.Folder{
		{Name: "INBOX", Selectable: true},
		{Name: "Sent", Selectable: true, Attrs: []string{`\Sent`}},
		{Name: "Projects/Deleted stuff", Delim: '/', Selectable: true},
		{Name: "Архив", Selectable: true},
	}
	no := []mail.Folder{
		{Name: "Корзина", Selectable: true, Attrs: []string{`\Trash`}},
		{Name: "Trash", Selectable: true},
		{Name: "Trash/Old", Delim: '/', Selectable: true},
		{Name: "INBOX.Junk", Delim: '.', Selectable: true},
		{Name: "[Gmail]/All Mail", Delim: '/', Selectable: true, Attrs: []string{`\All`}},
		{Name: "[Gmail]", Delim: '/', Selectable: false},
		{Name: "Drafts", Selectable: true, Attrs: []string{`\Drafts`}},
		{Name: "Spam", Selectable: true},
	}
	for _, f := range yes {
		if !WatchByDefault(f) {
			t.Errorf("%q should be watched", f.Name)
		}
	}
	for _, f := range no {
		if WatchByDefault(f) {
			t.Errorf("%q should not be watched", f.Name)
		}
	}
}
