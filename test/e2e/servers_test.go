// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/config"
	"github.com/emaillistener/emaillistener/internal/testenv"
)

// imapServer is one of the real IMAP servers the suite runs against, as the
// tests drive it.
type imapServer struct {
	name      string
	addr      string      // plain IMAP
	tlsAddr   string      // implicit TLS
	tls       *tls.Config // trusts the server's certificate
	separator string
	folder    func(parts ...string) string // a folder path in the server's naming
	append    func(user, pass, folder string, raw []byte) error
	create    func(user, pass, name string) error
	restart   func() error
	log       func() string
}

var serverUsers = map[string]string{"alice@example.com": "alicepw", "bob@example.com": "bobpw"}

func dovecotServer(t *testing.T) imapServer {
	d := testenv.NewT(t, testenv.DovecotOptions{Users: serverUsers})
	return imapServer{name: "dovecot", addr: d.IMAPAddr, tlsAddr: d.IMAPSAddr, tls: d.TLSConfig(), separator: "/",
		folder:  func(parts ...string) string { return strings.Join(parts, "/") },
		append:  func(u, p, f string, raw []byte) error { _, err := d.Append(u, p, f, raw); return err },
		create:  d.CreateFolder,
		restart: d.Restart, log: d.Log}
}

func cyrusServer(t *testing.T) imapServer {
	c := testenv.NewCyrusT(t, testenv.CyrusOptions{Users: serverUsers})
	return imapServer{name: "cyrus", addr: c.IMAPAddr, tlsAddr: c.IMAPSAddr, tls: c.TLSConfig(), separator: c.Separator,
		folder:  c.FolderName,
		append:  func(u, p, f string, raw []byte) error { _, err := c.Append(u, p, f, raw); return err },
		create:  c.CreateFolder,
		restart: c.Restart, log: c.Log}
}

func courierServer(t *testing.T, o testenv.CourierOptions) (imapServer, *testenv.Courier) {
	o.Users = serverUsers
	c := testenv.NewCourierT(t, o)
	return imapServer{name: "courier", addr: c.IMAPAddr, tlsAddr: c.IMAPSAddr, tls: c.TLSConfig(), separator: c.Separator,
		folder:  c.FolderName,
		append:  func(u, p, f string, raw []byte) error { _, err := c.Append(u, p, f, raw); return err },
		create:  c.CreateFolder,
		restart: c.Restart, log: c.Log}, c
}

// TestIMAPServers runs the same timeline against Dovecot, Cyrus (with idled)
// and Courier (with IMAP_ENHANCEDIDLE): validate, folders with non-ASCII
// nesting in the server's own naming, a subscription to INBOX and a nested
// folder, delivery into both, a server restart, and synchronize. Every mail
// is delivered exactly once; latencies are logged as FIGURE lines.
func TestIMAPServers(t *testing.T) {
	for _, srv := range []struct {
		name  string
		start func(*testing.T) imapServer
	}{
		{"dovecot", dovecotServer},
		{"cyrus", cyrusServer},
		{"courier", func(t *testing.T) imapServer {
			s, _ := courierServer(t, testenv.CourierOptions{EnhancedIdle: true})
			return s
		}},
	} {
		// Named subtests: their temporary directories end up in the
		// servers' configuration files, where "#" would start a comment.
		t.Run(srv.name, func(t *testing.T) {
			t.Parallel()
			s := srv.start(t)
			serverTimeline(t, s)
		})
	}
}

func serverTimeline(t *testing.T, s imapServer) {
	e := startService(t, s.tls, nil, func(c *config.Config) { c.IMAPFolderPoll = time.Second })
	const id = "5e1f0000-0000-4000-8000-00000000c001"
	alice := mailboxSpec{ID: id, User: "alice@example.com", Password: "alicepw", Addr: s.tlsAddr, SecureOption: 2, UseSsl: true}
	body := func(m mailboxSpec) string { return strings.TrimSuffix(strings.TrimPrefix(e.createBody(m), "["), "]") }

	// Validate.
	var v validation
	if err := json.Unmarshal([]byte(e.mustPost("/api/mailbox/validate", body(alice))), &v); err != nil || !v.IsValid {
		t.Fatalf("%s: validate = %+v, %v", s.name, v, err)
	}
	wrong := alice
	wrong.Password = wrongPassword
	if err := json.Unmarshal([]byte(e.mustPost("/api/mailbox/validate", body(wrong))), &v); err != nil || v.IsValid {
		t.Errorf("%s: validate with a wrong password = %+v, %v", s.name, v, err)
	}

	// Folders: a non-ASCII folder with a child, in the server's naming.
	parent, child := s.folder("Проекты"), s.folder("Проекты", "2026 Q1")
	for _, f := range []string{parent, child} {
		if err := s.create("alice@example.com", "alicepw", f); err != nil {
			t.Fatalf("%s: create %s: %v", s.name, f, err)
		}
	}
	var folders []struct{ Id, Name, ParentId string }
	if err := json.Unmarshal([]byte(e.mustPost("/api/mailbox/folders", body(alice))), &folders); err != nil {
		t.Fatal(err)
	}
	byID := map[string]struct{ Name, ParentId string }{}
	for _, f := range folders {
		byID[f.Id] = struct{ Name, ParentId string }{f.Name, f.ParentId}
	}
	if byID[child].Name != "2026 Q1" || byID[child].ParentId != parent || byID[parent].Name != "Проекты" {
		t.Errorf("%s: folders = %+v, want %q under %q", s.name, folders, child, parent)
	}

	// Subscribe INBOX and the nested folder.
	alice.Folders = []string{"INBOX", child}
	e.mustPost("/api/listeners/create", e.createBody(alice))
	st := e.waitState(id, "exists", 15*time.Second)
	if got := anyStrings(st["Folders"]); len(got) != 2 || !slices.Contains(got, child) {
		t.Errorf("%s: watched folders %v", s.name, got)
	}
	time.Sleep(time.Second) // the first catch-up is over

	deliver := func(folder, subject string, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		if err := s.append("alice@example.com", "alicepw", folder, simpleMail(subject, subject+"@example.com")); err != nil {
			t.Fatalf("%s: append to %s: %v", s.name, folder, err)
		}
		e.waitEmails(subject, 1, within)
		return time.Since(start)
	}
	var inbox, other []time.Duration
	for i := range 5 {
		inbox = append(inbox, deliver("INBOX", fmt.Sprintf("%s-inbox-%d", s.name, i), 10*time.Second))
		other = append(other, deliver(child, fmt.Sprintf("%s-other-%d", s.name, i), 10*time.Second))
	}
	t.Logf("FIGURE %s: INBOX latency p50 %v max %v; other folder p50 %v max %v", s.name,
		p50(inbox), slices.Max(inbox), p50(other), slices.Max(other))

	// The server restarts: the mailbox reconnects and mail flows again.
	start := time.Now()
	if err := s.restart(); err != nil {
		t.Fatal(err)
	}
	d := deliver("INBOX", s.name+"-after-restart", 30*time.Second)
	t.Logf("FIGURE %s: restart → first mail delivered in %v (mail appended %v after the restart began)", s.name,
		time.Since(start).Round(time.Millisecond), (time.Since(start) - d).Round(time.Millisecond))
	e.waitState(id, "exists", 15*time.Second)

	// Live delivery: each mail exactly once.
	var subjects []string
	for i := range 5 {
		subjects = append(subjects, fmt.Sprintf("%s-inbox-%d", s.name, i), fmt.Sprintf("%s-other-%d", s.name, i))
	}
	e.once(append(subjects, s.name+"-after-restart")...)

	// Synchronize with Creatio's IMAP filter (SINCE has day granularity):
	// every mail of both folders from today, 11 in all.
	before := len(e.col.Emails())
	filter := "UNDELETED SINCE " + time.Now().UTC().Add(-time.Hour).Format("02-Jan-2006")
	e.mustPost("/api/email/synchronize", fmt.Sprintf(`{"Credentials":%s,"Filters":%q}`, body(alice), filter))
	deadline := time.Now().Add(15 * time.Second)
	for len(e.col.Emails()) < before+11 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	if got := len(e.col.Emails()) - before; got != 11 {
		t.Errorf("%s: synchronize delivered %d emails, want 11", s.name, got)
	}
	t.Logf("FIGURE %s: synchronize delivered %d", s.name, len(e.col.Emails())-before)
}

func p50(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2].Round(time.Millisecond)
}

// Courier leaves UIDNEXT out of EXAMINE: a new subscription to a mailbox with
// 27 old mails delivers none of them, and the first mail into an INBOX that
// never held mail (whose UIDVALIDITY Courier only fixes then) is delivered
// once.
func TestCourierOldAndFirstMail(t *testing.T) {
	s, c := courierServer(t, testenv.CourierOptions{EnhancedIdle: true})
	old := make([][]byte, 27)
	for i := range old {
		old[i] = simpleMail(fmt.Sprintf("courier-old-%d", i), fmt.Sprintf("old-%d@example.com", i))
	}
	if err := c.Seed("alice@example.com", "INBOX", old); err != nil {
		t.Fatal(err)
	}
	e := startService(t, s.tls, nil, nil)
	const alice, bob = "5e1f0000-0000-4000-8000-00000000c101", "5e1f0000-0000-4000-8000-00000000c102"
	for _, m := range []mailboxSpec{
		{ID: alice, User: "alice@example.com", Password: "alicepw", Addr: s.tlsAddr, SecureOption: 2, UseSsl: true},
		{ID: bob, User: "bob@example.com", Password: "bobpw", Addr: s.tlsAddr, SecureOption: 2, UseSsl: true},
	} {
		e.mustPost("/api/listeners/create", e.createBody(m))
		e.waitState(m.ID, "exists", 15*time.Second)
	}
	// Reconnects (the service's own and the server's restart) must not
	// deliver the old mail either.
	time.Sleep(2 * time.Second)
	if err := s.restart(); err != nil {
		t.Fatal(err)
	}
	e.waitState(alice, "exists", 15*time.Second)
	if err := s.append("bob@example.com", "bobpw", "INBOX", simpleMail("courier-first", "first@example.com")); err != nil {
		t.Fatal(err)
	}
	e.waitEmails("courier-first", 1, 20*time.Second)
	if err := s.append("alice@example.com", "alicepw", "INBOX", simpleMail("courier-new", "new@example.com")); err != nil {
		t.Fatal(err)
	}
	e.waitEmails("courier-new", 1, 20*time.Second)
	time.Sleep(3 * time.Second)
	if n := len(e.emails("courier-old-")); n != 0 {
		t.Errorf("%d of the 27 old mails delivered", n)
	}
	e.once("courier-first", "courier-new")
}

// Servers that accept IDLE but never push — Cyrus without idled, Courier
// without IMAP_ENHANCEDIDLE — are found out: after mail that no push
// announced was found twice, the mailbox is checked every 15 s and its state
// says Push "poll"; mail then arrives within seconds, not at the end of a
// 10-minute IDLE.
func TestServersThatDoNotPush(t *testing.T) {
	for _, srv := range []struct {
		name  string
		start func(*testing.T) imapServer
	}{
		{"cyrus-without-idled", func(t *testing.T) imapServer {
			c := testenv.NewCyrusT(t, testenv.CyrusOptions{Users: serverUsers, NoIdled: true})
			return imapServer{name: "cyrus", tlsAddr: c.IMAPSAddr, tls: c.TLSConfig(),
				append: func(u, p, f string, raw []byte) error { _, err := c.Append(u, p, f, raw); return err }}
		}},
		{"courier-default-idle", func(t *testing.T) imapServer { s, _ := courierServer(t, testenv.CourierOptions{}); return s }},
	} {
		t.Run(srv.name, func(t *testing.T) {
			t.Parallel()
			s := srv.start(t)
			e := startService(t, s.tls, nil, nil)
			const id = "5e1f0000-0000-4000-8000-00000000c201"
			e.mustPost("/api/listeners/create", e.createBody(mailboxSpec{ID: id, User: "alice@example.com", Password: "alicepw",
				Addr: s.tlsAddr, SecureOption: 2, UseSsl: true}))
			e.waitState(id, "exists", 15*time.Second)
			deliver := func(subject string, within time.Duration) time.Duration {
				t.Helper()
				start := time.Now()
				if err := s.append("alice@example.com", "alicepw", "INBOX", simpleMail(subject, subject+"@example.com")); err != nil {
					t.Fatal(err)
				}
				e.waitEmails(subject, 1, within)
				return time.Since(start)
			}
			// Two mails within the re-checks after connecting and after a
			// delivery: both found by a re-check, none announced.
			a := deliver(srv.name+"-silent-1", 10*time.Second)
			b := deliver(srv.name+"-silent-2", 10*time.Second)
			// Long after any activity: only the silent-server rounds find it.
			time.Sleep(20 * time.Second)
			c := deliver(srv.name+"-silent-3", 20*time.Second)
			lat := []time.Duration{a, b, c}
			if st := e.state(id); st["Push"] != "poll" {
				t.Errorf("state Push = %v, want poll", st["Push"])
			}
			t.Logf("FIGURE %s: latencies %v", srv.name, lat)
		})
	}
}
