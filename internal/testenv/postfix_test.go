// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// newMailPair starts a Dovecot with alice and bob plus a Postfix with SMTP AUTH in
// front of it, the setup the sender tests use.
func newMailPair(t *testing.T, opts PostfixOptions) (*Dovecot, *Postfix) {
	t.Helper()
	d := NewT(t, DovecotOptions{Users: testUsers(), ExtraConf: DovecotSASLConf})
	opts.Dovecot = d
	return d, NewPostfixT(t, opts)
}

// waitMessages polls user's INBOX until it holds want messages; delivery through
// Postfix and LMTP is asynchronous.
func waitMessages(t *testing.T, d *Dovecot, user, pw string, want uint32) {
	t.Helper()
	c := mustClient(t, d, user, pw)
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
		if err != nil {
			t.Fatal(err)
		}
		if *st.NumMessages >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d messages after 10 s, want %d", user, *st.NumMessages, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func smtpMessage(from, to, subject string) string {
	return "From: " + from + "\r\nTo: " + to + "\r\nSubject: " + subject + "\r\n\r\nhello\r\n"
}

// plainSend submits one message without TLS or AUTH (smtp.SendMail would try
// STARTTLS with the system roots, which do not trust the instance's certificate).
func plainSend(t *testing.T, addr, from, to, subject string) {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail(from, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(to, nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(smtpMessage(from, to, subject))); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
}

func TestPostfixSubmission(t *testing.T) {
	t.Parallel()
	d, p := newMailPair(t, PostfixOptions{SASL: true, Recipients: []string{alice, bob}})

	// STARTTLS with the instance's certificate, AUTH PLAIN as alice, mail to bob.
	c, err := smtp.DialStartTLS(p.SMTPAddr, p.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, mechs := c.Extension("AUTH"); !ok || !strings.Contains(mechs, "PLAIN") {
		t.Fatalf("AUTH not offered after STARTTLS: %v %q", ok, mechs)
	}
	if err := c.Auth(sasl.NewPlainClient("", alice, alicePW)); err != nil {
		t.Fatalf("AUTH PLAIN: %v", err)
	}
	if err := c.SendMail(alice, []string{bob}, strings.NewReader(smtpMessage(alice, bob, "via submission"))); err != nil {
		t.Fatal(err)
	}
	waitMessages(t, d, bob, bobPW, 1)

	// Implicit TLS port.
	tc, err := smtp.DialTLS(p.SMTPSAddr, p.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if err := tc.Hello("client.test"); err != nil {
		t.Fatalf("EHLO over implicit TLS: %v", err)
	}
	if _, ok := tc.TLSConnectionState(); !ok {
		t.Fatal("SMTPS connection is not TLS")
	}
}

func TestPostfixRefusals(t *testing.T) {
	t.Parallel()
	_, p := newMailPair(t, PostfixOptions{SASL: true, Recipients: []string{alice, bob}})
	code := func(err error) int {
		t.Helper()
		var se *smtp.SMTPError
		if !errors.As(err, &se) {
			t.Fatalf("want an SMTP reply, got %v", err)
		}
		return se.Code
	}

	dial := func() *smtp.Client {
		t.Helper()
		c, err := smtp.Dial(p.SMTPAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// go-smtp answers the 535 with "*" (cancel), which Postfix takes as a non-SMTP
	// command and hangs up on: the refusals below need a new connection.
	if err := dial().Auth(sasl.NewPlainClient("", alice, "wrong")); code(err) != 535 {
		t.Fatalf("wrong password: %v, want 535", err)
	}
	c := dial()
	if err := c.Mail("someone@elsewhere.test", nil); err != nil {
		t.Fatal(err)
	}
	// Unknown users of a local domain are refused during the session (Recipients).
	if err := c.Rcpt("nobody@example.com", nil); code(err) != 550 {
		t.Fatalf("unknown recipient: %v, want 550", err)
	}
	// Without a login nothing is relayed.
	if err := c.Rcpt("x@elsewhere.test", nil); code(err)/100 != 5 {
		t.Fatalf("relay without AUTH: %v, want 5xx", err)
	}
	if err := c.Rcpt(bob, nil); err != nil {
		t.Fatalf("local recipient without AUTH: %v", err)
	}
}

func TestPostfixStopLeavesNothing(t *testing.T) {
	t.Parallel()
	d := NewT(t, DovecotOptions{Users: testUsers()})
	dir := t.TempDir()
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	p, err := StartPostfix(PostfixOptions{Dir: dir, Dovecot: d, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("StartPostfix took %v", time.Since(t0))
	if len(p.PIDs()) == 0 {
		t.Fatal("no postfix processes found while running")
	}
	// A client in the middle of a session must not keep the instance alive.
	c, err := smtp.Dial(p.SMTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Stop took %v", time.Since(t0))
	if pids := p.PIDs(); len(pids) != 0 || p.Running() {
		t.Fatalf("after Stop: running=%v pids=%v", p.Running(), pids)
	}
	for _, a := range []string{p.SMTPAddr, p.SMTPSAddr} {
		if conn, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			conn.Close()
			t.Fatalf("%s still accepts connections after Stop", a)
		}
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func TestPostfixParallelInstances(t *testing.T) {
	t.Parallel()
	d := NewT(t, DovecotOptions{Users: testUsers()})
	a := NewPostfixT(t, PostfixOptions{Dovecot: d})
	b := NewPostfixT(t, PostfixOptions{Dovecot: d})
	if a.SMTPAddr == b.SMTPAddr || a.Dir == b.Dir || a.Hostname == b.Hostname {
		t.Fatalf("instances share state: %s %s", a.SMTPAddr, b.SMTPAddr)
	}
	for _, p := range []*Postfix{a, b} {
		plainSend(t, p.SMTPAddr, "x@elsewhere.test", alice, "via "+p.Hostname)
	}
	waitMessages(t, d, alice, alicePW, 2)
}

func TestStartPostfixErrors(t *testing.T) {
	t.Parallel()
	d := NewT(t, DovecotOptions{Users: testUsers()})
	cases := map[string]PostfixOptions{
		"no dir":              {Dovecot: d},
		"no dovecot":          {Dir: t.TempDir()},
		"sasl without sock":   {Dir: t.TempDir(), Dovecot: d, SASL: true},
		"bad domain":          {Dir: t.TempDir(), Dovecot: d, Domains: []string{"a b"}},
		"recipient without @": {Dir: t.TempDir(), Dovecot: d, Recipients: []string{"alice"}},
	}
	for name, opts := range cases {
		if _, err := StartPostfix(opts); err == nil {
			t.Errorf("%s: want error", name)
		}
	}
}
