// SPDX-License-Identifier: Apache-2.0

package imapsrc

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/testenv"
)

// A server that lies about a message's size (RFC822.SIZE small, the BODY[]
// literal 1 GiB) gets that message delivered with its header only, like one
// over MaxMessageBytes, and the others whole: no 1 GiB is held, the mail is
// not dropped, and the fetch does not fail (which would loop reconnecting).

func dialRogue(t *testing.T, r *testenv.RogueIMAP) *Conn {
	t.Helper()
	conn, err := Dial(t.Context(), rogueMailbox(r, mail.SecureNone), &Options{DialTimeout: 5 * time.Second, CommandTimeout: 20 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.Examine(t.Context(), "INBOX"); err != nil {
		t.Fatal(err)
	}
	return conn
}

// wantHeaderOnly asserts that f is message raw's header, marked Truncated.
func wantHeaderOnly(t *testing.T, f *Fetched, raw []byte) {
	t.Helper()
	header := raw[:bytes.Index(raw, []byte("\r\n\r\n"))+4]
	if f == nil || !f.Truncated || !bytes.Equal(f.Raw, header) {
		t.Fatalf("got %+v, want the header only %q, truncated", f, header)
	}
}

func TestLyingFetchMany(t *testing.T) {
	r := testenv.NewRogueIMAPT(t, testenv.RogueFetchLie)
	conn := dialRogue(t, r)
	msgs := testenv.RogueMessages()
	got := map[uint32]*Fetched{}
	var err error
	u := testenv.Measure(func() {
		err = conn.FetchMany(t.Context(), []uint32{1, 2, 3}, func(uid uint32, f *Fetched) error {
			got[uid] = f
			return nil
		})
	})
	checkHostile(t, err, "", "", 20*time.Second, u, false)
	for _, uid := range []uint32{1, 3} {
		if f := got[uid]; f == nil || f.Truncated || !bytes.Equal(f.Raw, msgs[uid-1].Raw) {
			t.Errorf("message %d: %+v, want it whole", uid, f)
		}
	}
	wantHeaderOnly(t, got[2], msgs[1].Raw)
	if n := r.CommandCount("BODY.PEEK[HEADER]"); n != 1 {
		t.Errorf("%d header fetches, want 1", n)
	}
	if r.Connections() != 1 {
		t.Errorf("%d connections, want 1", r.Connections())
	}
}

func TestLyingFetch(t *testing.T) {
	r := testenv.NewRogueIMAPT(t, testenv.RogueFetchLie)
	conn := dialRogue(t, r)
	raw := testenv.RogueMessages()[1].Raw
	// With the announced size, and with none (a ref from SearchSince): then
	// MaxMessageBytes bounds the literal.
	for _, size := range []int64{int64(len(raw)), 0} {
		var f *Fetched
		var err error
		u := testenv.Measure(func() { f, err = conn.Fetch(t.Context(), MessageRef{UID: 2, Size: size}) })
		checkHostile(t, err, "", "", 20*time.Second, u, false)
		wantHeaderOnly(t, f, raw)
	}
}

// TestFibbingFetch: a literal over its message's own bound but within what
// the batch may hold is cut at the end of its header on our side, without a
// second round trip, and the honest large message in the batch stays whole.
func TestFibbingFetch(t *testing.T) {
	r := testenv.NewRogueIMAPT(t)
	msgs := testenv.RogueMessages()
	big := append(bytes.Clone(msgs[0].Raw), strings.Repeat("0123456789abcdef\r\n", 3<<20/18)...)
	fib := msgs[1]
	fib.Literal = int64(len(fib.Raw)) + 1200<<10 // > size + 1 MiB slack
	r.SetMessages([]testenv.RogueMessage{{Raw: big}, fib})
	conn := dialRogue(t, r)
	got := map[uint32]*Fetched{}
	err := conn.FetchMany(t.Context(), []uint32{1, 2}, func(uid uint32, f *Fetched) error {
		got[uid] = f
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if f := got[1]; f == nil || f.Truncated || !bytes.Equal(f.Raw, big) {
		t.Errorf("honest 3 MiB message not whole: %v", f != nil && f.Truncated)
	}
	wantHeaderOnly(t, got[2], fib.Raw)
	if n := r.CommandCount("BODY.PEEK[HEADER]"); n != 0 {
		t.Errorf("%d header fetches, want none", n)
	}
}

// TestHonestRogue: the rogue server without behaviours serves every call the
// syncer and the history loader make, so it is a fair baseline.
func TestHonestRogue(t *testing.T) {
	r := testenv.NewRogueIMAPT(t)
	conn := dialRogue(t, r)
	ctx := t.Context()
	if fs, err := conn.Folders(ctx); err != nil || len(fs) != 1 || fs[0].Name != "INBOX" {
		t.Fatalf("Folders = %v, %v", fs, err)
	}
	if st, err := conn.Status(ctx, "INBOX"); err != nil || st.Messages != 3 || st.UIDNext != 4 {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	refs, err := conn.ListAfter(ctx, 1)
	if err != nil || len(refs) != 2 || refs[0].UID != 2 || refs[0].Size == 0 {
		t.Fatalf("ListAfter = %+v, %v", refs, err)
	}
	f, err := conn.Fetch(ctx, refs[1])
	if err != nil || f.Truncated || !bytes.Equal(f.Raw, testenv.RogueMessages()[2].Raw) {
		t.Fatalf("Fetch = %+v, %v", f, err)
	}
	idle, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, _, err := conn.Idle(idle, nil, 50*time.Millisecond); err != nil {
		t.Fatalf("Idle: %v", err)
	}
	if err := conn.Noop(ctx); err != nil {
		t.Fatalf("Noop: %v", err)
	}
}
