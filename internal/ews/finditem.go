// SPDX-License-Identifier: Apache-2.0

package ews

import (
	"context"
	"strconv"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Paging of FindItem: Exchange returns at most 1,000 entries per call
// (EWSFindCountLimit). maxItemPages bounds one listing, so that a server
// that never says "last" cannot keep the caller busy forever.
const (
	DefaultFindPage = 100
	maxFindPage     = 1000
	maxItemPages    = 10_000
)

type itemsXML struct {
	List []itemXML `xml:",any"`
}

type findItemMsg struct {
	responseMessage
	Root rootFolderXML `xml:"RootFolder"`
}

// FindItems lists the items of folder received at or after since (all items
// when since is zero), oldest first, calling fn with each page of at most
// page items (default 100, at most 1,000). An error from fn stops the
// listing and is returned. Items arriving meanwhile sort after those already
// listed, so offsets stay valid while paging.
func (c *Client) FindItems(ctx context.Context, t Target, folder FolderID, since time.Time, page int, fn func([]ItemInfo) error) error {
	const op = "FindItem"
	if folder.empty() {
		return mail.Errorf(mail.ClassConfig, "ews "+op, "empty folder id")
	}
	if page <= 0 {
		page = DefaultFindPage
	}
	page = min(page, maxFindPage)
	offset := 0
	for range maxItemPages {
		msgs, err := call[findItemMsg](ctx, c, t, op, true, func(w *xmlw) {
			w.findItem(folder, since, page, offset)
		})
		if err != nil {
			return err
		}
		root := &msgs[0].Root
		infos := make([]ItemInfo, 0, len(root.Items.List))
		for i := range root.Items.List {
			if info := root.Items.List[i].info(); info.ID.ID != "" {
				infos = append(infos, info)
			}
		}
		if len(infos) > 0 {
			if err := fn(infos); err != nil {
				return mail.Wrap(mail.ClassInternal, "ews "+op, err)
			}
		}
		next, last := root.next(offset, len(root.Items.List))
		if last {
			return nil
		}
		if len(root.Items.List) == 0 || next <= offset {
			return mail.Errorf(mail.ClassProtocol, "ews "+op, "paging makes no progress at offset %d", offset)
		}
		offset = next
	}
	return mail.Errorf(mail.ClassProtocol, "ews "+op, "more than %d pages of items", maxItemPages)
}

// findItem writes m:FindItem: shape, paging view, restriction, sort order,
// parent — the schema's order.
func (w *xmlw) findItem(folder FolderID, since time.Time, page, offset int) {
	w.start("m:FindItem", "Traversal", "Shallow")
	w.itemShape()
	w.empty("m:IndexedPageItemView", "MaxEntriesReturned", strconv.Itoa(page),
		"Offset", strconv.Itoa(offset), "BasePoint", "Beginning")
	if !since.IsZero() {
		w.start("m:Restriction")
		w.start("t:IsGreaterThanOrEqualTo")
		w.empty("t:FieldURI", "FieldURI", "item:DateTimeReceived")
		w.start("t:FieldURIOrConstant")
		w.empty("t:Constant", "Value", since.UTC().Format(time.RFC3339))
		w.end("t:FieldURIOrConstant")
		w.end("t:IsGreaterThanOrEqualTo")
		w.end("m:Restriction")
	}
	w.start("m:SortOrder")
	w.start("t:FieldOrder", "Order", "Ascending")
	w.empty("t:FieldURI", "FieldURI", "item:DateTimeReceived")
	w.end("t:FieldOrder")
	w.end("m:SortOrder")
	w.start("m:ParentFolderIds")
	w.folderID(folder)
	w.end("m:ParentFolderIds")
	w.end("m:FindItem")
}
