// SPDX-License-Identifier: Apache-2.0

package imapsrc

import (
	"strings"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/testenv"
)

func openSession(t *testing.T, d *testenv.Dovecot) *Session {
	t.Helper()
	mb := &mail.Mailbox{Host: d.IMAPAddr, Secure: mail.SecureNone, UserName: appendUser, Password: appendPW}
	s, err := Open(t.Context(), mb, &Options{DialTimeout: 5 * time.Second, CommandTimeout: 10 * time.Second}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// The source contract against Dovecot: a new folder starts at its end, new
// mail is listed after the cursor (each ref carrying the cursor after it),
// pushed through Wait, listed in pages when the backlog is large, and a
// re-created folder (new UIDVALIDITY) re-delivers its recent mail.
func TestSessionContractDovecot(t *testing.T) {
	t.Parallel()
	d := testenv.NewT(t, testenv.DovecotOptions{Users: map[string]string{appendUser: appendPW}})
	for i := range 3 {
		if _, err := d.DeliverFile(appendUser, "INBOX", message(i, 500)); err != nil {
			t.Fatal(err)
		}
	}
	s := openSession(t, d)
	ctx := t.Context()
	start, err := s.Changes(ctx, "INBOX", "")
	if err != nil || len(start.Refs) != 0 || !strings.HasSuffix(strings.SplitN(start.Next, ":", 3)[1], "3") {
		t.Fatalf("start = %+v, %v; want no refs and a cursor at UID 3", start, err)
	}
	// Nothing new: no refs.
	if ch, err := s.Changes(ctx, "INBOX", start.Next); err != nil || len(ch.Refs) != 0 {
		t.Fatalf("no new mail: %+v, %v", ch, err)
	}
	// New mail is pushed while waiting and listed after the cursor.
	done := make(chan []string, 1)
	go func() {
		changed, _ := s.Wait(ctx, []string{"INBOX"}, 10*time.Second)
		done <- changed
	}()
	time.Sleep(200 * time.Millisecond) // let it enter IDLE
	for i := 3; i < 5; i++ {
		if _, err := d.Append(appendUser, appendPW, "INBOX", message(i, 500)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case changed := <-done:
		if len(changed) != 1 || changed[0] != "INBOX" {
			t.Fatalf("Wait = %v, want [INBOX]", changed)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no push within 15 s")
	}
	if s.Pushed().IsZero() {
		t.Error("Pushed() is zero after a push")
	}
	ch, err := s.Changes(ctx, "INBOX", start.Next)
	if err != nil {
		t.Fatal(err)
	}
	refs := ch.Refs
	if len(refs) != 2 || refs[0].ID != "4" || refs[1].ID != "5" || refs[1].Size < 500 || refs[1].Cursor == "" {
		t.Fatalf("refs after two appends: %+v", refs)
	}
	f, err := s.Fetch(ctx, refs[1])
	if err != nil || !strings.Contains(string(f.Raw), "Subject: m4\r\n") {
		t.Fatalf("Fetch: %v, %.80q", err, f.Raw)
	}
	if ch, _ := s.Changes(ctx, "INBOX", refs[1].Cursor); len(ch.Refs) != 0 {
		t.Fatalf("after the last ref's cursor: %+v", ch.Refs)
	}

	// Pages: with a page of 2 UIDs, five new messages come in three calls.
	s.page = 2
	var ids []string
	if err := d.CreateFolder(appendUser, appendPW, "Projects"); err != nil {
		t.Fatal(err)
	}
	first, err := s.Changes(ctx, "Projects", "")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := d.DeliverFile(appendUser, "Projects", message(10+i, 300)); err != nil {
			t.Fatal(err)
		}
	}
	cur, calls := first.Next, 0
	for {
		calls++
		ch, err := s.Changes(ctx, "Projects", cur)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range ch.Refs {
			ids = append(ids, r.ID)
			cur = r.Cursor
		}
		if ch.Next != "" {
			cur = ch.Next
		}
		if !ch.More {
			break
		}
	}
	if strings.Join(ids, ",") != "1,2,3,4,5" || calls != 3 {
		t.Fatalf("paged listing: ids %v in %d calls, want 1-5 in 3", ids, calls)
	}
}

// A folder deleted and created again has a new UIDVALIDITY: its cursor is
// reset and the recent mail delivered again (the client deduplicates).
func TestSessionUIDValidityReset(t *testing.T) {
	t.Parallel()
	d := testenv.NewT(t, testenv.DovecotOptions{Users: map[string]string{appendUser: appendPW}})
	if err := d.CreateFolder(appendUser, appendPW, "Clients"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.DeliverFile(appendUser, "Clients", message(1, 300)); err != nil {
		t.Fatal(err)
	}
	s := openSession(t, d)
	ctx := t.Context()
	start, err := s.Changes(ctx, "Clients", "")
	if err != nil {
		t.Fatal(err)
	}
	c, _ := d.Client(appendUser, appendPW)
	if err := c.Delete("Clients").Wait(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := d.CreateFolder(appendUser, appendPW, "Clients"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Append(appendUser, appendPW, "Clients", message(2, 300)); err != nil {
		t.Fatal(err)
	}
	s2 := openSession(t, d) // a fresh session, as after the reconnect the server forces
	ch, err := s2.Changes(ctx, "Clients", start.Next)
	if err != nil || !ch.Reset || len(ch.Refs) != 1 {
		t.Fatalf("after re-creation: %+v, %v; want Reset with the new message", ch, err)
	}
}
