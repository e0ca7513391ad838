// SPDX-License-Identifier: Apache-2.0

package imapsrc

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/testenv"
)

// Dial does STARTTLS itself (starttls.go); these tests hold it to the
// semantics go-imap's NewStartTLS had: TLS when asked, plain text only when
// the server refuses opportunistic STARTTLS, never after a failed handshake.

func dialMode(t *testing.T, addr string, secure mail.SecureOption, tcfg *tls.Config) (*Conn, error) {
	t.Helper()
	mb := &mail.Mailbox{Host: addr, Secure: secure, UserName: appendUser, Password: appendPW}
	c, err := Dial(t.Context(), mb, &Options{DialTimeout: 5 * time.Second, CommandTimeout: 5 * time.Second, TLSConfig: tcfg}, nil)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

func TestStartTLSDovecot(t *testing.T) {
	t.Parallel()
	d := testenv.NewT(t, testenv.DovecotOptions{Users: map[string]string{appendUser: appendPW}})
	if _, err := d.Append(appendUser, appendPW, "INBOX", sentMessage); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		addr   string
		secure mail.SecureOption
	}{
		{"starttls", d.IMAPAddr, mail.SecureStartTLS},
		{"opportunistic", d.IMAPAddr, mail.SecureAuto},
		{"implicit", d.IMAPSAddr, mail.SecureSSL},
	} {
		conn, err := dialMode(t, c.addr, c.secure, d.TLSConfig())
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		// The session works: capabilities asked again over TLS, LIST,
		// EXAMINE, FETCH.
		if !conn.HasIdle() {
			t.Errorf("%s: no IDLE in the capabilities after TLS", c.name)
		}
		if _, err := conn.Folders(t.Context()); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if _, err := conn.Examine(t.Context(), "INBOX"); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		f, err := conn.Fetch(t.Context(), MessageRef{UID: 1, Size: int64(len(sentMessage))})
		if err != nil || string(f.Raw) != string(sentMessage) {
			t.Fatalf("%s: Fetch = %v, %v", c.name, f, err)
		}
	}
	// Each of them logged in over TLS: Dovecot notes "TLS" on its login
	// line (Append's helper connection is plain, "secured" on loopback).
	tlsLogins := func() int { return strings.Count(d.Log(), "imap-login: Info: Login:") - 1 }
	if n := waitCount(tlsLogins, 3, time.Second); n != 3 || strings.Count(d.Log(), ", TLS, session=") != 3 {
		t.Errorf("%d logins, %d of them over TLS, want 3 over TLS", n, strings.Count(d.Log(), ", TLS, session="))
	}

	// A wrong password is an auth error: the guard must not turn the
	// connection Dial closes afterwards into a connect error. (One attempt:
	// Dovecot's penalty doubles the delay of each further failure.)
	mb := &mail.Mailbox{Host: d.IMAPAddr, Secure: mail.SecureStartTLS, UserName: appendUser, Password: "wrong"}
	if _, err := Dial(t.Context(), mb, &Options{TLSConfig: d.TLSConfig()}, nil); mail.ClassOf(err) != mail.ClassAuth {
		t.Errorf("wrong password: %v (class %s), want an auth error", err, mail.ClassOf(err))
	}

	// An untrusted certificate is a certificate error, also for
	// opportunistic STARTTLS: a downgrade would have logged in in plain text.
	for _, secure := range []mail.SecureOption{mail.SecureStartTLS, mail.SecureAuto} {
		if _, err := dialMode(t, d.IMAPAddr, secure, &tls.Config{}); mail.ClassOf(err) != mail.ClassCertificate {
			t.Errorf("secure %v, untrusted certificate: %v, want a certificate error", secure, err)
		}
	}
	if n := waitCount(tlsLogins, 4, 200*time.Millisecond); n != 3 {
		t.Errorf("%d logins after the certificate errors, want still 3", n)
	}
}

// waitCount polls count for up to wait (Dovecot logs asynchronously) until
// it reaches want, and returns its last value.
func waitCount(count func() int, want int, wait time.Duration) int {
	deadline := time.Now().Add(wait)
	for {
		n := count()
		if n >= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStartTLSRefused(t *testing.T) {
	r := testenv.NewRogueIMAPT(t, testenv.RogueStartTLSRefused)
	// Opportunistic: the refusal means plain text, on a new connection.
	conn, err := dialMode(t, r.Addr, mail.SecureAuto, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Folders(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r.Connections() != 2 || r.CommandCount("STARTTLS") != 1 || r.CommandCount("LOGIN") != 1 {
		t.Errorf("%d connections, commands %q; want STARTTLS refused, then LOGIN on a second connection", r.Connections(), r.Commands())
	}
	// Required: the refusal is the error.
	_, err = dialMode(t, r.Addr, mail.SecureStartTLS, nil)
	if mail.ClassOf(err) != mail.ClassProtocol || !strings.Contains(err.Error(), "TLS is not available") {
		t.Errorf("required STARTTLS refused: %v, want a protocol error quoting the server", err)
	}
	if r.Connections() != 3 {
		t.Errorf("%d connections, want no plain-text retry after a refused required STARTTLS", r.Connections())
	}
}

func TestStartTLSHandshakeFailsNoDowngrade(t *testing.T) {
	for _, secure := range []mail.SecureOption{mail.SecureAuto, mail.SecureStartTLS} {
		r := testenv.NewRogueIMAPT(t, testenv.RogueStartTLSGarbage)
		_, err := dialMode(t, r.Addr, secure, nil)
		if mail.ClassOf(err) != mail.ClassTLS {
			t.Errorf("secure %v: %v, want a TLS error", secure, err)
		}
		if r.Connections() != 1 || r.CommandCount("LOGIN") != 0 {
			t.Errorf("secure %v: %d connections, commands %q; want no plain-text retry", secure, r.Connections(), r.Commands())
		}
	}
}
