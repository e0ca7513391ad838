// Package source holds the vocabulary shared by mail-server adapters (IMAP now,
// Exchange later): folder status, message references and fetched messages. The
// adapters return these types, so the syncer never sees a protocol library.
package source

import (
	"errors"
	"strings"
	"time"
)

// Folder is one folder of a mailbox.
type Folder struct {
	Name       string // full path, UTF-8
	Delim      rune   // hierarchy delimiter, 0 when flat
	Attrs      []string
	Selectable bool
}

// FolderStatus is a folder's UID state.
type FolderStatus struct {
	UIDValidity uint32
	UIDNext     uint32
	Messages    uint32
}

// MessageRef identifies a message in the selected folder.
type MessageRef struct {
	UID  uint32
	Size int64
	Date time.Time // internal (arrival) date, zero when unknown
}

// Fetched is a downloaded message.
type Fetched struct {
	UID       uint32
	Raw       []byte
	Date      time.Time
	Truncated bool // over the size limit: Raw holds the header only
}

// ErrGone means the message was expunged before it could be fetched.
var ErrGone = errors.New("source: message no longer exists")

// Query selects messages of a folder for a history load. The zero value
// matches everything.
type Query struct {
	Since     time.Time // day granularity (IMAP SINCE / SENTSINCE)
	SentSince bool      // Since applies to the Date header, not the arrival date
	NotFlags  []string  // exclude messages with any of these flags or keywords (\Draft, \Deleted, a keyword)
	UIDFrom   uint32    // only UIDs >= UIDFrom; 0 = no limit
}

// Watched picks the folders to read from a mailbox's folder list: the
// configured ones (folder ids as the client sends them; "inbox" in any case is
// INBOX) that exist and are selectable, or, with none configured, every
// selectable folder that byDefault accepts (nil: all), INBOX always. INBOX
// comes first: it is the one IDLE watches, and where a history load matters
// most. missing lists configured folders that do not exist.
func Watched(list []Folder, configured []string, byDefault func(Folder) bool) (out, missing []string) {
	if len(configured) > 0 {
		byName := make(map[string]bool, len(list))
		for _, f := range list {
			byName[f.Name] = f.Selectable
		}
		for _, id := range configured {
			if strings.EqualFold(id, "INBOX") {
				id = "INBOX"
			}
			if byName[id] {
				out = append(out, id)
			} else {
				missing = append(missing, id)
			}
		}
	} else {
		for _, f := range list {
			if f.Selectable && (byDefault == nil || byDefault(f) || strings.EqualFold(f.Name, "INBOX")) {
				out = append(out, f.Name)
			}
		}
	}
	for i, f := range out {
		if strings.EqualFold(f, "INBOX") {
			copy(out[1:i+1], out[:i])
			out[0] = f
			break
		}
	}
	return out, missing
}
