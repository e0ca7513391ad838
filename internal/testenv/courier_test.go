// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Observed with Courier-IMAP 5.0.13 (Debian 12, courier-authlib 0.71.4), recorded here
// because the service must cope with them:
//   - SELECT/EXAMINE send FLAGS, PERMANENTFLAGS, EXISTS, RECENT, UIDVALIDITY and MYRIGHTS
//     but never "* OK [UIDNEXT n]"; STATUS (UIDNEXT) answers correctly.
//   - UIDVALIDITY lives in the folder's courierimapuiddb, which only a read-write SELECT,
//     CREATE or a stored message writes. Until then (a fresh user's INBOX that clients
//     only EXAMINE or STATUS) UIDVALIDITY is derived from the clock: it changes every
//     second, i.e. practically in every session (two sessions in the same second agree).
//     Once written, it survives sessions and restarts.
//   - CREATE of an existing folder answers "NO Cannot create this folder." without
//     [ALREADYEXISTS]; CREATE does not subscribe.
//   - LIST returns INBOX between its children, not first; a parent that only exists
//     because of a child ("INBOX.Ärger" of "INBOX.Ärger.Unterordner") is listed too.
//   - Folder names are kept in UTF-8 on disk (Maildir/.Ärger), modified UTF-7 on the wire.
//   - Before STARTTLS only LOGIN is offered; AUTH=PLAIN appears after it.
//   - A failed LOGIN is answered after 5 s.
//   - With IMAP_ENHANCEDIDLE=1, IDLE reported appends after 60-1,100 ms (gamin); with
//     Debian's default 0, nothing within seconds (it re-scans every 60 s).
//   - imaplogin switches to the courier user before it runs couriertls for STARTTLS:
//     certificate and key must be readable by courier.
//   - couriertcpd and authdaemond signal their whole process group when they stop: an
//     instance must run in its own session, or Stop kills the test binary and go test.

const (
	courierUser = "alice"
	courierPW   = "alice-pw"
	courierBob  = "bob"
	courierBPW  = "bob-pw"
)

func courierUsers() map[string]string {
	return map[string]string{courierUser: courierPW, courierBob: courierBPW}
}

func courierMsg(subject string) []byte {
	return []byte("From: bob@example.com\r\nTo: alice@example.com\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@courier.example>\r\n" +
		"Date: Mon, 01 Dec 2025 10:00:00 +0000\r\n\r\nbody of " + subject + "\r\n")
}

func courierClient(t *testing.T, c *Courier, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	cl, err := c.ClientWithOptions(courierUser, courierPW, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func courierStatus(t *testing.T, cl *imapclient.Client, folder string) *imap.StatusData {
	t.Helper()
	st, err := cl.Status(folder, &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true}).Wait()
	if err != nil {
		t.Fatalf("status %s: %v", folder, err)
	}
	return st
}

func courierUIDValidity(t *testing.T, c *Courier, folder string) uint32 {
	t.Helper()
	cl := courierClient(t, c, nil)
	defer closeClient(cl)
	return courierStatus(t, cl, folder).UIDValidity
}

// courierSubjects fetches the subjects of all messages in folder in UID order.
func courierSubjects(t *testing.T, cl *imapclient.Client, folder string) (uids []uint32, subjects []string) {
	t.Helper()
	if _, err := cl.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatalf("examine %s: %v", folder, err)
	}
	all := imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}
	got, err := cl.Fetch(all, &imap.FetchOptions{UID: true, Envelope: true, Flags: true}).Collect()
	if err != nil {
		t.Fatalf("fetch %s: %v", folder, err)
	}
	slices.SortFunc(got, func(a, b *imapclient.FetchMessageBuffer) int { return int(a.UID) - int(b.UID) })
	for _, m := range got {
		uids = append(uids, uint32(m.UID))
		subjects = append(subjects, m.Envelope.Subject)
		if slices.Contains(m.Flags, imap.FlagSeen) {
			t.Errorf("%s UID %d is \\Seen", folder, m.UID)
		}
	}
	return uids, subjects
}

func TestCourierAppendFoldersAndQuirks(t *testing.T) {
	t0 := time.Now()
	users := courierUsers()
	users["fresh"] = "fresh-pw"
	c := NewCourierT(t, CourierOptions{Users: users})
	t.Logf("NewCourierT took %v", time.Since(t0).Round(time.Millisecond))
	if c.Separator != "." || c.FolderName("Ärger", "Unter") != "INBOX.Ärger.Unter" ||
		c.FolderName() != "INBOX" || c.FolderName("INBOX", "x") != "INBOX.x" {
		t.Fatalf("Separator %q, FolderName %q", c.Separator, c.FolderName("Ärger", "Unter"))
	}
	// Courier answers a failed LOGIN after 5 s: check it alongside the rest.
	badLogin := make(chan error, 1)
	go func() {
		t0 := time.Now()
		cl, err := LoginAt(c.IMAPAddr, nil, courierUser, "wrong", nil)
		if err == nil {
			cl.Close()
			badLogin <- errors.New("login with a wrong password succeeded")
			return
		}
		t.Logf("failed LOGIN answered after %v: %v", time.Since(t0).Round(time.Millisecond), err)
		badLogin <- nil
	}()

	// The clock-based UIDVALIDITY of a folder without courierimapuiddb.
	examine := func(user string) uint32 {
		t.Helper()
		cl, err := c.Client(user, users[user])
		if err != nil {
			t.Fatal(err)
		}
		defer closeClient(cl)
		sel, err := cl.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			t.Fatal(err)
		}
		return sel.UIDValidity
	}
	fresh1 := examine("fresh")

	uid, err := c.Append(courierUser, courierPW, "", courierMsg("inbox one"))
	if err != nil || uid != 1 {
		t.Fatalf("Append INBOX = %d, %v; want UID 1", uid, err)
	}
	folder := c.FolderName("Ärger", "Unterordner")
	if err := c.CreateFolder(courierUser, courierPW, folder); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateFolder(courierUser, courierPW, folder); err != nil {
		t.Fatalf("CreateFolder of an existing folder: %v", err)
	}
	for i, want := range []uint32{1, 2} {
		uid, err := c.Append(courierUser, courierPW, folder, courierMsg("ärger "+strconv.Itoa(i)))
		if err != nil || uid != want {
			t.Fatalf("Append %s #%d = %d, %v; want UID %d", folder, i, uid, err, want)
		}
	}
	// UTF-8 on disk, modified UTF-7 on the wire (go-imap decodes it).
	if _, err := os.Stat(filepath.Join(c.Dir, "mail", courierUser, "Maildir", ".Ärger.Unterordner", "cur")); err != nil {
		t.Errorf("folder not stored as UTF-8 Maildir++ directory: %v", err)
	}

	cl := courierClient(t, c, nil)
	list, err := cl.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range list {
		names = append(names, m.Mailbox)
		if m.Delim != '.' {
			t.Errorf("LIST %s delimiter %q", m.Mailbox, m.Delim)
		}
	}
	if !slices.Contains(names, folder) || !slices.Contains(names, "INBOX") {
		t.Errorf("LIST = %q, want INBOX and %q", names, folder)
	}
	t.Logf("LIST order: %q", names)
	subs, err := cl.List("", "*", &imap.ListOptions{SelectSubscribed: true}).Collect()
	if err != nil || !slices.ContainsFunc(subs, func(m *imap.ListData) bool { return m.Mailbox == folder }) {
		t.Errorf("%s not subscribed: %v %v", folder, subs, err)
	}

	// EXAMINE: EXISTS and UIDVALIDITY, but no UIDNEXT.
	sel, err := cl.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 1 || sel.UIDValidity == 0 {
		t.Errorf("EXAMINE INBOX: EXISTS %d UIDVALIDITY %d", sel.NumMessages, sel.UIDValidity)
	}
	if sel.UIDNext != 0 {
		t.Errorf("EXAMINE INBOX sent UIDNEXT %d; the known Courier quirk is gone", sel.UIDNext)
	}
	// Courier has no UNSELECT; CLOSE on a read-only mailbox expunges nothing.
	if err := cl.UnselectAndExpunge().Wait(); err != nil {
		t.Fatal(err)
	}
	// STATUS (UIDNEXT) works.
	st := courierStatus(t, cl, "INBOX")
	if st.UIDNext != 2 || st.UIDValidity != sel.UIDValidity || st.NumMessages == nil || *st.NumMessages != 1 {
		t.Errorf("STATUS INBOX = UIDNEXT %d UIDVALIDITY %d (EXAMINE said %d)", st.UIDNext, st.UIDValidity, sel.UIDValidity)
	}
	if st2 := courierStatus(t, cl, folder); st2.UIDNext != 3 || *st2.NumMessages != 2 {
		t.Errorf("STATUS %s = UIDNEXT %d MESSAGES %d", folder, st2.UIDNext, *st2.NumMessages)
	}
	_, subjects := courierSubjects(t, cl, folder)
	if !slices.Equal(subjects, []string{"ärger 0", "ärger 1"}) {
		t.Errorf("%s subjects %q", folder, subjects)
	}
	if err := cl.Logout().Wait(); err != nil {
		t.Error(err)
	}

	// Another second on, the never-selected INBOX has another UIDVALIDITY; alice's
	// (which holds mail) has not.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 50*time.Millisecond)))
	fresh2 := examine("fresh")
	t.Logf("never-selected empty INBOX: UIDVALIDITY %d, a session later %d", fresh1, fresh2)
	if fresh1 == fresh2 {
		t.Errorf("UIDVALIDITY of a never-selected empty INBOX stayed %d; the known Courier quirk is gone", fresh1)
	}
	if v := courierUIDValidity(t, c, "INBOX"); v != sel.UIDValidity {
		t.Errorf("UIDVALIDITY of INBOX with mail changed across sessions: %d then %d", sel.UIDValidity, v)
	}
	// A read-write SELECT fixes it.
	fc, err := c.Client("fresh", users["fresh"])
	if err != nil {
		t.Fatal(err)
	}
	fixed, err := fc.Select("INBOX", nil).Wait()
	closeClient(fc)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 50*time.Millisecond)))
	if v := examine("fresh"); v != fixed.UIDValidity {
		t.Errorf("UIDVALIDITY after a read-write SELECT changed: %d then %d", fixed.UIDValidity, v)
	}

	bob, err := c.Client(courierBob, courierBPW)
	if err != nil {
		t.Fatal(err)
	}
	defer closeClient(bob)
	if st := courierStatus(t, bob, "INBOX"); *st.NumMessages != 0 {
		t.Errorf("bob's INBOX has %d messages", *st.NumMessages)
	}
	if !strings.Contains(c.Log(), "LOGIN, user="+courierUser) {
		t.Errorf("log lacks the login:\n%s", c.Log())
	}
	if err := <-badLogin; err != nil {
		t.Error(err)
	}
}

func TestCourierTLS(t *testing.T) {
	c := NewCourierT(t, CourierOptions{Users: courierUsers()})
	// Implicit TLS through couriertls.
	cl, err := LoginAt(c.IMAPSAddr, c.TLSConfig(), courierUser, courierPW, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !cl.Caps().Has(imap.AuthCap("PLAIN")) {
		t.Errorf("IMAPS capabilities %v lack AUTH=PLAIN", cl.Caps())
	}
	closeClient(cl)
	// STARTTLS on the plain port: only LOGIN before, AUTH=PLAIN after.
	plain, err := imapclient.DialInsecure(c.IMAPAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	caps, err := plain.Capability().Wait()
	plain.Close()
	if err != nil || !caps.Has(imap.CapStartTLS) || caps.Has(imap.AuthCap("PLAIN")) {
		t.Errorf("plain capabilities %v, %v: want STARTTLS and no AUTH=PLAIN", caps, err)
	}
	st, err := imapclient.DialStartTLS(c.IMAPAddr, &imapclient.Options{TLSConfig: c.TLSConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Login(courierUser, courierPW).Wait(); err != nil {
		t.Fatalf("login after STARTTLS: %v", err)
	}
	if _, err := AppendTo(c.IMAPSAddr, c.TLSConfig(), courierUser, courierPW, c.FolderName("tls"), courierMsg("via imaps")); err != nil {
		t.Fatal(err)
	}
}

// courierIdle selects folder on a new connection, enters IDLE and returns a channel of
// EXISTS counts.
func courierIdle(t *testing.T, c *Courier, folder string) <-chan uint32 {
	t.Helper()
	exists := make(chan uint32, 16)
	cl := courierClient(t, c, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				exists <- *d.NumMessages
			}
		},
	}})
	if _, err := cl.Select(folder, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := cl.Idle()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = idle.Close() })
	return exists
}

func courierWaitExists(t *testing.T, exists <-chan uint32, want uint32, within time.Duration) time.Duration {
	t.Helper()
	t0 := time.Now()
	deadline := time.After(within)
	for {
		select {
		case n := <-exists:
			if n >= want {
				return time.Since(t0)
			}
		case <-deadline:
			t.Fatalf("no EXISTS %d within %v", want, within)
		}
	}
}

func TestCourierIdle(t *testing.T) {
	t.Run("enhanced", func(t *testing.T) {
		t.Parallel()
		c := NewCourierT(t, CourierOptions{Users: courierUsers(), EnhancedIdle: true})
		if _, err := c.Append(courierUser, courierPW, "INBOX", courierMsg("before idle")); err != nil {
			t.Fatal(err)
		}
		exists := courierIdle(t, c, "INBOX")
		for i := range 3 {
			t0 := time.Now()
			if _, err := c.Append(courierUser, courierPW, "INBOX", courierMsg(fmt.Sprintf("pushed %d", i))); err != nil {
				t.Fatal(err)
			}
			courierWaitExists(t, exists, uint32(2+i), 3*time.Second)
			t.Logf("IDLE EXISTS %d arrived %v after the append started", 2+i, time.Since(t0).Round(time.Millisecond))
		}
		// A seeded (non-IMAP) message is noticed too.
		t0 := time.Now()
		if err := c.Seed(courierUser, "INBOX", [][]byte{courierMsg("seeded during idle")}); err != nil {
			t.Fatal(err)
		}
		courierWaitExists(t, exists, 5, 3*time.Second)
		t.Logf("IDLE EXISTS after Seed: %v", time.Since(t0).Round(time.Millisecond))
	})
	t.Run("debian-default", func(t *testing.T) {
		t.Parallel()
		c := NewCourierT(t, CourierOptions{Users: courierUsers()})
		if _, err := c.Append(courierUser, courierPW, "INBOX", courierMsg("before idle")); err != nil {
			t.Fatal(err)
		}
		exists := courierIdle(t, c, "INBOX")
		if _, err := c.Append(courierUser, courierPW, "INBOX", courierMsg("not pushed")); err != nil {
			t.Fatal(err)
		}
		select {
		case n := <-exists:
			t.Errorf("EXISTS %d without IMAP_ENHANCEDIDLE: Courier no longer polls every 60 s", n)
		case <-time.After(2 * time.Second):
		}
	})
}

func TestCourierSeed(t *testing.T) {
	c := NewCourierT(t, CourierOptions{Users: courierUsers()})
	var msgs [][]byte
	for i := range 27 {
		msgs = append(msgs, courierMsg(fmt.Sprintf("old %02d", i)))
	}
	t0 := time.Now()
	if err := c.Seed(courierUser, "", msgs); err != nil {
		t.Fatal(err)
	}
	folder := c.FolderName("Archiv", "2025")
	if err := c.Seed(courierUser, folder, msgs[:3]); err != nil {
		t.Fatal(err)
	}
	t.Logf("Seed of 30 messages took %v", time.Since(t0).Round(time.Microsecond))
	cl := courierClient(t, c, nil)
	sel, err := cl.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 27 {
		t.Fatalf("SELECT INBOX after Seed: EXISTS %d, want 27", sel.NumMessages)
	}
	uids, subjects := courierSubjects(t, cl, "INBOX")
	for i := range 27 {
		if i >= len(uids) || uids[i] != uint32(i+1) || subjects[i] != fmt.Sprintf("old %02d", i) {
			t.Fatalf("seeded messages by UID: %v %q", uids, subjects)
		}
	}
	// The seeded folder exists for IMAP and holds its three messages.
	if st := courierStatus(t, cl, folder); *st.NumMessages != 3 || st.UIDNext != 4 {
		t.Errorf("STATUS %s: MESSAGES %d UIDNEXT %d", folder, *st.NumMessages, st.UIDNext)
	}
	if err := c.Seed("mallory", "", msgs[:1]); err == nil {
		t.Error("Seed for an unknown user succeeded")
	}
	if err := c.Seed(courierUser, "INBOX..x", msgs[:1]); err == nil {
		t.Error("Seed into an invalid folder name succeeded")
	}
}

func TestCourierRestartAndStop(t *testing.T) {
	c := NewCourierT(t, CourierOptions{Users: courierUsers(), EnhancedIdle: true})
	imapAddr, imapsAddr := c.IMAPAddr, c.IMAPSAddr
	uid, err := c.Append(courierUser, courierPW, "", courierMsg("survives restart"))
	if err != nil {
		t.Fatal(err)
	}
	validity := courierUIDValidity(t, c, "INBOX")
	// A connected client in IDLE (imapd + gam_server) must not keep anything alive.
	_ = courierIdle(t, c, "INBOX")

	t0 := time.Now()
	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Restart took %v", time.Since(t0).Round(time.Millisecond))
	if c.IMAPAddr != imapAddr || c.IMAPSAddr != imapsAddr || !c.Running() {
		t.Fatalf("after Restart: %s %s running=%v", c.IMAPAddr, c.IMAPSAddr, c.Running())
	}
	if v := courierUIDValidity(t, c, "INBOX"); v != validity {
		t.Errorf("UIDVALIDITY changed across Restart: %d then %d", validity, v)
	}
	cl := courierClient(t, c, nil)
	uids, subjects := courierSubjects(t, cl, "INBOX")
	if !slices.Equal(uids, []uint32{uid}) || !slices.Equal(subjects, []string{"survives restart"}) {
		t.Errorf("after Restart INBOX has UIDs %v %q", uids, subjects)
	}
	exists := courierIdle(t, c, "INBOX")

	// Stop with connections open: every process of the namespace goes, the ports close.
	pids := c.PIDs()
	if len(pids) < 5 { // bash, authdaemond (1+5), 2 couriertcpd, imapd, ...
		t.Errorf("PIDs = %v, expected the whole instance", pids)
	}
	t.Logf("%d processes before Stop", len(pids))
	t0 = time.Now()
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	took := time.Since(t0)
	t.Logf("Stop took %v", took.Round(time.Millisecond))
	if took > 2*time.Second {
		t.Errorf("Stop took %v, want < 2 s", took)
	}
	if c.Running() || c.PIDs() != nil {
		t.Errorf("after Stop: running=%v PIDs %v", c.Running(), c.PIDs())
	}
	for _, pid := range pids {
		if !isZombie(pid) {
			t.Errorf("process %d (%s) survived Stop", pid, argv0(pid))
		}
	}
	for _, a := range []string{imapAddr, imapsAddr} {
		if portInUse(a) {
			t.Errorf("%s still accepts connections after Stop", a)
		}
	}
	select {
	case n := <-exists:
		t.Errorf("unexpected EXISTS %d", n)
	default:
	}
	if err := c.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	// Mail seeded while stopped is there after the next start.
	if err := c.Seed(courierUser, "", [][]byte{courierMsg("seeded while stopped")}); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	cl2 := courierClient(t, c, nil)
	if _, subjects := courierSubjects(t, cl2, "INBOX"); !slices.Equal(subjects, []string{"survives restart", "seeded while stopped"}) {
		t.Errorf("after Stop+Seed+Restart INBOX has %q", subjects)
	}
}

// TestCourierParallelInstances runs instances side by side: each has its own namespace,
// authdaemon socket and gam_server, so stopping one does not disturb the others' IDLE.
func TestCourierParallelInstances(t *testing.T) {
	const n = 3
	cs := make([]*Courier, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	t0 := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dir := t.TempDir()
			cs[i], errs[i] = StartCourier(CourierOptions{Dir: dir, Users: map[string]string{"u" + strconv.Itoa(i): "pw" + strconv.Itoa(i)}, EnhancedIdle: true})
		}()
	}
	wg.Wait()
	t.Logf("%d parallel starts took %v", n, time.Since(t0).Round(time.Millisecond))
	for i, c := range cs {
		if c != nil {
			t.Cleanup(func() { _ = c.Stop() })
		}
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
	}
	last := cs[n-1]
	exists := make(chan uint32, 16)
	cl, err := last.ClientWithOptions("u2", "pw2", &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				exists <- *d.NumMessages
			}
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := last.Append("u2", "pw2", "", courierMsg("first")); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := cl.Idle()
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	for i, c := range cs[:n-1] {
		if _, err := c.Append("u"+strconv.Itoa(i), "pw"+strconv.Itoa(i), "", courierMsg("x")); err != nil {
			t.Fatal(err)
		}
		if err := c.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := last.Append("u2", "pw2", "", courierMsg("after the others stopped")); err != nil {
		t.Fatal(err)
	}
	courierWaitExists(t, exists, 2, 3*time.Second)
	// Users are per instance: each log shows only its own.
	for i, c := range cs {
		for j := range n {
			if got := strings.Contains(c.Log(), "LOGIN, user=u"+strconv.Itoa(j)+","); got != (i == j) {
				t.Errorf("instance %d log mentions user u%d: %v", i, j, got)
			}
		}
	}
}

// TestCourierDevLog checks the namespace's private /dev/log: what a process inside
// sends to syslog lands in Log(), and the host's /dev is untouched.
func TestCourierDevLog(t *testing.T) {
	_, hostErr := os.Lstat("/dev/log")
	c := NewCourierT(t, CourierOptions{Users: courierUsers()})
	pids := c.PIDs()
	if len(pids) == 0 {
		t.Fatal("no processes")
	}
	out, err := exec.Command("nsenter", "-t", strconv.Itoa(pids[0]), "-m", "--",
		"logger", "-t", "testenv-probe", "hello from inside").CombinedOutput()
	if err != nil {
		t.Fatalf("nsenter logger: %v: %s", err, out)
	}
	deadline := time.Now().Add(2 * time.Second)
	for !strings.Contains(c.Log(), "testenv-probe: hello from inside") {
		if time.Now().After(deadline) {
			t.Fatalf("syslog message not in Log():\n%s", c.Log())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := os.Lstat("/dev/log"); (err == nil) != (hostErr == nil) {
		t.Errorf("host /dev/log changed: before %v, now %v", hostErr, err)
	}
	if _, err := os.Stat("/etc/courier/userdb"); err == nil {
		t.Error("the instance's userdb is visible in the host's /etc/courier")
	}
}

func TestStartCourierErrors(t *testing.T) {
	if _, err := StartCourier(CourierOptions{Users: courierUsers()}); err == nil {
		t.Error("no Dir: no error")
	}
	if _, err := StartCourier(CourierOptions{Dir: t.TempDir()}); err == nil {
		t.Error("no Users: no error")
	}
	if _, err := StartCourier(CourierOptions{Dir: t.TempDir(), Users: map[string]string{"a\tb": "x"}}); err == nil {
		t.Error("bad user name: no error")
	}
	// COURIER_ROOT pointing nowhere reports the install hint.
	t.Setenv("COURIER_ROOT", filepath.Join(t.TempDir(), "nowhere"))
	_, err := StartCourier(CourierOptions{Dir: t.TempDir(), Users: courierUsers()})
	if !errors.Is(err, ErrNoCourier) || !strings.Contains(err.Error(), "install-courier.sh") {
		t.Errorf("missing installation: %v", err)
	}
}
