// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"bytes"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// carol has no domain part: SASL looks her up in the realm of the servername.
const (
	carol   = "carol"
	carolPW = "carol pw ü"
)

func cyrusUsers() map[string]string {
	u := testUsers()
	u[carol] = carolPW
	return u
}

func cyrusClient(t *testing.T, c *Cyrus, user, pw string, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	cl, err := LoginAt(c.IMAPAddr, nil, user, pw, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// listNames returns the LIST "" "*" names (decoded from modified UTF-7 by go-imap) and
// the hierarchy delimiter the server reported.
func listNames(t *testing.T, c *imapclient.Client) ([]string, rune) {
	t.Helper()
	data, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatalf("LIST: %v", err)
	}
	var names []string
	var delim rune
	for _, d := range data {
		names = append(names, d.Mailbox)
		delim = d.Delim
	}
	return names, delim
}

func TestCyrusAppendFetchFolders(t *testing.T) {
	t.Parallel()
	c := NewCyrusT(t, CyrusOptions{Users: cyrusUsers()})
	if c.Separator != "." || c.FolderName() != "INBOX" || c.FolderName("a", "b") != "INBOX.a.b" {
		t.Fatalf("default namespace: Separator %q, FolderName() %q, FolderName(a, b) %q", c.Separator, c.FolderName(), c.FolderName("a", "b"))
	}

	raw := testMessage("hello cyrus")
	uid, err := c.Append(alice, alicePW, "", raw)
	if err != nil {
		t.Fatal(err)
	}
	cl := cyrusClient(t, c, alice, alicePW, nil)
	if got := fetchBody(t, cl, "INBOX", uid); !bytes.Equal(got, raw) {
		t.Fatalf("INBOX uid %d body = %q, want %q", uid, got, raw)
	}

	// A non-ASCII folder: go-imap encodes the name in modified UTF-7 on the wire.
	folder := c.FolderName("Prüfung ✓", "Ünter")
	if err := c.CreateFolder(alice, alicePW, folder); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateFolder(alice, alicePW, folder); err != nil {
		t.Fatalf("CreateFolder on an existing folder: %v", err)
	}
	raw2 := testMessage("hello unicode folder")
	uid2, err := c.Append(alice, alicePW, folder, raw2)
	if err != nil {
		t.Fatal(err)
	}
	if got := fetchBody(t, cl, folder, uid2); !bytes.Equal(got, raw2) {
		t.Fatalf("%s uid %d body = %q, want %q", folder, uid2, got, raw2)
	}
	names, delim := listNames(t, cl)
	if delim != '.' || !slices.Contains(names, folder) || !slices.Contains(names, c.FolderName("Prüfung ✓")) {
		t.Fatalf("LIST = %q (delimiter %q), want %q and its parent with '.'", names, delim, folder)
	}

	// Append creates a missing folder.
	if _, err := c.Append(alice, alicePW, c.FolderName("Archive"), raw); err != nil {
		t.Fatal(err)
	}

	// Mailboxes are per user (and exist before any append), passwords are checked.
	for user, pw := range map[string]string{bob: bobPW, carol: carolPW} {
		if n := mustSelect(t, cyrusClient(t, c, user, pw, nil), "INBOX").NumMessages; n != 0 {
			t.Fatalf("%s's INBOX has %d messages, want 0", user, n)
		}
	}
	if _, err := LoginAt(c.IMAPAddr, nil, alice, "wrong", nil); err == nil {
		t.Fatal("login with a wrong password succeeded")
	}

	// Implicit TLS, trusting only the instance's own certificate.
	tc, err := LoginAt(c.IMAPSAddr, c.TLSConfig(), bob, bobPW, nil)
	if err != nil {
		t.Fatalf("imaps: %v", err)
	}
	defer tc.Close()
	if _, err := tc.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	// STARTTLS on the plain port.
	sc, err := imapclient.DialStartTLS(c.IMAPAddr, &imapclient.Options{TLSConfig: c.TLSConfig()})
	if err != nil {
		t.Fatalf("starttls: %v", err)
	}
	defer sc.Close()
	if err := sc.Login(carol, carolPW).Wait(); err != nil {
		t.Fatalf("login after STARTTLS: %v", err)
	}

	// The syslog of imapd reaches Log (captured in the namespace mode only).
	if log := c.Log(); c.ns && (!strings.Contains(log, "User logged in") || !strings.Contains(log, "autocreateinbox")) {
		t.Fatalf("Log lacks imapd's login messages:\n%s", log)
	}
}

func TestCyrusAltNamespace(t *testing.T) {
	t.Parallel()
	c := NewCyrusT(t, CyrusOptions{Users: map[string]string{"dora.lee@example.org": "dorapw"}, AltNamespace: true})
	if c.Separator != "/" || c.FolderName("Projekte", "Ärger") != "Projekte/Ärger" {
		t.Fatalf("altnamespace: Separator %q, FolderName %q", c.Separator, c.FolderName("Projekte", "Ärger"))
	}
	folder := c.FolderName("Projekte", "Ärger")
	raw := testMessage("alt namespace")
	uid, err := c.Append("dora.lee@example.org", "dorapw", folder, raw)
	if err != nil {
		t.Fatal(err)
	}
	cl := cyrusClient(t, c, "dora.lee@example.org", "dorapw", nil)
	names, delim := listNames(t, cl)
	if delim != '/' || !slices.Contains(names, "INBOX") || !slices.Contains(names, folder) {
		t.Fatalf("LIST = %q (delimiter %q), want INBOX and %q with '/'", names, delim, folder)
	}
	if got := fetchBody(t, cl, folder, uid); !bytes.Equal(got, raw) {
		t.Fatalf("%s uid %d body = %q, want %q", folder, uid, got, raw)
	}
}

// TestCyrusNoIdled checks that NoIdled really runs Cyrus without idled.
func TestCyrusNoIdled(t *testing.T) {
	t.Parallel()
	count := func(c *Cyrus) (n int) {
		for _, pid := range c.PIDs() {
			if strings.HasSuffix(argv0(pid), "/idled") {
				n++
			}
		}
		return n
	}
	with := NewCyrusT(t, CyrusOptions{Users: cyrusUsers()})
	without := NewCyrusT(t, CyrusOptions{Users: cyrusUsers(), NoIdled: true})
	if n, m := count(with), count(without); n != 1 || m != 0 {
		t.Fatalf("idled processes: %d by default, %d with NoIdled; want 1 and 0", n, m)
	}
	start := time.Now()
	if _, err := LoginAt(without.IMAPAddr, nil, alice, "wrong", nil); err == nil {
		t.Fatal("login with a wrong password succeeded")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("failed LOGIN took %v: failedloginpause is not 0", d)
	}
}

// TestCyrusIdlePush proves that idled runs: without it Cyrus polls every 60 s in IDLE.
func TestCyrusIdlePush(t *testing.T) {
	t.Parallel()
	c := NewCyrusT(t, CyrusOptions{Users: cyrusUsers()})
	exists := make(chan uint32, 16)
	cl := cyrusClient(t, c, alice, alicePW, &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(m *imapclient.UnilateralDataMailbox) {
				if m.NumMessages != nil {
					exists <- *m.NumMessages
				}
			},
		},
	})
	mustSelect(t, cl, "INBOX")
	idle, err := cl.Idle()
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	time.Sleep(100 * time.Millisecond) // let imapd register with idled

	for i := uint32(1); i <= 2; i++ {
		start := time.Now()
		if _, err := c.Append(alice, alicePW, "", testMessage("push "+string(rune('0'+i)))); err != nil {
			t.Fatal(err)
		}
		timeout := time.After(2 * time.Second)
	wait:
		for {
			select {
			case n := <-exists:
				if n >= i {
					break wait
				}
			case <-timeout:
				t.Fatalf("no EXISTS %d within 2 s of the APPEND: is idled running?", i)
			}
		}
		t.Logf("APPEND -> EXISTS %d in IDLE: %v", i, time.Since(start).Round(time.Millisecond))
	}
}

func TestCyrusRestartAndStop(t *testing.T) {
	t.Parallel()
	c := NewCyrusT(t, CyrusOptions{Users: cyrusUsers()})
	raw := testMessage("before restart")
	uid, err := c.Append(bob, bobPW, "", raw)
	if err != nil {
		t.Fatal(err)
	}
	old := cyrusClient(t, c, bob, bobPW, nil)
	validity := mustSelect(t, old, "INBOX").UIDValidity
	addrs := [2]string{c.IMAPAddr, c.IMAPSAddr}
	if pids := c.PIDs(); len(pids) < 3 { // init shell or master, master's children
		t.Fatalf("running instance has processes %v, want the master and its children", pids)
	}

	start := time.Now()
	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Restart took %v", time.Since(start).Round(time.Millisecond))
	if now := [2]string{c.IMAPAddr, c.IMAPSAddr}; now != addrs {
		t.Fatalf("addresses changed on restart: %v -> %v", addrs, now)
	}
	select {
	case <-old.Closed():
	case <-time.After(2 * time.Second):
		t.Fatal("connection to the stopped server was not closed")
	}
	cl := cyrusClient(t, c, bob, bobPW, nil)
	if v := mustSelect(t, cl, "INBOX").UIDValidity; v != validity {
		t.Fatalf("UIDVALIDITY changed on restart: %d -> %d", validity, v)
	}
	if got := fetchBody(t, cl, "INBOX", uid); !bytes.Equal(got, raw) {
		t.Fatalf("after restart uid %d body = %q, want %q", uid, got, raw)
	}

	// Stop with a client connected (the hard case for most servers) is quick and
	// complete.
	if _, err := cl.Idle(); err != nil {
		t.Fatal(err)
	}
	pids := c.PIDs()
	start = time.Now()
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("Stop took %v", took.Round(time.Millisecond))
	if took > 2*time.Second {
		t.Errorf("Stop took %v, want < 2 s", took)
	}
	if c.Running() {
		t.Error("Running after Stop")
	}
	for _, pid := range pids {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil && !isZombie(pid) {
			t.Errorf("process %d (%s) of the instance survived Stop", pid, argv0(pid))
		}
	}
	for _, a := range addrs {
		if conn, err := net.DialTimeout("tcp", a, 200*time.Millisecond); err == nil {
			conn.Close()
			t.Errorf("%s still accepts connections after Stop", a)
		}
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if c.ns && !strings.Contains(c.Log(), "All children have exited") {
		t.Errorf("master did not shut down cleanly:\n%s", c.Log())
	}
}

func TestStartCyrusErrors(t *testing.T) {
	t.Parallel()
	if _, err := StartCyrus(CyrusOptions{Users: cyrusUsers()}); err == nil {
		t.Error("StartCyrus without Dir succeeded")
	}
	if _, err := StartCyrus(CyrusOptions{Dir: t.TempDir()}); err == nil {
		t.Error("StartCyrus without Users succeeded")
	}
	if _, err := StartCyrus(CyrusOptions{Dir: t.TempDir(), Users: cyrusUsers(), Root: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "install-cyrus.sh") {
		t.Errorf("StartCyrus with an empty Root: %v, want the install hint", err)
	}
	dir := t.TempDir()
	_ = os.Chmod(dir, 0o755)
	if _, err := StartCyrus(CyrusOptions{Dir: dir, Users: map[string]string{"john.doe": "x"}}); err == nil {
		t.Error(`StartCyrus with user "john.doe" in the default namespace succeeded`)
	}
}
