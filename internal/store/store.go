// SPDX-License-Identifier: Apache-2.0

// Package store keeps the service's shared state: the mailbox registry (what the
// client registered), the per-folder sync cursors and the subscription status
// records that let any node answer subscriptionsstate. The embedded in-memory
// implementation is the default; the Redis implementation, with the same
// semantics (one contract suite, storetest, runs against both), serves clusters.
// No message bodies are ever stored: the mail server is the durable queue, and a
// cursor only advances after the client acknowledged a delivery.
//
// Semantics both implementations share:
//   - Returned values are copies; callers never alias stored state.
//   - Times come back in UTC: status times to the millisecond; the zero time
//     (and the Unix epoch) reads back as zero. Cursor data is opaque text.
//   - Empty slices and maps read back as nil.
//   - PutCursor is fenced: a cursor whose Fence is lower than the one stored
//     for that folder is refused with ErrStaleFence (see package lease).
//   - PutCursor and PutStatus do not require the mailbox to be registered.
//   - DeleteMailbox forgets the mailbox, its cursors and its status.
package store

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/emaillistener/emaillistener/internal/mail"
)

var (
	// ErrNotFound is returned when a mailbox is not registered.
	ErrNotFound = errors.New("store: mailbox not found")
	// ErrStaleFence is returned by PutCursor when the cursor's Fence is lower
	// than the fence stored with that folder's cursor: another node obtained the
	// mailbox's lease since the writer did. The writer must stop working on the
	// mailbox.
	ErrStaleFence = errors.New("store: stale fence")
	// ErrInvalidID is returned for an empty mailbox id.
	ErrInvalidID = errors.New("store: empty mailbox id")
)

// MaxLastError is how many bytes of Status.LastError a store keeps.
const MaxLastError = 512

// StaleFenceError is PutCursor's refusal of a stale fence, with the numbers a
// post-mortem needs; errors.Is(err, ErrStaleFence) holds.
type StaleFenceError struct {
	ID            mail.MailboxID
	Folder        string
	Fence, Stored uint64
}

func (e *StaleFenceError) Error() string {
	return fmt.Sprintf("%v: mailbox %s folder %q: fence %d < stored %d", ErrStaleFence, e.ID, e.Folder, e.Fence, e.Stored)
}

// Is makes errors.Is(err, ErrStaleFence) true.
func (e *StaleFenceError) Is(target error) bool { return target == ErrStaleFence }

// StaleFence tells consumers that know no store type (the syncer) that the
// write was refused, not lost in transit.
func (e *StaleFenceError) StaleFence() bool { return true }

func staleFence(id mail.MailboxID, folder string, fence, stored uint64) error {
	return &StaleFenceError{ID: id, Folder: folder, Fence: fence, Stored: stored}
}

// cloneMailbox returns a deep copy, so callers can never alias stored state.
// Empty collections become nil, as they read back from any store.
func cloneMailbox(m *mail.Mailbox) *mail.Mailbox {
	c := *m
	c.FolderIDs = cloneSlice(m.FolderIDs)
	c.Features, c.Extra = nil, nil
	if len(m.Features) > 0 {
		c.Features = maps.Clone(m.Features)
	}
	if len(m.Extra) > 0 {
		c.Extra = maps.Clone(m.Extra)
	}
	return &c
}

func cloneSlice(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}

// normStatus applies the stored precision and limits and copies Folders.
func normStatus(st mail.Status) mail.Status {
	st.Since = fromUnixMilli(unixMilli(st.Since))
	st.RetryAt = fromUnixMilli(unixMilli(st.RetryAt))
	st.LastEventAt = fromUnixMilli(unixMilli(st.LastEventAt))
	st.LastError = truncateUTF8(st.LastError, MaxLastError)
	st.Folders = cloneSlice(st.Folders)
	return st
}

// unixSec is t in Unix seconds, 0 for the zero time.
func unixSec(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func fromUnix(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

// unixMilli is t in Unix milliseconds, 0 for the zero time.
func unixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromUnixMilli(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 {
		r, size := utf8.DecodeLastRuneInString(s)
		if r != utf8.RuneError || size > 1 {
			break
		}
		s = s[:len(s)-1]
	}
	return s
}
