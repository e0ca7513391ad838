// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestSecurityModes connects with implicit TLS, STARTTLS and plain text, as
// Creatio's SecureOption/UseSsl ask, verifying the server certificate.
func TestSecurityModes(t *testing.T) {
	e := newEnv(t, nil)
	cases := []struct {
		name string
		spec mailboxSpec
	}{
		{"ssl", mailboxSpec{ID: "00000000-0000-4000-8000-000000000551", Addr: e.dc.IMAPSAddr, SecureOption: 2, UseSsl: true}},
		{"starttls", mailboxSpec{ID: "00000000-0000-4000-8000-000000000552", Addr: e.dc.IMAPAddr, SecureOption: 3}},
		{"plain", mailboxSpec{ID: "00000000-0000-4000-8000-000000000553", Addr: e.dc.IMAPAddr, SecureOption: 0}},
		{"auto-usessl", mailboxSpec{ID: "00000000-0000-4000-8000-000000000554", Addr: e.dc.IMAPSAddr, SecureOption: 1, UseSsl: true}},
	}
	for _, c := range cases {
		c.spec.User, c.spec.Password = "carol@example.com", "carolpw"
		e.mustPost("/api/listeners/create", e.createBody(c.spec))
	}
	for _, c := range cases {
		e.waitState(c.spec.ID, "exists", 10*time.Second)
	}
	e.appendMail("carol@example.com", "carolpw", "INBOX", simpleMail("modes", "modes@example.com"))
	got := e.waitEmails("modes", len(cases), 10*time.Second)
	seen := map[string]bool{}
	for _, m := range got {
		seen[m.Subscription["MailboxId"].(string)] = true
	}
	for _, c := range cases {
		if !seen[c.spec.ID] {
			t.Errorf("%s: no delivery", c.name)
		}
	}
}

// TestImplicitTLSToPlainPortFails: asking for TLS on a plain port is a TLS
// error, reported as such, never a silent downgrade.
func TestImplicitTLSToPlainPortFails(t *testing.T) {
	e := newEnv(t, nil)
	const id = "00000000-0000-4000-8000-0000000005f1"
	e.mustPost("/api/listeners/create", e.createBody(mailboxSpec{ID: id, User: "carol@example.com", Password: "carolpw", Addr: e.dc.IMAPAddr, SecureOption: 2}))
	st := e.waitState(id, "error", 10*time.Second)
	if st["ErrorClass"] != "tls" {
		t.Errorf("state = %v, want tls error", st)
	}
}

// TestRecreateIsIdempotentAndUpdateSwapsSecrets: a recreate with identical
// settings keeps the live session; update with a new password keeps it too and
// the new secret is used on the next connection.
func TestRecreateIsIdempotentAndUpdateSwapsSecrets(t *testing.T) {
	e := newEnv(t, nil)
	const id = "00000000-0000-4000-8000-00000000e1d0"
	spec := mailboxSpec{ID: id, User: "alice@example.com", Password: "alicepw"}
	e.mustPost("/api/listeners/create", e.createBody(spec))
	since := e.waitState(id, "exists", 10*time.Second)["Since"]
	for i := 0; i < 3; i++ {
		e.mustPost("/api/listeners/recreate", e.createBody(spec))
	}
	if st := e.state(id); st["State"] != "exists" || st["Since"] != since {
		t.Errorf("recreate with identical settings restarted the session: %v (was since %v)", st, since)
	}
	spec.Password = "stale-but-session-is-live"
	e.mustPost("/api/listeners/update", e.createBody(spec))
	if st := e.state(id); st["State"] != "exists" || st["Since"] != since {
		t.Errorf("update restarted the session: %v", st)
	}
	e.appendMail("alice@example.com", "alicepw", "INBOX", simpleMail("after-update", "upd@example.com"))
	e.waitEmails("after-update", 1, 10*time.Second)
	// Recreate with changed settings restarts, and the cursor survives: the
	// mail appended in between is delivered once.
	spec.Password = "alicepw"
	spec.Folders = []string{"INBOX"}
	e.appendMail("alice@example.com", "alicepw", "INBOX", simpleMail("between", "between@example.com"))
	e.mustPost("/api/listeners/recreate", e.createBody(spec))
	e.waitState(id, "exists", 10*time.Second)
	e.waitEmails("between", 1, 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	if n := len(e.emails("between")); n != 1 {
		t.Errorf("mail around a recreate delivered %d times, want 1", n)
	}
}

// TestMaxSubscriptions: a node at EL_MAX_SUBSCRIPTIONS refuses new mailboxes
// with 503 (Creatio's failover retries) and registers nothing of them.
func TestMaxSubscriptions(t *testing.T) {
	e := newEnv(t, func(c *testConfig) { c.MaxSubscriptions = 1 })
	e.mustPost("/api/listeners/create", e.createBody(mailboxSpec{ID: "00000000-0000-4000-8000-0000000000c1", User: "alice@example.com", Password: "alicepw"}))
	code, body := e.post("/api/listeners/create", e.createBody(mailboxSpec{ID: "00000000-0000-4000-8000-0000000000c2", User: "bob@example.com", Password: "bobpw"}))
	if code != 503 || !strings.Contains(body, "EL_MAX_SUBSCRIPTIONS") {
		t.Fatalf("second mailbox: %d %s", code, body)
	}
	if st := e.state("00000000-0000-4000-8000-0000000000c2"); st["State"] != "closed" {
		t.Errorf("refused mailbox state = %v", st)
	}
	// Re-registering the one it has is fine.
	e.mustPost("/api/listeners/recreate", e.createBody(mailboxSpec{ID: "00000000-0000-4000-8000-0000000000c1", User: "alice@example.com", Password: "alicepw"}))
}
