// SPDX-License-Identifier: Apache-2.0

package graphsrc

import (
	"slices"
	"testing"
	"time"
)

func TestCursorRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, c := range []cursor{
		{Round: true, Floor: at, Top: at},
		{Round: true, Floor: at, FloorSeen: []string{"a1", "b2"}, Top: at.Add(time.Hour), TopSeen: []string{"c3"},
			Link: "https://graph.example/v1.0/users/x/mailFolders/inbox/messages/delta?$skiptoken=a:b"},
		{Top: at, TopSeen: []string{"z"}, Link: "http://127.0.0.1:1/v1.0/delta?$deltatoken=q"},
		{},
	} {
		got, err := parseCursor(c.String())
		if err != nil {
			t.Fatalf("parse %q: %v", c.String(), err)
		}
		if got.String() != c.String() || got.Round != c.Round || !got.Floor.Equal(c.Floor) || !got.Top.Equal(c.Top) ||
			!slices.Equal(got.FloorSeen, c.FloorSeen) || !slices.Equal(got.TopSeen, c.TopSeen) || got.Link != c.Link {
			t.Errorf("round trip of %q: %+v", c.String(), got)
		}
	}
	for _, bad := range []string{"", "ews1:b:0:", "g1:x:0::0::", "g1:r:zz::0::", "g1:r:0::"} {
		if _, err := parseCursor(bad); err == nil {
			t.Errorf("parseCursor(%q) succeeded", bad)
		}
	}
}

// A resync passes over exactly what was acknowledged: older messages, and
// those of the newest second that were delivered; a message of that second
// that was not is delivered.
func TestCursorResyncSkipsAcknowledged(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	var c cursor
	c.advance("old", at.Add(-time.Hour))
	c.advance("a", at)
	c.advance("b", at.Add(300*time.Millisecond))
	if !c.Top.Equal(at) || len(c.TopSeen) != 2 {
		t.Fatalf("advance: %+v", c)
	}
	r := c.restart("")
	for _, tc := range []struct {
		id   string
		at   time.Time
		want bool
	}{
		{"old", at.Add(-time.Hour), true},
		{"older-unseen", at.Add(-time.Minute), true},
		{"a", at, true},
		{"b", at, true},
		{"c", at.Add(500 * time.Millisecond), false},
		{"d", at.Add(time.Second), false},
	} {
		if got := r.acknowledged(tc.id, tc.at); got != tc.want {
			t.Errorf("acknowledged(%s, %s) = %v, want %v", tc.id, tc.at, got, tc.want)
		}
	}
	// Out of a round only the newest second's seen set counts: a message
	// moved into the folder long after it arrived is new here.
	d := cursor{Top: at, TopSeen: c.TopSeen}
	if d.acknowledged("moved-in", at.Add(-24*time.Hour)) || !d.acknowledged("a", at) {
		t.Error("delta mode skips the wrong messages")
	}
	for i := range 40 {
		c.advance(string(rune('A'+i)), at)
	}
	if len(c.TopSeen) != maxSeen {
		t.Errorf("seen set grew to %d", len(c.TopSeen))
	}
}
