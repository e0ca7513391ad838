// SPDX-License-Identifier: Apache-2.0

package ewsfake

import (
	"slices"
	"strconv"
)

var (
	errInvalidPropertyRequest = &ewsError{"ErrorInvalidPropertyRequest", "The property request is invalid for this operation (MimeContent and Attachments can only be requested with GetItem)."}
	errUnsupportedSort        = &ewsError{"ErrorUnsupportedPathForSortGroup", "The property path is not supported for sort or group operations."}
)

// GetItem: one response message per ItemId, in request order; the item's MIME when
// IncludeMimeContent or item:MimeContent asks for it (as the first child).
func (s *Server) opGetItem(c *caller, op *node, b *xw) error {
	if err := checkSeq(op, one(nsMsg, "ItemShape"), one(nsMsg, "ItemIds")); err != nil {
		return err
	}
	sh, err := parseItemShape(op.child(nsMsg, "ItemShape"))
	if err != nil {
		return err
	}
	refs, err := parseItemIDs(op.child(nsMsg, "ItemIds"))
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx := &itemCtx{sh: sh, ms: c.ms, mbox: s.isMailbox}
	responseStart(b, "GetItem")
	for _, ref := range refs {
		it, e := s.resolveItem(c, ref)
		if e != nil {
			errorMessage(b, "GetItem", e)
			continue
		}
		msgStart(b, "GetItem", nil)
		b.open("m:Items")
		writeItem(b, it, ctx)
		b.end("m:Items")
		msgEnd(b, "GetItem")
	}
	responseEnd(b, "GetItem")
	return nil
}

// FindItem: Shallow traversal of each parent folder with an optional restriction,
// sort order and IndexedPageItemView. Without SortOrder the newest item comes first,
// like the default view of a mail folder.
func (s *Server) opFindItem(c *caller, op *node, b *xw) error {
	if err := checkSeq(op, one(nsMsg, "ItemShape"),
		opt(nsMsg, "IndexedPageItemView", "FractionalPageItemView", "SeekToConditionPageItemView", "CalendarView", "ContactsView"),
		opt(nsMsg, "GroupBy", "DistinguishedGroupBy"), opt(nsMsg, "Restriction"), opt(nsMsg, "SortOrder"),
		one(nsMsg, "ParentFolderIds"), opt(nsMsg, "QueryString")); err != nil {
		return err
	}
	traversal, err := enumAttr(op, "Traversal", true, "", "Shallow", "SoftDeleted", "Associated")
	if err != nil {
		return err
	}
	sh, err := parseItemShape(op.child(nsMsg, "ItemShape"))
	if err != nil {
		return err
	}
	for _, name := range []string{"FractionalPageItemView", "SeekToConditionPageItemView", "CalendarView", "ContactsView", "GroupBy", "DistinguishedGroupBy", "QueryString"} {
		if n := op.child(nsMsg, name); n != nil {
			s.logf("ewsfake: FindItem %s is not implemented", name)
			return &fault{code: "ErrorInvalidRequest", text: "The request is invalid (" + name + " is not supported by this server)."}
		}
	}
	view, err := parsePageView(op.child(nsMsg, "IndexedPageItemView"))
	if err != nil {
		return err
	}
	var msgErr *ewsError
	var keep func(*item) bool
	if r := op.child(nsMsg, "Restriction"); r != nil {
		keep, err = itemRestriction(r)
		if e, ok := err.(*ewsError); ok {
			msgErr, err = e, nil
		}
		if err != nil {
			return err
		}
	}
	less, err := parseSortOrder(op.child(nsMsg, "SortOrder"))
	if e, ok := err.(*ewsError); ok {
		msgErr, err = e, nil
	}
	if err != nil {
		return err
	}
	if sh.mime || sh.has("item:MimeContent") || sh.has("item:Attachments") {
		msgErr = errInvalidPropertyRequest
	}
	refs, err := parseFolderIDs(op.child(nsMsg, "ParentFolderIds"), false)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx := &itemCtx{sh: sh, ms: c.ms, find: true, mbox: s.isMailbox}
	responseStart(b, "FindItem")
	for _, ref := range refs {
		f, e := s.resolveFolder(c, ref)
		if e == nil {
			e = msgErr
		}
		if e != nil {
			errorMessage(b, "FindItem", e)
			continue
		}
		var all []*item
		if traversal == "Shallow" { // nothing is soft-deleted or associated here
			all = sortedItems(f, keep)
			if less != nil {
				slices.SortStableFunc(all, less)
			}
		}
		from, to, next := view.page(len(all))
		msgStart(b, "FindItem", nil)
		b.open("m:RootFolder", "IndexedPagingOffset", strconv.Itoa(next), "TotalItemsInView", strconv.Itoa(len(all)),
			"IncludesLastItemInRange", strconv.FormatBool(to == len(all)))
		b.open("t:Items")
		for _, it := range all[from:to] {
			writeItem(b, it, ctx)
		}
		b.end("t:Items")
		b.end("m:RootFolder")
		msgEnd(b, "FindItem")
	}
	responseEnd(b, "FindItem")
	return nil
}

// parseSortOrder compiles a SortOrder into a comparison; nil keeps newest first.
func parseSortOrder(n *node) (func(a, b *item) int, error) {
	if n == nil {
		return nil, nil
	}
	if err := checkSeq(n, many(nsTypes, "FieldOrder")); err != nil {
		return nil, err
	}
	type key struct {
		f    field[*item]
		desc bool
	}
	var keys []key
	for _, fo := range n.kids {
		order, err := enumAttr(fo, "Order", false, "Ascending", "Ascending", "Descending")
		if err != nil {
			return nil, err
		}
		f, err := pathField(fo, itemFields)
		if err != nil {
			if _, ok := err.(*ewsError); ok {
				return nil, errUnsupportedSort
			}
			return nil, err
		}
		keys = append(keys, key{f, order == "Descending"})
	}
	return func(a, b *item) int {
		for _, k := range keys {
			c := compareValues(k.f.kind, k.f.get(a), k.f.get(b))
			if k.desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return 0
	}, nil
}
