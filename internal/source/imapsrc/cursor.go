package imapsrc

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// cursor is the IMAP sync position of one folder: every message up to UID
// under UIDValidity was acknowledged; Date is the arrival date of the newest
// of them (or when the cursor started), used after a UIDVALIDITY change to
// decide how far back to re-deliver.
//
// It is written as "uidvalidity:uid:unixseconds", which is exactly what the
// stores kept before cursors became opaque (they appended ":fence"), so
// cursors written by earlier releases read unchanged.
type cursor struct {
	UIDValidity uint32
	UID         uint32
	Date        time.Time
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
	return string(b)
}

// parseCursor reads a cursor written by String.
func parseCursor(s string) (cursor, error) {
	f := strings.Split(s, ":")
	if len(f) != 3 {
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
	return c, nil
}

// after returns the cursor once message uid of date is acknowledged.
func (c cursor) after(uid uint32, date time.Time) cursor {
	if uid > c.UID {
		c.UID = uid
	}
	if !date.IsZero() {
		c.Date = date.UTC()
	}
	return c
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
