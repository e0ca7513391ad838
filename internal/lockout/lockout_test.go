// SPDX-License-Identifier: Apache-2.0

package lockout

import (
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

func TestBackOffAndReset(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	g := New(Options{Min: 5 * time.Minute, Max: time.Hour, Now: func() time.Time { return now }})
	mb := &mail.Mailbox{ID: "m", Host: "h", Port: 993, UserName: "u", Password: "wrong"}
	if _, _, held := g.Check(mb); held {
		t.Fatal("held before any failure")
	}
	var waits []time.Duration
	for range 6 {
		until := g.Failed(mb, "NO [AUTHENTICATIONFAILED]")
		waits = append(waits, until.Sub(now))
		if u, reason, held := g.Check(mb); !held || !u.Equal(until) || reason == "" {
			t.Fatalf("not held after a failure: %v %q %v", u, reason, held)
		}
		now = until // the retry happens at the end of the back-off
	}
	want := []time.Duration{5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 40 * time.Minute, time.Hour, time.Hour}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("back-off %v, want %v", waits, want)
		}
	}
	// AD's 5 failures in 30 minutes: the retries at 0, 5, 15, 35, 75, 135 min
	// never put 5 in one 30-minute window.
	g.Failed(mb, "x")
	// The same credentials registered again stay held.
	again := *mb
	again.FolderIDs = []string{"INBOX"}
	if _, _, held := g.Check(&again); !held {
		t.Fatal("re-registration with the same credentials reset the hold")
	}
	// A new password is tried at once.
	fixed := *mb
	fixed.Password = "right"
	if _, _, held := g.Check(&fixed); held {
		t.Fatal("new credentials are held")
	}
	// A new password rejected too starts at the minimum again.
	if until := g.Failed(&fixed, "x"); until.Sub(now) != 5*time.Minute {
		t.Fatalf("new credentials' first back-off %v", until.Sub(now))
	}
	g.Succeeded(&fixed)
	if _, _, held := g.Check(&fixed); held {
		t.Fatal("held after a successful login")
	}
	var none *Guard
	if _, _, held := none.Check(mb); held {
		t.Fatal("nil guard holds")
	}
}
