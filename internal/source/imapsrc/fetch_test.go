// SPDX-License-Identifier: Apache-2.0

package imapsrc

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/testenv"
)

// message returns a message of about size bytes with a unique subject.
func message(i, size int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: a@example.com\r\nTo: b@example.com\r\nSubject: m%d\r\nMessage-ID: <m%d@example.com>\r\n\r\n", i, i)
	line := strings.Repeat("lorem ipsum dolor sit amet ", 3) + "\r\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	return b.Bytes()
}

// TestFetchManyDovecot: against an honest server the guard changes nothing:
// every message arrives whole and exact, one over MaxMessageBytes with its
// header only, in UID order, over several batches and chunks.
func TestFetchManyDovecot(t *testing.T) {
	t.Parallel()
	d := testenv.NewT(t, testenv.DovecotOptions{Users: map[string]string{appendUser: appendPW}})
	want := map[string][]byte{} // by subject
	for i := range 130 {
		size := 2000 + i*500
		if i == 7 {
			size = 300 << 10 // over MaxMessageBytes below
		}
		raw := message(i, size)
		want[subject(raw)] = raw
		if _, err := d.DeliverFile(appendUser, "INBOX", raw); err != nil {
			t.Fatal(err)
		}
	}
	mb := &mail.Mailbox{Host: d.IMAPAddr, Secure: mail.SecureNone, UserName: appendUser, Password: appendPW}
	conn, err := Dial(t.Context(), mb, &Options{DialTimeout: 5 * time.Second, CommandTimeout: 10 * time.Second, MaxMessageBytes: 256 << 10}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Examine(t.Context(), "INBOX"); err != nil {
		t.Fatal(err)
	}
	uids, err := conn.Search(t.Context(), mail.Query{})
	if err != nil || len(uids) != len(want) {
		t.Fatalf("Search = %d UIDs, %v", len(uids), err)
	}
	i := 0
	err = conn.FetchMany(t.Context(), uids, func(uid uint32, f *Fetched) error {
		if uid != uids[i] || f == nil {
			t.Fatalf("call %d: uid %d, %v", i, uid, f)
		}
		i++
		raw := want[subject(f.Raw)]
		switch {
		case subject(f.Raw) == "m7":
			if !f.Truncated || !bytes.HasPrefix(raw, f.Raw) || !bytes.HasSuffix(f.Raw, []byte("\r\n\r\n")) {
				t.Errorf("large message: truncated %v, %d bytes", f.Truncated, len(f.Raw))
			}
		case f.Truncated || !bytes.Equal(f.Raw, raw):
			t.Errorf("message %s: truncated %v, %d bytes, want %d", subject(f.Raw), f.Truncated, len(f.Raw), len(raw))
		}
		return nil
	})
	if err != nil || i != len(uids) {
		t.Fatalf("FetchMany: %d calls, %v", i, err)
	}
}

// subject returns the Subject of a message made by message.
func subject(raw []byte) string {
	_, rest, _ := bytes.Cut(raw, []byte("Subject: "))
	s, _, _ := bytes.Cut(rest, []byte("\r\n"))
	return string(s)
}

// BenchmarkFetchManyDovecot is the hot path: Dovecot → UID FETCH → bytes,
// 100 messages of 30 KB per iteration.
func BenchmarkFetchManyDovecot(b *testing.B) {
	d := testenv.NewT(b, testenv.DovecotOptions{Users: map[string]string{appendUser: appendPW}})
	for i := range 100 {
		if _, err := d.DeliverFile(appendUser, "INBOX", message(i, 30000)); err != nil {
			b.Fatal(err)
		}
	}
	mb := &mail.Mailbox{Host: d.IMAPAddr, Secure: mail.SecureNone, UserName: appendUser, Password: appendPW}
	conn, err := Dial(b.Context(), mb, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Examine(b.Context(), "INBOX"); err != nil {
		b.Fatal(err)
	}
	uids, err := conn.Search(b.Context(), mail.Query{})
	if err != nil || len(uids) != 100 {
		b.Fatalf("Search = %d UIDs, %v", len(uids), err)
	}
	b.SetBytes(100 * 30000)
	b.ReportAllocs()
	for b.Loop() {
		if err := conn.FetchMany(b.Context(), uids, func(uint32, *Fetched) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}
