// SPDX-License-Identifier: Apache-2.0

package imapsrc

import (
	"slices"
	"testing"
	"time"
)

func TestCursorRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, c := range []cursor{
		{UIDValidity: 7, UID: 42, Date: at},
		{UIDValidity: 7, UID: 42, Date: at, Seen: []string{"a1b2", "s34"}},
		{UIDValidity: 1, UID: 0},
	} {
		got, err := parseCursor(c.String())
		if err != nil || got.UIDValidity != c.UIDValidity || got.UID != c.UID || !got.Date.Equal(c.Date) || !slices.Equal(got.Seen, c.Seen) {
			t.Errorf("round trip of %q: %+v, %v", c.String(), got, err)
		}
	}
	// Cursors of earlier releases have three fields.
	if c, err := parseCursor("7:42:1764583200"); err != nil || c.UID != 42 || c.Seen != nil {
		t.Errorf("old cursor: %+v, %v", c, err)
	}
	for _, bad := range []string{"7:42", "7:42:0:1,2,3,4,5,6,7,8,9", "g1:r:0::0::", "a:b:c"} {
		if _, err := parseCursor(bad); err == nil {
			t.Errorf("parseCursor(%q) succeeded", bad)
		}
	}
}

// After a UIDVALIDITY change the cursor tells delivered mail apart by arrival
// second and Message-ID (size without one): older mail and the acknowledged
// messages of the newest second are passed over; another message of that
// second, even of the same size, and anything later are not.
func TestCursorDelivered(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	ref := func(uid uint32, d time.Time, size int64, id string) MessageRef {
		return MessageRef{UID: uid, Date: d, Size: size, MessageID: id}
	}
	c := cursor{UIDValidity: 7, Date: at.Add(-time.Hour)}
	c = c.after(ref(10, at.Add(-time.Minute), 500, "<a@x>"))
	c = c.after(ref(11, at.Add(200*time.Millisecond), 1000, "<b@x>"))
	c = c.after(ref(12, at.Add(700*time.Millisecond), 2000, ""))
	c = c.after(ref(13, at.Add(-48*time.Hour), 77, "<old@x>")) // an old INTERNALDATE does not move Date back
	if c.UID != 13 || !c.Date.Equal(at) || len(c.Seen) != 2 {
		t.Fatalf("after: %+v", c)
	}
	for _, tc := range []struct {
		r    MessageRef
		want bool
	}{
		{ref(1, at.Add(-time.Minute), 500, "<a@x>"), true},
		{ref(2, at.Add(-48*time.Hour), 77, "<old@x>"), true},
		{ref(3, at, 1000, "<b@x>"), true},
		{ref(4, at.Add(900*time.Millisecond), 2000, ""), true},
		{ref(5, at, 1000, "<c@x>"), false}, // same second and size, another message
		{ref(6, at, 2000, "<d@x>"), false},
		{ref(7, at.Add(time.Second), 1000, "<b@x>"), false},
		{ref(8, time.Time{}, 1000, "<b@x>"), false},
	} {
		if got := c.delivered(tc.r); got != tc.want {
			t.Errorf("delivered(%+v) = %v, want %v", tc.r, got, tc.want)
		}
	}
	for i := range 20 {
		c = c.after(ref(uint32(20+i), at, 5000, "<"+string(rune('a'+i))+"@y>"))
	}
	if len(c.Seen) != maxSeen {
		t.Errorf("Seen grew to %d", len(c.Seen))
	}
}

func TestHeaderValue(t *testing.T) {
	for in, want := range map[string]string{
		"Message-ID: <a@b>\r\n\r\n":          "<a@b>",
		"Message-Id:\r\n <folded@b>\r\n\r\n": "<folded@b>",
		"\r\n":                               "",
		"":                                   "",
	} {
		if got := headerValue([]byte(in)); got != want {
			t.Errorf("headerValue(%q) = %q, want %q", in, got, want)
		}
	}
}
