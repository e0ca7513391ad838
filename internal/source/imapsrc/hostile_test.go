// SPDX-License-Identifier: Apache-2.0

package imapsrc

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/testenv"
)

// The hostile tests run a real go-imap client (through Dial and the Conn
// methods) against testenv.RogueIMAP. None of them is parallel: each measures
// the process's allocations, which other tests would disturb.

const (
	hostileTimeout = 5 * time.Second
	// stallTimeout is the command timeout of the stall case.
	stallTimeout = time.Second
	// slowTimeout is for the exchanges that make go-imap parse a budget's
	// worth of responses byte by byte (1-16 MiB): under a second normally,
	// up to 5 s under the race detector.
	slowTimeout = 30 * time.Second
	// maxHostileAlloc is what one hostile exchange may allocate in total, and
	// maxHostileHeap how much its live heap may grow: without the guard a
	// 1 GiB literal allocates and holds gigabytes.
	maxHostileAlloc = 64 << 20
	maxHostileHeap  = 64 << 20
)

func hostileOptions() *Options {
	return &Options{DialTimeout: hostileTimeout, CommandTimeout: hostileTimeout}
}

func rogueMailbox(r *testenv.RogueIMAP, secure mail.SecureOption) *mail.Mailbox {
	return &mail.Mailbox{Host: r.Addr, Secure: secure, UserName: "victim@example.com", Password: "pw"}
}

// checkHostile asserts that err has class want and contains text (want ""
// and text "": no error), that it
// came within limit, and that memory stayed bounded: the live heap grew by
// at most maxHostileHeap, and unless churn is allowed (go-imap parses a
// long line into many short-lived values), at most maxHostileAlloc bytes
// were allocated at all.
func checkHostile(t *testing.T, err error, want mail.ErrorClass, text string, limit time.Duration, u testenv.Usage, churn bool) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("err = %v, want none", err)
	case want != "" && (mail.ClassOf(err) != want || !containsAny(errText(err), strings.Split(text, " | "))):
		t.Errorf("err = %v (class %s), want class %s containing %q", err, mail.ClassOf(err), want, text)
	}
	if u.Took > limit {
		t.Errorf("took %v, want at most %v", u.Took.Round(time.Millisecond), limit)
	}
	if u.HeapPeak > maxHostileHeap {
		t.Errorf("live heap grew by %d MiB, want at most %d MiB", u.HeapPeak>>20, maxHostileHeap>>20)
	}
	if !churn && u.Alloc > maxHostileAlloc {
		t.Errorf("allocated %d MiB, want at most %d MiB", u.Alloc>>20, maxHostileAlloc>>20)
	}
	t.Logf("%v after %v; %.1f MiB allocated, live heap +%.1f MiB", err, u.Took.Round(time.Millisecond),
		float64(u.Alloc)/(1<<20), float64(u.HeapPeak)/(1<<20))
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestHostileCommands: each misbehaviour during a command fails that command
// with its class, promptly, in bounded memory.
func TestHostileCommands(t *testing.T) {
	examine := func(ctx context.Context, c *Conn) error {
		_, err := c.Examine(ctx, "INBOX")
		return err
	}
	folders := func(ctx context.Context, c *Conn) error { _, err := c.Folders(ctx); return err }
	cases := []struct {
		name     string
		behavior testenv.RogueBehavior
		call     func(ctx context.Context, c *Conn) error
		class    mail.ErrorClass
		text     string
		limit    time.Duration
		churn    bool
	}{
		{"list huge literal", testenv.RogueListHugeLiteral, folders, mail.ClassProtocol,
			"list folders: imap: the server sent a 1073741824-byte literal where at most 65536 are allowed", time.Second, false},
		{"list endless line", testenv.RogueListEndlessLine, folders, mail.ClassProtocol,
			"list folders: imap: the server sent a response line longer than 65536 bytes", time.Second, false},
		{"list endless responses", testenv.RogueListEndless, folders, mail.ClassProtocol,
			"list folders: imap: the server sent more than 8388608 bytes in response to one command", slowTimeout, true},
		{"search endless line", testenv.RogueSearchEndlessLine, func(ctx context.Context, c *Conn) error {
			if err := examine(ctx, c); err != nil {
				return err
			}
			_, err := c.Search(ctx, mail.Query{})
			return err
		}, mail.ClassProtocol, "search: imap: the server sent a response line longer than 16777216 bytes", slowTimeout, true},
		{"fetch endless responses", testenv.RogueFetchEndless, func(ctx context.Context, c *Conn) error {
			if err := examine(ctx, c); err != nil {
				return err
			}
			return c.FetchMany(ctx, []uint32{1, 2, 3}, func(uint32, *Fetched) error { return nil })
		}, mail.ClassProtocol, "fetch sizes: imap: the server sent more than 1048576 bytes in response to one command", slowTimeout, false},
		{"idle huge literal", testenv.RogueIdleHugeLiteral, func(ctx context.Context, c *Conn) error {
			if err := examine(ctx, c); err != nil {
				return err
			}
			_, _, err := c.Idle(ctx, nil, time.Minute)
			return err
		}, mail.ClassProtocol, "imap: the server sent a 1073741824-byte literal where at most 65536 are allowed", time.Second, false},
		{"stall", testenv.RogueStall, folders, mail.ClassTimeout, "imap command timeout", stallTimeout + 500*time.Millisecond, false},
		{"bye in a command", testenv.RogueByeMidCommand, folders, mail.ClassConnect, "list folders: the server closed the connection: rogue: going away", time.Second, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := testenv.NewRogueIMAPT(t, c.behavior)
			opts := hostileOptions()
			switch c.behavior {
			case testenv.RogueStall:
				opts.CommandTimeout = stallTimeout
			default: // the error must come before any timeout could
				opts.CommandTimeout = max(c.limit, hostileTimeout)
			}
			conn, err := Dial(t.Context(), rogueMailbox(r, mail.SecureNone), opts, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			u := testenv.Measure(func() { err = c.call(t.Context(), conn) })
			checkHostile(t, err, c.class, c.text, c.limit, u, c.churn)
		})
	}
}

// TestHostileDial: misbehaviour before the login fails Dial with its class,
// in every security mode that reads the greeting.
func TestHostileDial(t *testing.T) {
	cases := []struct {
		name     string
		behavior testenv.RogueBehavior
		secure   mail.SecureOption
		class    mail.ErrorClass
		text     string
		conns    int
	}{
		{"endless greeting", testenv.RogueGreetingEndlessLine, mail.SecureNone, mail.ClassProtocol,
			"greeting: imap: the server sent a response line longer than 65536 bytes", 1},
		{"endless greeting, starttls", testenv.RogueGreetingEndlessLine, mail.SecureStartTLS, mail.ClassProtocol,
			"greeting: imap: the server sent a response line longer than 65536 bytes", 1},
		// Opportunistic STARTTLS takes the protocol error for "no TLS" and
		// tries plain text, which fails the same way.
		{"endless greeting, opportunistic", testenv.RogueGreetingEndlessLine, mail.SecureAuto, mail.ClassProtocol,
			"greeting: imap: the server sent a response line longer than 65536 bytes", 2},
		// The close races the greeting: it ends the login or the wait for
		// the greeting.
		{"greeting then close", testenv.RogueGreetClose, mail.SecureNone, mail.ClassConnect, "login: | greeting: connection closed by the server", 1},
		{"silent", testenv.RogueSilent, mail.SecureNone, mail.ClassTimeout, "imap dial timeout", 1},
		{"silent, starttls", testenv.RogueSilent, mail.SecureStartTLS, mail.ClassTimeout, "imap dial timeout", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := testenv.NewRogueIMAPT(t, c.behavior)
			opts := hostileOptions()
			opts.DialTimeout = 300 * time.Millisecond
			var err error
			u := testenv.Measure(func() {
				var conn *Conn
				if conn, err = Dial(t.Context(), rogueMailbox(r, c.secure), opts, nil); err == nil {
					conn.Close()
				}
			})
			checkHostile(t, err, c.class, c.text, opts.DialTimeout+time.Second, u, false)
			if r.Connections() != c.conns {
				t.Errorf("%d connections, want %d", r.Connections(), c.conns)
			}
		})
	}
}

// containsAny reports whether s contains one of subs.
func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
