// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/emaillistener/emaillistener/internal/config"
)

// histMsg is one message of the history corpus.
type histMsg struct {
	folder  string
	id      string
	sent    time.Time // Date header
	arrived time.Time // internal date
	flags   []imap.Flag
	uid     uint32 // assigned by the server (APPENDUID)
}

// seedHistory APPENDs n messages over three folders with varied dates, flags
// and keywords, over several connections at once (go-imap waits for the
// server's continuation before each literal, so one connection is slow), and
// returns them with the UIDs the server assigned.
func seedHistory(t *testing.T, e *env, user, pass string, n int) []histMsg {
	t.Helper()
	if err := e.dc.CreateFolder(user, pass, "Archive"); err != nil {
		t.Fatal(err)
	}
	if err := e.dc.CreateFolder(user, pass, "Sent"); err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	out := make([]histMsg, n)
	for i := range out {
		m := histMsg{folder: "INBOX", id: fmt.Sprintf("<h-%d@example.com>", i)}
		switch {
		case i%2 == 1:
			m.folder = "Archive"
		case i%5 == 2:
			m.folder = "Sent"
		}
		// Sent dates march forward ~1 h per message; arrival is up to 9 days
		// later, so SINCE and SENTSINCE select different sets.
		m.sent = base.Add(time.Duration(i) * 55 * time.Minute)
		m.arrived = m.sent.Add(time.Duration(i%10) * 24 * time.Hour)
		if i%10 == 3 {
			m.flags = append(m.flags, imap.FlagDraft)
		}
		if i%15 == 4 {
			m.flags = append(m.flags, imap.FlagDeleted)
		}
		if i%4 == 1 {
			m.flags = append(m.flags, imap.Flag("crm-synced"))
		}
		out[i] = m
	}
	// Written straight into the Maildir (flags in the file name, internal date
	// as mtime): APPENDing 5,000 messages costs Dovecot ~25 s here.
	for i := range out {
		m := &out[i]
		var b bytes.Buffer
		fmt.Fprintf(&b, "From: Sender %d <s%d@example.org>\r\nTo: alice@example.com\r\nSubject: hist %d\r\n", i%37, i%37, i)
		fmt.Fprintf(&b, "Date: %s\r\nMessage-ID: %s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhistory body %d\r\n",
			m.sent.Format(time.RFC1123Z), m.id, i)
		path, err := e.dc.DeliverFile(user, m.folder, b.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		flags := ""
		if has(m.flags, imap.FlagDraft) {
			flags += "D"
		}
		if has(m.flags, imap.FlagDeleted) {
			flags += "T"
		}
		if has(m.flags, "crm-synced") {
			flags += "a" // keyword 0 of dovecot-keywords
		}
		box := filepath.Dir(filepath.Dir(path))
		cur := filepath.Join(box, "cur", filepath.Base(path)+":2,"+flags)
		if err := os.Rename(path, cur); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(cur, m.arrived, m.arrived); err != nil {
			t.Fatal(err)
		}
		kw := filepath.Join(box, "dovecot-keywords")
		if _, err := os.Stat(kw); os.IsNotExist(err) {
			if err := os.WriteFile(kw, []byte("0 crm-synced\n"), 0o666); err != nil {
				t.Fatal(err)
			}
			if st, err := os.Stat(cur); err == nil {
				sys := st.Sys().(*syscall.Stat_t)
				_ = os.Chown(kw, int(sys.Uid), int(sys.Gid))
			}
		}
	}
	// Learn the UIDs Dovecot assigned.
	c, err := e.dc.Client(user, pass)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Logout().Wait(); c.Close() }()
	uids := map[string]uint32{}
	for _, f := range []string{"INBOX", "Archive", "Sent"} {
		if _, err := c.Select(f, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			t.Fatal(err)
		}
		msgs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Envelope: true}).Collect()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			uids["<"+m.Envelope.MessageID+">"] = uint32(m.UID)
		}
	}
	for i := range out {
		if out[i].uid = uids[out[i].id]; out[i].uid == 0 {
			t.Fatalf("message %s not found after seeding", out[i].id)
		}
	}
	return out
}

func has(flags []imap.Flag, f imap.Flag) bool {
	for _, x := range flags {
		if strings.EqualFold(string(x), string(f)) {
			return true
		}
	}
	return false
}

// TestSynchronizeHistory loads a 5,000-message, 3-folder mailbox with every
// filter form Creatio sends and checks the delivered Message-IDs are exactly the
// matching set, while the live subscription keeps delivering new mail.
func TestSynchronizeHistory(t *testing.T) {
	e := newEnv(t, nil)
	const user, pass = "alice@example.com", "alicepw"
	start := time.Now()
	msgs := seedHistory(t, e, user, pass, 5000)
	t.Logf("seeded %d messages in %v", len(msgs), time.Since(start))

	const id = "d15c0000-0000-4000-8000-00000000a11c"
	spec := mailboxSpec{ID: id, User: user, Password: pass}
	e.mustPost("/api/listeners/create", e.createBody(spec))
	e.waitState(id, "exists", 10*time.Second)

	day := func(s string) time.Time { d, _ := time.Parse("02-Jan-2006", s); return d }
	cases := []struct {
		filter string
		match  func(m histMsg) bool
	}{
		{"UNDRAFT UNDELETED SENTSINCE 01-Jul-2026", func(m histMsg) bool {
			return !has(m.flags, imap.FlagDraft) && !has(m.flags, imap.FlagDeleted) && !m.sent.Before(day("01-Jul-2026"))
		}},
		{"UNDRAFT UNDELETED SINCE 15-Aug-2026", func(m histMsg) bool {
			return !has(m.flags, imap.FlagDraft) && !has(m.flags, imap.FlagDeleted) && !m.arrived.Before(day("15-Aug-2026"))
		}},
		{"UNDRAFT UNDELETED UNKEYWORD crm-synced", func(m histMsg) bool {
			return !has(m.flags, imap.FlagDraft) && !has(m.flags, imap.FlagDeleted) && !has(m.flags, "crm-synced")
		}},
		{"UNDRAFT UNDELETED UNKEYWORD crm-synced SINCE 01-Sep-2026", func(m histMsg) bool {
			return !has(m.flags, imap.FlagDraft) && !has(m.flags, imap.FlagDeleted) && !has(m.flags, "crm-synced") &&
				!m.arrived.Before(day("01-Sep-2026"))
		}},
		{"UID 2000:*", func(m histMsg) bool { return m.uid >= 2000 }},
	}
	live := 0
	for _, c := range cases {
		t.Run(c.filter, func(t *testing.T) {
			mark := len(e.col.Requests("ProcessFullEmail"))
			body, _ := json.Marshal(map[string]any{"Credentials": json.RawMessage(e.credentialsJSON(spec)), "Filters": c.filter})
			t0 := time.Now()
			e.mustPost("/api/email/synchronize", string(body))
			// Live mail keeps flowing during the load.
			live++
			liveSubject := fmt.Sprintf("live-%d", live)
			e.appendMail(user, pass, "INBOX", simpleMail(liveSubject, fmt.Sprintf("live-%d@example.com", live)))
			liveArrived := e.waitEmails(liveSubject, 1, 10*time.Second)[0].Time
			hist := e.waitHistory(id, 120*time.Second)
			took := time.Since(t0)
			want := map[string]bool{}
			for _, m := range msgs {
				if c.match(m) {
					want[m.id] = true
				}
			}
			got := map[string]int{}
			for _, r := range e.col.Requests("ProcessFullEmail")[mark:] {
				for _, em := range r.JSON["Emails"].([]any) {
					mid := em.(map[string]any)["MessageId"].(string)
					if strings.HasPrefix(mid, "<h-") {
						got[mid]++
					}
				}
			}
			var missing, extra, dup []string
			for mid := range want {
				if got[mid] == 0 {
					missing = append(missing, mid)
				}
			}
			for mid, n := range got {
				if !want[mid] {
					extra = append(extra, mid)
				}
				if n > 1 {
					dup = append(dup, mid)
				}
			}
			sort.Strings(missing)
			sort.Strings(extra)
			if len(missing)+len(extra)+len(dup) > 0 {
				t.Errorf("filter %q: want %d, got %d; missing %d %v, extra %d %v, duplicated %d",
					c.filter, len(want), len(got), len(missing), head(missing), len(extra), head(extra), len(dup))
			}
			// The load also picks up live mail that matches the filter.
			if d, _ := hist["Delivered"].(float64); int(d) < len(want) || int(d) > len(want)+live {
				t.Errorf("progress = %v, want Delivered %d (+ up to %d live)", hist, len(want), live)
			}
			t.Logf("filter %q: %d emails in %v (%.0f emails/s); live mail arrived %v after the load started",
				c.filter, len(want), took, float64(len(want))/took.Seconds(), liveArrived.Sub(t0))
		})
	}
}

// credentialsJSON is the credentials object in standard JSON (synchronize and
// send use quoted names).
func (e *env) credentialsJSON(s mailboxSpec) string {
	c := e.credentials(s)
	var v map[string]any
	// Reuse the service's own lenient decoder shape: quote the keys here.
	if err := lenientToStd(c, &v); err != nil {
		e.t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// waitHistory waits until the mailbox's history load is done.
func (e *env) waitHistory(id string, within time.Duration) map[string]any {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for ctx.Err() == nil {
		st := e.state(id)
		if h, ok := st["History"].(map[string]any); ok {
			switch h["State"] {
			case "done":
				return h
			case "failed":
				e.t.Fatalf("history load failed: %v", h)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.t.Fatalf("history load of %s not done after %v: %v", id, within, e.state(id))
	return nil
}

func head(s []string) []string {
	if len(s) > 5 {
		return s[:5]
	}
	return s
}

func TestSynchronizeRejectsUnknownFilter(t *testing.T) {
	e := newEnv(t, nil)
	spec := mailboxSpec{ID: "d15c0000-0000-4000-8000-0000000bad0f", User: "alice@example.com", Password: "alicepw"}
	for _, f := range []string{"UNDRAFT FLAGGED", "SINCE yesterday", "UID 5"} {
		body, _ := json.Marshal(map[string]any{"Credentials": json.RawMessage(e.credentialsJSON(spec)), "Filters": f})
		code, out := e.post("/api/email/synchronize", string(body))
		if code != 400 || !strings.Contains(out, "Filters") {
			t.Errorf("filter %q: %d %s", f, code, out)
		}
	}
}

// TestSynchronizeLimits: a history load honours EL_MAX_MESSAGE_BYTES (an
// oversize message comes with its header only and a warning, the others whole,
// fetched in batches) and loads INBOX before the other folders.
func TestSynchronizeLimits(t *testing.T) {
	e := newEnv(t, func(c *config.Config) { c.MaxMessageBytes = 20 << 10 })
	const user, pass = "dave@example.com", "davepw"
	big := simpleMail("hist-big", "hist-big@example.com")
	big = append(big, []byte(strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", 1000))...)
	e.appendMail(user, pass, "Archive", simpleMail("hist-archive", "hist-archive@example.com"))
	for i := range 150 {
		if i == 70 {
			e.appendMail(user, pass, "INBOX", big)
		}
		e.appendMail(user, pass, "INBOX", simpleMail(fmt.Sprintf("hist-%d", i), fmt.Sprintf("hist-%d@example.com", i)))
	}
	const id = "d15c0000-0000-4000-8000-0000000b1c00"
	spec := mailboxSpec{ID: id, User: user, Password: pass}
	e.mustPost("/api/listeners/create", e.createBody(spec))
	e.waitState(id, "exists", 10*time.Second)
	body, _ := json.Marshal(map[string]any{"Credentials": json.RawMessage(e.credentialsJSON(spec)), "Filters": "UNDRAFT UNDELETED"})
	e.mustPost("/api/email/synchronize", string(body))
	e.waitHistory(id, 60*time.Second)
	got := e.waitEmails("hist-", 152, 10*time.Second)
	seen := map[string]int{}
	for i, m := range got {
		s, _ := m.Data["Subject"].(string)
		seen[s]++
		switch s {
		case "hist-big":
			if b, _ := m.Data["Body"].(string); strings.Contains(b, "0123456789abcdef") {
				t.Errorf("oversize message delivered with its body (%d bytes)", len(b))
			}
		case "hist-archive":
			if i < 151 {
				t.Errorf("Archive delivered as email %d of 152: INBOX must be loaded first", i+1)
			}
		}
	}
	if len(seen) != 152 {
		t.Errorf("%d distinct emails delivered, want 152", len(seen))
	}
}
