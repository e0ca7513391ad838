// SPDX-License-Identifier: Apache-2.0

package ewssrc

import (
	"strconv"
	"strings"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// cursor is the Exchange sync position of one folder: the folder's EWS
// SyncState (opaque, written by the server) after every acknowledged change,
// and Mark, the arrival time of the newest acknowledged message (or when the
// cursor started).
//
// EWS has no "from now on" sync state: a state is only reached by listing
// the folder from the beginning. A cursor in Baseline mode is on that first
// walk: it passes over what arrived before Mark and delivers what arrived
// since, so a new subscription starts with new mail only and loses none that
// arrives while the walk runs. When a state is refused (expired, corrupt), the
// cursor falls back to a new walk from Mark, re-delivering at most what
// arrived at that instant (the client deduplicates by Message-ID).
//
// Written as "ews1:<b|s>:<unix seconds>:<SyncState>"; the SyncState is base64
// and never holds ':'. Stores only ever see the text.
type cursor struct {
	Baseline bool
	Mark     time.Time
	State    string
}

const cursorPrefix = "ews1:"

func (c cursor) String() string {
	mode := "s"
	if c.Baseline {
		mode = "b"
	}
	var sec int64
	if !c.Mark.IsZero() {
		sec = c.Mark.Unix()
	}
	return cursorPrefix + mode + ":" + strconv.FormatInt(sec, 10) + ":" + c.State
}

// parseCursor reads a cursor written by String.
func parseCursor(s string) (cursor, error) {
	rest, ok := strings.CutPrefix(s, cursorPrefix)
	f := strings.SplitN(rest, ":", 3)
	if !ok || len(f) != 3 || (f[0] != "b" && f[0] != "s") {
		return cursor{}, mail.Errorf(mail.ClassInternal, "cursor", "not an Exchange cursor: %q", mail.Excerpt(s, 64))
	}
	sec, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return cursor{}, mail.Errorf(mail.ClassInternal, "cursor", "not an Exchange cursor: %q", mail.Excerpt(s, 64))
	}
	c := cursor{Baseline: f[0] == "b", State: f[2]}
	if sec != 0 {
		c.Mark = time.Unix(sec, 0).UTC()
	}
	return c, nil
}
