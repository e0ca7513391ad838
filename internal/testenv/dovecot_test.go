// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

const (
	alice   = "alice@example.com"
	alicePW = "alicepw"
	bob     = "bob@example.com"
	bobPW   = "bobpw"
)

func testUsers() map[string]string { return map[string]string{alice: alicePW, bob: bobPW} }

func testMessage(subject string) []byte {
	return []byte("From: bob@example.com\r\nTo: alice@example.com\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@example.com>\r\n\r\nbody of " + subject + "\r\n")
}

func mustClient(t *testing.T, d *Dovecot, user, pw string) *imapclient.Client {
	t.Helper()
	c, err := d.Client(user, pw)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mustSelect(t *testing.T, c *imapclient.Client, folder string) *imap.SelectData {
	t.Helper()
	data, err := c.Select(folder, nil).Wait()
	if err != nil {
		t.Fatalf("select %s: %v", folder, err)
	}
	return data
}

// fetchBody selects folder and returns BODY.PEEK[] of uid.
func fetchBody(t *testing.T, c *imapclient.Client, folder string, uid uint32) []byte {
	t.Helper()
	mustSelect(t, c, folder)
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.UIDSetNum(imap.UID(uid)), &imap.FetchOptions{
		UID: true, BodySection: []*imap.FetchItemBodySection{section},
	}).Collect()
	if err != nil {
		t.Fatalf("uid fetch %d in %s: %v", uid, folder, err)
	}
	if len(msgs) != 1 {
		t.Fatalf("uid fetch %d in %s: got %d messages, want 1", uid, folder, len(msgs))
	}
	return msgs[0].FindBodySection(section)
}

func TestDovecotAppendFetch(t *testing.T) {
	t.Parallel()
	d := NewT(t, DovecotOptions{Users: testUsers()})

	raw := testMessage("hello inbox")
	uid, err := d.Append(alice, alicePW, "", raw)
	if err != nil {
		t.Fatal(err)
	}
	c := mustClient(t, d, alice, alicePW) // a second, independent connection
	if got := fetchBody(t, c, "INBOX", uid); !bytes.Equal(got, raw) {
		t.Fatalf("INBOX uid %d body = %q, want %q", uid, got, raw)
	}

	// Append creates missing (nested) folders.
	raw2 := testMessage("hello archive")
	uid2, err := d.Append(alice, alicePW, "Archive/2024", raw2)
	if err != nil {
		t.Fatal(err)
	}
	if got := fetchBody(t, c, "Archive/2024", uid2); !bytes.Equal(got, raw2) {
		t.Fatalf("Archive/2024 uid %d body = %q, want %q", uid2, got, raw2)
	}
	if err := d.CreateFolder(alice, alicePW, "Archive/2024"); err != nil {
		t.Fatalf("CreateFolder on an existing folder: %v", err)
	}

	// Mailboxes are per user, and passwords are checked.
	cb := mustClient(t, d, bob, bobPW)
	if n := mustSelect(t, cb, "INBOX").NumMessages; n != 0 {
		t.Fatalf("bob's INBOX has %d messages, want 0", n)
	}
	if _, err := d.Client(alice, "wrong"); err == nil {
		t.Fatal("login with a wrong password succeeded")
	}
}

func TestDovecotIMAPSAndLMTP(t *testing.T) {
	t.Parallel()
	d := NewT(t, DovecotOptions{Users: testUsers()})

	// Implicit TLS, trusting only the instance's own certificate.
	c, err := imapclient.DialTLS(d.IMAPSAddr, &imapclient.Options{TLSConfig: d.TLSConfig()})
	if err != nil {
		t.Fatalf("dial imaps: %v", err)
	}
	defer c.Close()
	if err := c.Login(bob, bobPW).Wait(); err != nil {
		t.Fatalf("login over TLS: %v", err)
	}

	lmtpDeliver(t, d.LMTPAddr, bob, testMessage("via lmtp"))
	if n := mustSelect(t, c, "INBOX").NumMessages; n != 1 {
		t.Fatalf("bob's INBOX has %d messages after LMTP delivery, want 1", n)
	}
}

// lmtpDeliver speaks just enough LMTP (RFC 2033) to deliver one message.
func lmtpDeliver(t *testing.T, addr, rcpt string, raw []byte) {
	t.Helper()
	conn, err := textproto.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	step := func(code int, format string, args ...any) {
		t.Helper()
		if format != "" {
			if _, err := conn.Cmd(format, args...); err != nil {
				t.Fatal(err)
			}
		}
		if _, msg, err := conn.ReadResponse(code); err != nil {
			t.Fatalf("lmtp %q: %v %s", format, err, msg)
		}
	}
	step(220, "")
	step(250, "LHLO testenv")
	step(250, "MAIL FROM:<sender@example.com>")
	step(250, "RCPT TO:<%s>", rcpt)
	step(354, "DATA")
	w := conn.DotWriter()
	if _, err := w.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	step(250, "") // one reply per recipient
}

func TestDovecotRestartKeepsMailAndPorts(t *testing.T) {
	t.Parallel()
	d := NewT(t, DovecotOptions{Users: testUsers()})
	raw := testMessage("before restart")
	uid, err := d.Append(alice, alicePW, "", raw)
	if err != nil {
		t.Fatal(err)
	}
	old := mustClient(t, d, alice, alicePW)
	validity := mustSelect(t, old, "INBOX").UIDValidity
	addrs := [3]string{d.IMAPAddr, d.IMAPSAddr, d.LMTPAddr}

	start := time.Now()
	if err := d.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Restart took %v", time.Since(start))

	if now := [3]string{d.IMAPAddr, d.IMAPSAddr, d.LMTPAddr}; now != addrs {
		t.Fatalf("addresses changed on restart: %v -> %v", addrs, now)
	}
	// Reconnect tests rely on clients of the old server being disconnected.
	select {
	case <-old.Closed():
	case <-time.After(5 * time.Second):
		t.Fatal("connection to the stopped server was not closed")
	}
	c := mustClient(t, d, alice, alicePW)
	if v := mustSelect(t, c, "INBOX").UIDValidity; v != validity {
		t.Fatalf("UIDVALIDITY changed on restart: %d -> %d", validity, v)
	}
	if got := fetchBody(t, c, "INBOX", uid); !bytes.Equal(got, raw) {
		t.Fatalf("after restart uid %d body = %q, want %q", uid, got, raw)
	}
}

func TestDovecotDeliverFileWhileStopped(t *testing.T) {
	t.Parallel()
	d := NewT(t, DovecotOptions{Users: testUsers()})
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	if d.Running() || len(d.PIDs()) != 0 {
		t.Fatalf("after Stop: running=%v pids=%v", d.Running(), d.PIDs())
	}
	if c, err := net.DialTimeout("tcp", d.IMAPAddr, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after Stop", d.IMAPAddr)
	}

	// alice never logged in: DeliverFile creates her home and Maildir.
	inbox, sub := testMessage("while down"), testMessage("while down in a folder")
	path, err := d.DeliverFile(alice, "INBOX", inbox)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.DeliverFile(alice, "Projects/Q3", sub); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if uid := st.Sys().(*syscall.Stat_t).Uid; int(uid) != d.owner.uid {
			t.Fatalf("delivered file owned by uid %d, want the mail user %d", uid, d.owner.uid)
		}
	}

	if err := d.Restart(); err != nil {
		t.Fatal(err)
	}
	c := mustClient(t, d, alice, alicePW)
	for folder, want := range map[string][]byte{"INBOX": inbox, "Projects/Q3": sub} {
		if n := mustSelect(t, c, folder).NumMessages; n != 1 {
			t.Fatalf("%s has %d messages, want 1", folder, n)
		}
		if got := fetchBody(t, c, folder, 1); !bytes.Equal(got, want) {
			t.Fatalf("%s body = %q, want %q", folder, got, want)
		}
	}
	// Folder names DeliverFile cannot map are refused rather than misplaced.
	for _, bad := range []string{"a.b", "Entw&APw-rfe", "Ünicode", "a//b"} {
		if _, err := d.DeliverFile(alice, bad, sub); err == nil {
			t.Errorf("DeliverFile to %q succeeded", bad)
		}
	}
	if _, err := d.DeliverFile("../escape", "INBOX", sub); err == nil {
		t.Error("DeliverFile for user ../escape succeeded")
	}
}

// TestDovecotHibernateIdle checks the Hibernate profile: an IDLE connection that moved to
// imap-hibernate is woken by a new message well under the ~500 ms notify delay of a
// normal imap process, and DeliverFile into a running server wakes IDLE too.
func TestDovecotHibernateIdle(t *testing.T) {
	t.Parallel()
	d := NewT(t, DovecotOptions{Users: testUsers(), Hibernate: true})
	exists := make(chan uint32, 16)
	c, err := d.ClientWithOptions(alice, alicePW, &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(m *imapclient.UnilateralDataMailbox) {
				if m.NumMessages != nil {
					exists <- *m.NumMessages
				}
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mustSelect(t, c, "INBOX")
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	waitHibernated(t, d)

	start := time.Now()
	if _, err := d.Append(alice, alicePW, "", testMessage("wake up")); err != nil {
		t.Fatal(err)
	}
	waitExists(t, exists, 1)
	latency := time.Since(start)
	t.Logf("APPEND -> EXISTS on a hibernated IDLE connection: %v", latency)
	if latency > 400*time.Millisecond {
		t.Errorf("EXISTS after %v: hibernation did not take effect (a normal imap process needs ~500 ms)", latency)
	}

	if _, err := d.DeliverFile(alice, "INBOX", testMessage("dropped in")); err != nil {
		t.Fatal(err)
	}
	waitExists(t, exists, 2)
}

// waitHibernated polls until the IDLE connection moved to imap-hibernate (after
// imap_hibernate_timeout = 2s); Dovecot offers no notification for it.
func waitHibernated(t *testing.T, d *Dovecot) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for d.Hibernated() < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("connection did not hibernate; processes %v", instanceProcs(d.Dir, d.instance))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitExists(t *testing.T, exists <-chan uint32, want uint32) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case n := <-exists:
			if n >= want {
				return
			}
		case <-timeout:
			t.Fatalf("no EXISTS >= %d within 5 s", want)
		}
	}
}

func TestDovecotParallelInstances(t *testing.T) {
	t.Parallel()
	var wg sync.WaitGroup
	ds := make([]*Dovecot, 2)
	errs := make([]error, 2)
	for i := range ds {
		wg.Go(func() {
			dir := t.TempDir()
			if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
				errs[i] = err
				return
			}
			ds[i], errs[i] = StartDovecot(DovecotOptions{Dir: dir, Users: testUsers(), Logf: t.Logf})
		})
	}
	wg.Wait()
	for i, d := range ds {
		if d != nil {
			t.Cleanup(func() {
				if err := d.Stop(); err != nil {
					t.Error(err)
				}
			})
		}
		if errs[i] != nil {
			t.Fatalf("instance %d: %v", i, errs[i])
		}
	}
	a, b := ds[0], ds[1]
	if a.IMAPAddr == b.IMAPAddr || a.Dir == b.Dir || bytes.Equal(a.CertPEM, b.CertPEM) {
		t.Fatalf("instances share state: %s %s", a.IMAPAddr, b.IMAPAddr)
	}
	if _, err := a.Append(alice, alicePW, "", testMessage("only in a")); err != nil {
		t.Fatal(err)
	}
	if n := mustSelect(t, mustClient(t, b, alice, alicePW), "INBOX").NumMessages; n != 0 {
		t.Fatalf("instance b sees %d messages appended to a", n)
	}
	if n := mustSelect(t, mustClient(t, a, alice, alicePW), "INBOX").NumMessages; n != 1 {
		t.Fatalf("instance a has %d messages, want 1", n)
	}
}

func TestDovecotAnyPassword(t *testing.T) {
	t.Parallel()
	d := NewT(t, DovecotOptions{AnyPassword: "secret", Scale: true})
	for i := range 3 {
		user := fmt.Sprintf("u%d@example.com", i)
		if _, err := d.Append(user, "secret", "", testMessage(user)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStartDovecotErrors(t *testing.T) {
	t.Parallel()
	if _, err := StartDovecot(DovecotOptions{Users: testUsers()}); err == nil {
		t.Error("no Dir: want error")
	}
	if _, err := StartDovecot(DovecotOptions{Dir: t.TempDir()}); err == nil {
		t.Error("no users: want error")
	}
	if _, err := StartDovecot(DovecotOptions{Dir: t.TempDir(), Users: map[string]string{"a:b": "x"}}); err == nil {
		t.Error("user with ':': want error")
	}
	if _, err := StartDovecot(DovecotOptions{Dir: t.TempDir(), Users: testUsers(), Binary: "/nonexistent/dovecot"}); !errors.Is(err, ErrNoDovecot) {
		t.Errorf("missing binary: err = %v, want ErrNoDovecot", err)
	}

	// A config Dovecot rejects fails the start with the log in the error, and leaves
	// nothing running.
	dir := t.TempDir()
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := StartDovecot(DovecotOptions{Dir: dir, Users: testUsers(), ExtraConf: "no_such_setting = 1"})
	if err == nil || !strings.Contains(err.Error(), "no_such_setting") {
		t.Fatalf("bad config: err = %v, want the log naming the setting", err)
	}
	if pids := pidsOf(instanceProcs(dir, "")); len(pids) != 0 {
		t.Fatalf("processes left after failed start: %v", pids)
	}
}
