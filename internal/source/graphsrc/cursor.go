// SPDX-License-Identifier: Apache-2.0

package graphsrc

import (
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// cursor is the Graph sync position of one folder.
//
// Graph tracks a folder with a delta round: the first request lists the
// folder's messages (here only those received since Floor, with $filter),
// page by page through @odata.nextLink, and the last page hands out an
// @odata.deltaLink that later returns what changed since. Link is the next
// page of a round or the deltaLink.
//
// While a round runs (Round) the messages it lists are old and new alike: the
// ones received before Floor, and those received in Floor's second that are
// in FloorSeen, were acknowledged before and are passed over. That is how a
// new subscription starts with new mail only, and how a resync (410 Gone)
// delivers nothing twice. Top is the arrival time of the newest acknowledged
// message and TopSeen the messages acknowledged in its second; a round that
// must start over starts from them.
//
// Written as "g1:<r|d>:<floor>:<floor seen>:<top>:<top seen>:<link>", times
// in Unix seconds and the seen sets as comma-separated short hashes of
// message ids; the link comes last because it holds ':'.
type cursor struct {
	Round     bool
	Floor     time.Time
	FloorSeen []string
	Top       time.Time
	TopSeen   []string
	Link      string
}

const (
	cursorPrefix = "g1:"
	// maxSeen bounds a seen set: more messages than this arriving in one
	// second may, after a resync, be delivered again (the client
	// deduplicates by Message-ID).
	maxSeen = 16
)

func (c cursor) String() string {
	var b strings.Builder
	b.WriteString(cursorPrefix)
	if c.Round {
		b.WriteString("r:")
	} else {
		b.WriteString("d:")
	}
	for _, f := range []struct {
		t    time.Time
		seen []string
	}{{c.Floor, c.FloorSeen}, {c.Top, c.TopSeen}} {
		if !f.t.IsZero() {
			b.WriteString(strconv.FormatInt(f.t.Unix(), 10))
		} else {
			b.WriteByte('0')
		}
		b.WriteByte(':')
		b.WriteString(strings.Join(f.seen, ","))
		b.WriteByte(':')
	}
	b.WriteString(c.Link)
	return b.String()
}

// parseCursor reads a cursor written by String.
func parseCursor(s string) (cursor, error) {
	bad := mail.Errorf(mail.ClassInternal, "cursor", "not a Graph cursor: %q", mail.Excerpt(s, 64))
	rest, ok := strings.CutPrefix(s, cursorPrefix)
	f := strings.SplitN(rest, ":", 6)
	if !ok || len(f) != 6 || (f[0] != "r" && f[0] != "d") {
		return cursor{}, bad
	}
	c := cursor{Round: f[0] == "r", Link: f[5]}
	var err error
	if c.Floor, c.FloorSeen, err = parseMark(f[1], f[2]); err != nil {
		return cursor{}, bad
	}
	if c.Top, c.TopSeen, err = parseMark(f[3], f[4]); err != nil {
		return cursor{}, bad
	}
	return c, nil
}

func parseMark(sec, seen string) (time.Time, []string, error) {
	n, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return time.Time{}, nil, err
	}
	var t time.Time
	if n != 0 {
		t = time.Unix(n, 0).UTC()
	}
	var s []string
	if seen != "" {
		s = strings.Split(seen, ",")
	}
	return t, s, nil
}

// seenKey is the short hash a seen set holds for a message id: 48 bits, so a
// collision among the few messages of one second is negligible.
func seenKey(id string) string {
	h := fnv.New64a()
	h.Write([]byte(id))
	return strconv.FormatUint(h.Sum64()>>16, 36)
}

// acknowledged reports whether a message the round lists was delivered
// before: received before the floor, or in its second and seen.
func (c cursor) acknowledged(id string, received time.Time) bool {
	if !c.Round || received.IsZero() {
		return c.seenAtTop(id, received)
	}
	floor := c.Floor.Truncate(time.Second)
	switch {
	case received.Before(floor):
		return true
	case received.Before(floor.Add(time.Second)):
		return slices.Contains(c.FloorSeen, seenKey(id))
	}
	return c.seenAtTop(id, received)
}

// seenAtTop reports whether the message was acknowledged in Top's second.
func (c cursor) seenAtTop(id string, received time.Time) bool {
	top := c.Top.Truncate(time.Second)
	if c.Top.IsZero() || received.Before(top) || !received.Before(top.Add(time.Second)) {
		return false
	}
	return slices.Contains(c.TopSeen, seenKey(id))
}

// advance moves Top over a message being acknowledged.
func (c *cursor) advance(id string, received time.Time) {
	if received.IsZero() {
		return
	}
	r := received.Truncate(time.Second).UTC()
	switch {
	case r.After(c.Top):
		c.Top, c.TopSeen = r, []string{seenKey(id)}
	case r.Equal(c.Top) && len(c.TopSeen) < maxSeen:
		if k := seenKey(id); !slices.Contains(c.TopSeen, k) {
			c.TopSeen = append(slices.Clip(c.TopSeen), k)
		}
	}
}

// restart is the cursor of a new round that passes over everything
// acknowledged so far, starting at link ("" for a new delta request).
func (c cursor) restart(link string) cursor {
	return cursor{Round: true, Floor: c.Top, FloorSeen: c.TopSeen, Top: c.Top, TopSeen: c.TopSeen, Link: link}
}
