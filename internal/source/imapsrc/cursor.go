// SPDX-License-Identifier: Apache-2.0

package imapsrc

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// cursor is the IMAP sync position of one folder: every message up to UID
// under UIDValidity was acknowledged; Date is the arrival date (INTERNALDATE)
// of the newest of them (or when the cursor started), and Sizes the sizes of
// the messages acknowledged in Date's second. After a UIDVALIDITY change the
// UIDs mean nothing, but arrival dates and sizes survive a rebuild: messages
// that arrived before Date, or in its second with a size in Sizes, were
// delivered and are passed over.
//
// It is written as "uidvalidity:uid:unixseconds[:size,size…]"; the first three
// fields are exactly what the stores kept before cursors became opaque (they
// appended ":fence"), so cursors written by earlier releases read unchanged.
type cursor struct {
	UIDValidity uint32
	UID         uint32
	Date        time.Time
	Seen        []string
}

// maxSeen bounds Seen: more messages than this arriving in one second may,
// after a UIDVALIDITY change, be delivered again (the client deduplicates).
const maxSeen = 8

// seenKey identifies a message across UIDVALIDITY changes: 48 bits of a hash
// of its Message-ID, or "s" and its size when it has none.
func seenKey(r MessageRef) string {
	if r.MessageID == "" {
		return "s" + strconv.FormatInt(r.Size, 10)
	}
	h := fnv.New64a()
	h.Write([]byte(r.MessageID))
	return strconv.FormatUint(h.Sum64()>>16, 36)
}

func (c cursor) String() string {
	b := make([]byte, 0, 32)
	b = strconv.AppendUint(b, uint64(c.UIDValidity), 10)
	b = append(b, ':')
	b = strconv.AppendUint(b, uint64(c.UID), 10)
	b = append(b, ':')
	var sec int64
	if !c.Date.IsZero() {
		sec = c.Date.Unix()
	}
	b = strconv.AppendInt(b, sec, 10)
	for i, k := range c.Seen {
		if i == 0 {
			b = append(b, ':')
		} else {
			b = append(b, ',')
		}
		b = append(b, k...)
	}
	return string(b)
}

// parseCursor reads a cursor written by String.
func parseCursor(s string) (cursor, error) {
	f := strings.Split(s, ":")
	if len(f) != 3 && len(f) != 4 {
		return cursor{}, mail.Errorf(mail.ClassInternal, "cursor", "not an IMAP cursor (%d fields)", len(f))
	}
	v, err1 := strconv.ParseUint(f[0], 10, 32)
	u, err2 := strconv.ParseUint(f[1], 10, 32)
	d, err3 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return cursor{}, mail.Errorf(mail.ClassInternal, "cursor", "not an IMAP cursor: %q", s)
	}
	c := cursor{UIDValidity: uint32(v), UID: uint32(u)}
	if d != 0 {
		c.Date = time.Unix(d, 0).UTC()
	}
	if len(f) == 4 && f[3] != "" {
		c.Seen = strings.Split(f[3], ",")
		if len(c.Seen) > maxSeen {
			return cursor{}, mail.Errorf(mail.ClassInternal, "cursor", "not an IMAP cursor: %q", mail.Excerpt(s, 64))
		}
	}
	return c, nil
}

// after returns the cursor once message r is acknowledged.
func (c cursor) after(r MessageRef) cursor {
	if r.UID > c.UID {
		c.UID = r.UID
	}
	date := r.Date
	if date.IsZero() {
		return c
	}
	// Date only moves forward: a message appended with an old INTERNALDATE
	// is before it anyway.
	d := date.UTC().Truncate(time.Second)
	switch {
	case d.After(c.Date):
		c.Date, c.Seen = d, []string{seenKey(r)}
	case d.Equal(c.Date) && len(c.Seen) < maxSeen:
		c.Seen = append(slices.Clip(c.Seen), seenKey(r))
	}
	return c
}

// delivered reports whether a message listed after a UIDVALIDITY change was
// acknowledged under the old one: it arrived before Date, or in Date's second
// and is in Seen.
func (c cursor) delivered(r MessageRef) bool {
	if r.Date.IsZero() || c.Date.IsZero() {
		return false
	}
	d := r.Date.UTC().Truncate(time.Second)
	switch {
	case d.Before(c.Date):
		return true
	case d.Equal(c.Date):
		return slices.Contains(c.Seen, seenKey(r))
	}
	return false
}

// uidID and parseUID convert UIDs to and from source.Ref ids.
func uidID(uid uint32) string { return strconv.FormatUint(uint64(uid), 10) }

func parseUID(id string) (uint32, error) {
	n, err := strconv.ParseUint(id, 10, 32)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("imapsrc: %q is not a UID", id)
	}
	return uint32(n), nil
}
