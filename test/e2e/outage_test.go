// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// TestCreatioOutage: while Creatio answers 500, nothing is lost and the cursor
// never passes an unacknowledged email; after recovery everything arrives, in
// order, once each.
func TestCreatioOutage(t *testing.T) {
	e := newEnv(t, nil)
	const id = "3c1e0a5b-5a0e-4d5e-8c1e-0a5b5a0e4d5e"
	e.mustPost("/api/listeners/create", e.createBody(mailboxSpec{ID: id, User: "alice@example.com", Password: "alicepw"}))
	e.waitState(id, "exists", 10*time.Second)
	uid0 := e.appendMail("alice@example.com", "alicepw", "INBOX", simpleMail("outage-0", "o0@example.com"))
	e.waitEmails("outage-0", 1, 10*time.Second)
	cur0 := e.waitCursor(id, "INBOX", uid0)

	e.col.SetFailure("ProcessFullEmail", 500)
	var uids []uint32
	for i := 1; i <= 5; i++ {
		uids = append(uids, e.appendMail("alice@example.com", "alicepw", "INBOX", simpleMail(fmt.Sprintf("outage-%d", i), fmt.Sprintf("o%d@example.com", i))))
	}
	// Creatio is being hammered with the first pending email and refuses it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.col.WaitFor(ctx, func([]testenvRequest) bool {
		n := 0
		for _, r := range e.col.Requests("ProcessFullEmail") {
			if r.Status == 500 {
				n++
			}
		}
		return n >= 5
	}); err != nil {
		t.Fatal(err)
	}
	if c := e.cursor(id, "INBOX"); c.LastUID != cur0.LastUID || c.LastUID >= uids[0] {
		t.Fatalf("cursor moved to %d during the outage (acknowledged up to %d, first refused uid %d)", c.LastUID, cur0.LastUID, uids[0])
	}
	if st := e.state(id); st["State"] != "exists" {
		t.Errorf("during a Creatio outage the IMAP subscription is still live, state = %v", st)
	}
	e.col.ClearFailure("ProcessFullEmail")
	got := e.waitEmails("outage-", 6, 15*time.Second)
	seen := map[string]int{}
	var order []string
	for _, m := range got {
		s := m.Data["Subject"].(string)
		if seen[s] == 0 {
			order = append(order, s)
		}
		seen[s]++
	}
	for i := 0; i <= 5; i++ {
		s := fmt.Sprintf("outage-%d", i)
		if seen[s] != 1 {
			t.Errorf("%s acknowledged %d times, want 1", s, seen[s])
		}
		if i < len(order) && order[i] != s {
			t.Errorf("delivery order %v, want outage-0…outage-5", order)
			break
		}
	}
	e.waitCursor(id, "INBOX", uids[len(uids)-1])
}

// waitCursor waits until the folder's cursor reaches uid (the cursor is written
// right after Creatio's acknowledgement, so a test can see the email first).
func (e *env) waitCursor(id, folder string, uid uint32) imapCursor {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if c := e.cursor(id, folder); c.LastUID >= uid {
			if c.LastUID != uid {
				e.t.Fatalf("cursor %d passed %d", c.LastUID, uid)
			}
			return c
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.t.Fatalf("cursor of %s/%s never reached %d (at %d)", id, folder, uid, e.cursor(id, folder).LastUID)
	return imapCursor{}
}

// imapCursor is what an IMAP folder's stored cursor says.
type imapCursor struct {
	UIDValidity, LastUID uint32
	Fence                uint64
}

func (e *env) cursor(id, folder string) imapCursor {
	e.t.Helper()
	c, ok, err := e.app.Cursor(context.Background(), mail.MailboxID(id), folder)
	if err != nil || !ok {
		e.t.Fatalf("cursor %s/%s: ok=%v err=%v", id, folder, ok, err)
	}
	var ic imapCursor
	var date int64
	if _, err := fmt.Sscanf(c.Data, "%d:%d:%d", &ic.UIDValidity, &ic.LastUID, &date); err != nil {
		e.t.Fatalf("cursor %s/%s %q is not an IMAP cursor: %v", id, folder, c.Data, err)
	}
	ic.Fence = c.Fence
	return ic
}
