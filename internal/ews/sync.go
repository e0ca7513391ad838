// SPDX-License-Identifier: Apache-2.0

package ews

import (
	"context"
	"encoding/xml"
	"strconv"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// ChangeKind is the kind of a SyncFolderItems change.
type ChangeKind int

const (
	ChangeCreate   ChangeKind = iota + 1 // the item appeared in the folder
	ChangeUpdate                         // a property changed
	ChangeDelete                         // the item left the folder (deleted or moved)
	ChangeReadFlag                       // only its read flag changed (Change.IsRead)
)

func (k ChangeKind) String() string {
	switch k {
	case ChangeCreate:
		return "Create"
	case ChangeUpdate:
		return "Update"
	case ChangeDelete:
		return "Delete"
	case ChangeReadFlag:
		return "ReadFlagChange"
	}
	return "ChangeKind(" + strconv.Itoa(int(k)) + ")"
}

// Change is one entry of SyncFolderItems. Delete and ReadFlag changes carry
// only Item.ID.
type Change struct {
	Kind   ChangeKind
	Item   ItemInfo
	IsRead bool // ChangeReadFlag: the new state
}

// SyncResult is one page of SyncFolderItems.
type SyncResult struct {
	// State is the new sync state, opaque; pass it to the next call and
	// persist it once the changes are handled.
	State string
	// Last says the page reaches the current end (IncludesLastItemInRange);
	// false: call again at once with State.
	Last    bool
	Changes []Change
}

// MaxSyncChanges is the largest page SyncFolderItems allows.
const MaxSyncChanges = 512

type changeXML struct {
	XMLName xml.Name
	ItemID  *idXML    `xml:"ItemId"` // Delete, ReadFlagChange
	IsRead  string    `xml:"IsRead"`
	Items   []itemXML `xml:",any"` // Create, Update: the one item element
}

type syncMsg struct {
	responseMessage
	State   string `xml:"SyncState"`
	Last    string `xml:"IncludesLastItemInRange"`
	Changes struct {
		List []changeXML `xml:",any"`
	} `xml:"Changes"`
}

// itemShape writes m:ItemShape asking for ids plus arrival time and size,
// so that callers can order new mail and skip what is too large to fetch.
func (w *xmlw) itemShape() {
	w.start("m:ItemShape")
	w.elem("t:BaseShape", "IdOnly")
	w.fieldURIs("item:DateTimeReceived", "item:Size")
	w.end("m:ItemShape")
}

// SyncFolderItems returns the changes of folder since state ("" for the
// first sync, which reports every item as a Create), at most maxChanges of
// them
// (clamped to 1..512). An expired or corrupt state fails with
// ErrInvalidSyncState.
func (c *Client) SyncFolderItems(ctx context.Context, t Target, folder FolderID, state string, maxChanges int) (*SyncResult, error) {
	const op = "SyncFolderItems"
	if folder.empty() {
		return nil, mail.Errorf(mail.ClassConfig, "ews "+op, "empty folder id")
	}
	maxChanges = min(MaxSyncChanges, max(maxChanges, 1))
	msgs, err := call[syncMsg](ctx, c, t, op, true, func(w *xmlw) {
		w.start("m:SyncFolderItems")
		w.itemShape()
		w.start("m:SyncFolderId")
		w.folderID(folder)
		w.end("m:SyncFolderId")
		if state != "" {
			w.elem("m:SyncState", state)
		}
		w.elem("m:MaxChangesReturned", strconv.Itoa(maxChanges))
		w.end("m:SyncFolderItems")
	})
	if err != nil {
		return nil, err
	}
	m := &msgs[0]
	res := &SyncResult{State: m.State, Last: isTrue(m.Last)}
	for i := range m.Changes.List {
		ch, ok := m.Changes.List[i].change()
		if ok {
			res.Changes = append(res.Changes, ch)
		}
	}
	return res, nil
}

// change converts one entry; unknown entries are skipped.
func (x *changeXML) change() (Change, bool) {
	var ch Change
	switch x.XMLName.Local {
	case "Create":
		ch.Kind = ChangeCreate
	case "Update":
		ch.Kind = ChangeUpdate
	case "Delete":
		ch.Kind = ChangeDelete
	case "ReadFlagChange":
		ch.Kind = ChangeReadFlag
		ch.IsRead = isTrue(x.IsRead)
	default:
		return ch, false
	}
	switch {
	case x.ItemID != nil:
		ch.Item.ID = ItemID{ID: x.ItemID.ID, ChangeKey: x.ItemID.ChangeKey}
	case len(x.Items) > 0:
		ch.Item = x.Items[0].info()
	default:
		return ch, false
	}
	return ch, ch.Item.ID.ID != ""
}
