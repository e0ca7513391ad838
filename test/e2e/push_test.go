// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// Dovecot moving an IDLE connection to imap-hibernate (2 s after its last
// activity) drops the push of mail that arrives at that moment. Pairs of
// mails 1.5–5 s apart, 2.0 s included, one pair per mailbox at once: every
// second mail still arrives within 5 s, because the watched folder is
// re-checked 3, 8 and 15 s after any activity, whatever the server announced.
func TestLostPushBounded(t *testing.T) {
	e := newEnvWith(t, envOptions{hibernate: true})
	users := []string{"alice", "bob", "carol", "dave"}
	gaps := []time.Duration{1500 * time.Millisecond, 2000 * time.Millisecond, 2500 * time.Millisecond, 5 * time.Second}
	for i, u := range users {
		id := fmt.Sprintf("5e1f0000-0000-4000-8000-00000000b00%d", i)
		e.mustPost("/api/listeners/create", e.createBody(mailboxSpec{ID: id, User: u + "@example.com", Password: u + "pw"}))
		if st := e.waitState(id, "exists", 10*time.Second); st["Push"] != nil && st["Push"] != "idle" {
			t.Errorf("Push = %v, want idle", st["Push"])
		}
	}
	time.Sleep(19 * time.Second) // the re-checks after connecting are over; the connections hibernate
	if n := e.dc.Hibernated(); n < len(users) {
		t.Logf("%d of %d connections hibernated", n, len(users))
	}
	var wg sync.WaitGroup
	for i, u := range users {
		wg.Go(func() {
			first, second := fmt.Sprintf("pair-%d-a", i), fmt.Sprintf("pair-%d-b", i)
			// t.Fatal may not run here: failures are errors, and the pair ends.
			arrived := func(subject string, within time.Duration) bool {
				for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
					if len(e.emails(subject)) > 0 {
						return true
					}
				}
				t.Errorf("gap %v: %s not delivered within %v", gaps[i], subject, within)
				return false
			}
			if _, err := e.dc.Append(u+"@example.com", u+"pw", "INBOX", simpleMail(first, first+"@example.com")); err != nil || !arrived(first, 10*time.Second) {
				return
			}
			time.Sleep(gaps[i])
			start := time.Now()
			if _, err := e.dc.Append(u+"@example.com", u+"pw", "INBOX", simpleMail(second, second+"@example.com")); err != nil {
				t.Error(err)
				return
			}
			if arrived(second, 5*time.Second) {
				t.Logf("gap %v: the second mail arrived after %v", gaps[i], time.Since(start).Round(time.Millisecond))
			}
		})
	}
	wg.Wait()
}
