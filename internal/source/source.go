// SPDX-License-Identifier: Apache-2.0

// Package source holds the vocabulary that mail-server adapters (IMAP in
// source/imapsrc; Exchange and Microsoft Graph to come) share with the
// packages that use them: a reference to a message, the changes of a folder
// since a cursor, a downloaded message, and the rule that picks the folders
// to watch. The consumers (syncer, history) declare the interfaces they need
// in their own packages; the adapters return these types, so no consumer ever
// sees a protocol library.
//
// Cursors are opaque strings (mail.Cursor.Data) that only the adapter which
// wrote them reads.
package source

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Ref identifies a message of a folder for Fetch.
type Ref struct {
	Folder string
	// ID is the message's identity in its folder, in the adapter's terms
	// (IMAP: the UID in decimal; Exchange: the item id).
	ID   string
	Size int64     // bytes, 0 when unknown
	Date time.Time // arrival date, zero when unknown
	// Cursor is the folder's cursor once this message is acknowledged; empty
	// when the source can only advance after a whole batch (Changes.Next).
	Cursor string
}

// Changes are the messages of a folder after a cursor, oldest first.
type Changes struct {
	Refs []Ref
	// Next is the cursor after every ref (and after anything the source
	// passed over); it is saved once every ref was handled. Empty: keep the
	// last ref's cursor.
	Next string
	// Reset says the cursor was no longer valid (IMAP: UIDVALIDITY changed;
	// Exchange: the sync state expired): Refs then re-deliver recent mail,
	// which the client deduplicates.
	Reset bool
	// More says the source listed only a page: ask again from Next.
	More bool
}

// Fetched is a downloaded message.
type Fetched struct {
	Ref       Ref
	Raw       []byte
	Date      time.Time // arrival date, zero when unknown
	Truncated bool      // over the size limit: Raw holds the header only
}

// ErrGone means the message was deleted before it could be fetched.
var ErrGone = errors.New("source: message no longer exists")

// ConfiguredFolders returns the folder ids the client configured for mb, in
// the naming of sess: a session that serves a mailbox registered for another
// transport (a Microsoft 365 mailbox Creatio registered for EWS, now read over
// IMAP or Graph) knows which of those ids it understands and what they are
// called there, and says so by implementing ConfiguredFolders. Others take
// mb's ids as they are.
func ConfiguredFolders(sess any, mb *mail.Mailbox) []string {
	if c, ok := sess.(interface{ ConfiguredFolders() []string }); ok {
		return c.ConfiguredFolders()
	}
	return mb.FolderIDs
}

// Watched picks the folders to read from a mailbox's folder list: the
// configured ones (folder ids as the client sends them; "inbox" in any case is
// the inbox) that exist and are selectable, or, with none configured, every
// selectable folder that byDefault accepts (nil: all), the inbox always. The
// inbox comes first: it is the one a push connection watches, and where a
// history load matters most. missing lists configured folders that do not
// exist.
func Watched(list []mail.Folder, configured []string, byDefault func(mail.Folder) bool) (out, missing []string) {
	inbox := ""
	for i := range list {
		if list[i].IsInbox() && list[i].Selectable {
			inbox = list[i].Name
			break
		}
	}
	if len(configured) > 0 {
		byName := make(map[string]bool, len(list))
		for _, f := range list {
			byName[f.Name] = f.Selectable
		}
		for _, id := range configured {
			if strings.EqualFold(id, "INBOX") && inbox != "" {
				id = inbox
			}
			if byName[id] && !slices.Contains(out, id) {
				out = append(out, id)
			} else if !byName[id] {
				missing = append(missing, id)
			}
		}
	} else {
		for _, f := range list {
			if f.Selectable && (byDefault == nil || byDefault(f) || f.Name == inbox) {
				out = append(out, f.Name)
			}
		}
	}
	if i := slices.Index(out, inbox); i > 0 {
		copy(out[1:i+1], out[:i])
		out[0] = inbox
	}
	return out, missing
}

// FetchEach downloads refs in order with fetch, one at a time, and hands
// each to fn; a message deleted meanwhile (ErrGone) is handed over as nil.
// It is FetchMany for sources that download one message per request.
func FetchEach(ctx context.Context, refs []Ref, fetch func(ctx context.Context, ref Ref) (*Fetched, error),
	fn func(ref Ref, f *Fetched) error) error {
	for _, ref := range refs {
		f, err := fetch(ctx, ref)
		if errors.Is(err, ErrGone) {
			f, err = nil, nil
		}
		if err != nil {
			return err
		}
		if err := fn(ref, f); err != nil {
			return err
		}
	}
	return nil
}
