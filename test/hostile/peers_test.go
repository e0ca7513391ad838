// SPDX-License-Identifier: Apache-2.0

package hostile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/testenv"
)

// synchronize starts a history load for m.
func (s *suite) synchronize(t *testing.T, m mailbox) (int, string) {
	t.Helper()
	return s.post(t, "/api/email/synchronize", strings.NewReader(`{"Credentials":`+s.credentials(m)+`,"Filters":"UNDELETED"}`))
}

// history returns the History object subscriptionsstate shows for id.
func (s *suite) history(t *testing.T, id string) map[string]any {
	t.Helper()
	body, _ := json.Marshal([]string{id})
	_, out := s.post(t, "/api/listeners/subscriptionsstate", bytes.NewReader(body))
	var m map[string]map[string]any
	_ = json.Unmarshal([]byte(out), &m)
	h, _ := m[id]["History"].(map[string]any)
	return h
}

// hostileIMAP points validate, folders, synchronize and a subscription at mail
// servers that lie or never stop talking: every call ends within its
// timeouts with a clear answer, memory stays bounded, and a lying FETCH still
// delivers the message (header only) instead of looping.
func (s *suite) hostileIMAP(t *testing.T) {
	type call struct {
		name     string
		behavior testenv.RogueBehavior
		path     string
		want     int    // HTTP status
		contains string // in the answer
	}
	calls := []call{
		{"validate: greeting never ends", testenv.RogueGreetingEndlessLine, "/api/mailbox/validate", 200, `"IsValid":false`},
		{"validate: never greets", testenv.RogueSilent, "/api/mailbox/validate", 200, `"IsValid":false`},
		{"validate: greets and hangs up", testenv.RogueGreetClose, "/api/mailbox/validate", 200, `"IsValid":false`},
		{"folders: 1 GiB literal", testenv.RogueListHugeLiteral, "/api/mailbox/folders", 502, "literal"},
		{"folders: endless line", testenv.RogueListEndlessLine, "/api/mailbox/folders", 502, ""},
		{"folders: endless LIST responses", testenv.RogueListEndless, "/api/mailbox/folders", 502, ""},
		{"folders: stalls", testenv.RogueStall, "/api/mailbox/folders", 504, ""},
		{"folders: BYE mid-command", testenv.RogueByeMidCommand, "/api/mailbox/folders", 502, ""},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			srv := testenv.NewRogueIMAPT(t, c.behavior)
			start := time.Now()
			code, out := s.post(t, c.path, strings.NewReader(s.credentials(mailbox{ID: "rogue", User: "u", Addr: srv.Addr})))
			took := time.Since(start)
			if code != c.want || !strings.Contains(out, c.contains) || len(out) > 2048 {
				t.Fatalf("%d %.300s, want %d containing %q", code, out, c.want, c.contains)
			}
			if took > 15*time.Second {
				t.Errorf("answered after %v", took)
			}
			t.Logf("FIGURE %s: %d in %v, service RSS %.1f MiB", c.name, code, took.Round(time.Millisecond), s.rssMiB(t))
			s.alive(t)
		})
	}

	t.Run("synchronize: FETCH lies about the size", func(t *testing.T) {
		srv := testenv.NewRogueIMAPT(t, testenv.RogueFetchLie)
		m := mailbox{ID: "rogue-history", User: "u", Addr: srv.Addr}
		if code, out := s.synchronize(t, m); code != 200 {
			t.Fatalf("synchronize: %d %s", code, out)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			if h := s.history(t, m.ID); h["State"] == "done" {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("history: %v", h)
			}
			time.Sleep(100 * time.Millisecond)
		}
		var subjects []string
		truncated := false
		for _, e := range s.col.Emails() {
			if subj, _ := e.Data["Subject"].(string); strings.HasPrefix(subj, "rogue ") {
				subjects = append(subjects, subj)
				if body, _ := e.Data["Body"].(string); subj == "rogue 2" && !strings.Contains(body, "body of rogue message 2") {
					truncated = true
				}
			}
		}
		if len(subjects) != 3 || !truncated {
			t.Fatalf("delivered %v (the lying one header-only: %v), want rogue 1-3 with rogue 2 header-only", subjects, truncated)
		}
		t.Logf("FIGURE lying FETCH (1 GiB literal for a %d-byte message): 3 delivered, the liar header-only; service RSS %.1f MiB", len(testenv.RogueMessages()[1].Raw), s.rssMiB(t))
	})
	for _, b := range []struct {
		name     string
		behavior testenv.RogueBehavior
	}{{"endless FETCH responses", testenv.RogueFetchEndless}, {"endless SEARCH line", testenv.RogueSearchEndlessLine}} {
		t.Run("synchronize: "+b.name, func(t *testing.T) {
			srv := testenv.NewRogueIMAPT(t, b.behavior)
			id := "rogue-" + strings.ReplaceAll(b.name, " ", "-")
			if code, out := s.synchronize(t, mailbox{ID: id, User: "u", Addr: srv.Addr}); code != 200 {
				t.Fatalf("synchronize: %d %s", code, out)
			}
			// The load reconnects a few times and then fails; it never
			// holds more than its bounds meanwhile.
			deadline := time.Now().Add(2 * time.Minute)
			for {
				h := s.history(t, id)
				if h["State"] == "failed" {
					t.Logf("FIGURE synchronize, %s: failed after %v attempts: %.200v; service RSS %.1f MiB", b.name, srv.Connections(), h["Error"], s.rssMiB(t))
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("history after 2 min: %v", h)
				}
				s.alive(t)
				time.Sleep(200 * time.Millisecond)
			}
			s.close(t, []string{id})
		})
	}
	t.Run("subscription: 1 GiB literal pushed during IDLE", func(t *testing.T) {
		srv := testenv.NewRogueIMAPT(t, testenv.RogueIdleHugeLiteral)
		s.create(t, "/api/listeners/create", []mailbox{{ID: "rogue-idle", User: "u", Addr: srv.Addr}})
		deadline := time.Now().Add(30 * time.Second)
		for srv.Connections() < 3 && time.Now().Before(deadline) {
			s.alive(t)
			time.Sleep(100 * time.Millisecond)
		}
		if srv.Connections() < 3 {
			t.Fatalf("%d connections: the session did not fail and reconnect", srv.Connections())
		}
		t.Logf("FIGURE subscription against a server pushing 1 GiB literals: %d sessions cut, service RSS %.1f MiB", srv.Connections(), s.rssMiB(t))
		s.close(t, []string{"rogue-idle"})
	})
}

// deadPortFairness registers many mailboxes on a port of 127.0.0.1 that
// accepts connections and never greets (each attempt waits for the dial
// timeout), then a few on Dovecot's port of the same host: those must not
// wait behind the dead ones.
func (s *suite) deadPortFairness(t *testing.T) {
	dead := testenv.NewRogueIMAPT(t, testenv.RogueSilent)
	n := s.sz.deadMailboxes
	mbs := make([]mailbox, n)
	ids := make([]string, n)
	for i := range mbs {
		ids[i] = fmt.Sprintf("dead-%05d", i)
		mbs[i] = mailbox{ID: ids[i], User: fmt.Sprintf("dead%d@example.com", i), Addr: dead.Addr}
	}
	start := time.Now()
	s.create(t, "/api/listeners/create", mbs)
	t.Logf("registered %d dead mailboxes in %v", n, time.Since(start).Round(time.Millisecond))
	healthy := make([]mailbox, 5)
	hids := make([]string, len(healthy))
	for i := range healthy {
		hids[i] = fmt.Sprintf("healthy-%d", i)
		healthy[i] = mailbox{ID: hids[i], User: fmt.Sprintf("healthy%d@example.com", i), Addr: s.dc.IMAPAddr}
	}
	s.create(t, "/api/listeners/create", healthy)
	took := s.waitExists(t, hids, 30*time.Second)
	t.Logf("FIGURE %d mailboxes on a dead port of 127.0.0.1: 5 healthy mailboxes on another port exists after %v; service RSS %.1f MiB",
		n, took.Round(time.Millisecond), s.rssMiB(t))
	s.close(t, ids)
	s.close(t, hids)
}

// noLockout registers a mailbox with a wrong password and then behaves as
// Creatio's failover job does (recreate and synchronize, over and over): the
// server sees one failed login, not one per request. The right password is
// tried at once.
func (s *suite) noLockout(t *testing.T) {
	m := mailbox{ID: "lockout", User: "locked@example.com", Password: "Wr0ng-Passw0rd!", Addr: s.dc.IMAPAddr}
	before := authFailures(s.dc.Log(), "locked@example.com")
	s.create(t, "/api/listeners/create", []mailbox{m})
	for range 20 {
		s.create(t, "/api/listeners/recreate", []mailbox{m})
		s.synchronize(t, m)
		time.Sleep(100 * time.Millisecond)
	}
	// The subscription and the first history load may each try once, at
	// the same time; after that the credentials are held.
	failed := authFailures(s.dc.Log(), "locked@example.com") - before
	if failed < 1 || failed > 2 {
		t.Fatalf("%d failed logins for locked@example.com, want 1 or 2:\n%s", failed, lastLines(s.dc.Log(), 20))
	}
	if st := s.states(t, []string{m.ID}); st[m.ID] != "error" {
		t.Errorf("state %v, want error", st)
	}
	m.Password = "pw"
	s.create(t, "/api/listeners/recreate", []mailbox{m})
	took := s.waitExists(t, []string{m.ID}, 10*time.Second)
	t.Logf("FIGURE wrong password, 20 recreates + 20 synchronizes: %d failed logins; the right password exists after %v", failed, took.Round(time.Millisecond))
	s.close(t, []string{m.ID})
}

// authFailures counts the password checks of user that Dovecot's auth
// process failed (auth_verbose): one per login attempt that reached the
// password database, also when the client hung up before the answer (the
// directory behind it counted that attempt too).
func authFailures(log, user string) int {
	n := 0
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, user) && strings.Contains(l, "Password mismatch") {
			n++
		}
	}
	return n
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// silentHTTP is a callback endpoint that accepts connections and never
// answers.
func silentHTTP(t *testing.T) string {
	return "http://" + testenv.SilentListener(t) + "/0/ServiceModel/ExchangeListenerService.svc/ProcessFullEmail"
}

// deadCallbacksHistory starts as many history loads as there are slots for
// callbacks that hang, then one for a live Creatio: it must not wait for the
// dead ones.
func (s *suite) deadCallbacksHistory(t *testing.T) {
	raw := func(user string, i int) []byte {
		return fmt.Appendf(nil, "From: a@example.com\r\nTo: %s\r\nSubject: history %s %d\r\nMessage-ID: <h-%s-%d@example.com>\r\n"+
			"Date: Mon, 30 Nov 2026 10:00:00 +0000\r\n\r\nbody\r\n", user, user, i, user, i)
	}
	users := []string{"hist0@example.com", "hist1@example.com", "hist2@example.com", "hist3@example.com", "histlive@example.com"}
	for _, u := range users {
		for i := range 3 {
			if _, err := s.dc.DeliverFile(u, "INBOX", raw(u, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, u := range users[:4] {
		if code, out := s.synchronize(t, mailbox{ID: fmt.Sprint("hist-dead-", i), User: u, Addr: s.dc.IMAPAddr, Endpoint: silentHTTP(t)}); code != 200 {
			t.Fatalf("%d %s", code, out)
		}
	}
	time.Sleep(500 * time.Millisecond) // the dead loads take every slot first
	start := time.Now()
	if code, out := s.synchronize(t, mailbox{ID: "hist-live", User: users[4], Addr: s.dc.IMAPAddr}); code != 200 {
		t.Fatalf("%d %s", code, out)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		n := 0
		for _, e := range s.col.Emails() {
			if subj, _ := e.Data["Subject"].(string); strings.HasPrefix(subj, "history histlive") {
				n++
			}
		}
		if n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the live history load delivered %d of 3 within 90 s behind 4 dead callbacks", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(start)
	t.Logf("FIGURE history behind 4 loads with hanging callbacks (EL_DELIVERY_TIMEOUT %s): the live load delivered after %v; a dead one shows %v",
		deliveryTimeout, took.Round(time.Millisecond), s.history(t, "hist-dead-0")["State"])
	s.close(t, []string{"hist-dead-0", "hist-dead-1", "hist-dead-2", "hist-dead-3", "hist-live"})
}
