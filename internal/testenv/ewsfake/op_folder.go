// SPDX-License-Identifier: Apache-2.0

package ewsfake

import "strconv"

// GetFolder: one response message per requested folder, in request order.
func (s *Server) opGetFolder(c *caller, op *node, b *xw) error {
	if err := checkSeq(op, one(nsMsg, "FolderShape"), one(nsMsg, "FolderIds")); err != nil {
		return err
	}
	sh, err := parseFolderShape(op.child(nsMsg, "FolderShape"))
	if err != nil {
		return err
	}
	refs, err := parseFolderIDs(op.child(nsMsg, "FolderIds"), false)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	responseStart(b, "GetFolder")
	for _, ref := range refs {
		f, e := s.resolveFolder(c, ref)
		if e != nil {
			errorMessage(b, "GetFolder", e)
			continue
		}
		msgStart(b, "GetFolder", nil)
		b.open("m:Folders")
		writeFolder(b, f, sh)
		b.end("m:Folders")
		msgEnd(b, "GetFolder")
	}
	responseEnd(b, "GetFolder")
	return nil
}

// FindFolder: Shallow lists children, Deep the whole subtree depth first; paging with
// IndexedPageFolderView. One response message per parent folder.
func (s *Server) opFindFolder(c *caller, op *node, b *xw) error {
	if err := checkSeq(op, one(nsMsg, "FolderShape"), opt(nsMsg, "IndexedPageFolderView", "FractionalPageFolderView"),
		opt(nsMsg, "Restriction"), one(nsMsg, "ParentFolderIds")); err != nil {
		return err
	}
	traversal, err := enumAttr(op, "Traversal", true, "", "Shallow", "Deep", "SoftDeleted")
	if err != nil {
		return err
	}
	sh, err := parseFolderShape(op.child(nsMsg, "FolderShape"))
	if err != nil {
		return err
	}
	if fv := op.child(nsMsg, "FractionalPageFolderView"); fv != nil {
		return schemaFault(fv, "FractionalPageFolderView is not supported by this server; use IndexedPageFolderView.")
	}
	view, err := parsePageView(op.child(nsMsg, "IndexedPageFolderView"))
	if err != nil {
		return err
	}
	var keep func(*folder) bool
	if r := op.child(nsMsg, "Restriction"); r != nil {
		if keep, err = folderRestriction(r); err != nil {
			return err
		}
	}
	refs, err := parseFolderIDs(op.child(nsMsg, "ParentFolderIds"), false)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	responseStart(b, "FindFolder")
	for _, ref := range refs {
		p, e := s.resolveFolder(c, ref)
		if e != nil {
			errorMessage(b, "FindFolder", e)
			continue
		}
		var all []*folder
		if traversal != "SoftDeleted" { // nothing is ever soft-deleted here
			collectFolders(p, traversal == "Deep", &all)
		}
		if keep != nil {
			kept := all[:0]
			for _, f := range all {
				if keep(f) {
					kept = append(kept, f)
				}
			}
			all = kept
		}
		from, to, next := view.page(len(all))
		msgStart(b, "FindFolder", nil)
		b.open("m:RootFolder", "IndexedPagingOffset", strconv.Itoa(next), "TotalItemsInView", strconv.Itoa(len(all)),
			"IncludesLastItemInRange", strconv.FormatBool(to == len(all)))
		b.open("t:Folders")
		for _, f := range all[from:to] {
			writeFolder(b, f, sh)
		}
		b.end("t:Folders")
		b.end("m:RootFolder")
		msgEnd(b, "FindFolder")
	}
	responseEnd(b, "FindFolder")
	return nil
}

func collectFolders(p *folder, deep bool, out *[]*folder) {
	for _, k := range p.kids {
		*out = append(*out, k)
		if deep {
			collectFolders(k, true, out)
		}
	}
}
