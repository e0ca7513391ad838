// SPDX-License-Identifier: Apache-2.0

package ewsfake

import "strings"

// Resolution of request ids against what the caller may see. A caller acts on one
// mailbox (its own or the impersonated one); the service account acting as itself
// has full access to every mailbox, like an account with FullAccess rights.

var errNoMailboxMsg = &ewsError{"ErrorNonExistentMailbox", "No mailbox with such guid."}

// mayAccess tells whether c may touch mb. Callers hold s.mu.
func (c *caller) mayAccess(mb *mailbox) bool {
	return mb == c.mbox || (c.acct.service && !c.impersonating)
}

// resolveFolder finds the folder a FolderId or DistinguishedFolderId names. Callers
// hold s.mu.
func (s *Server) resolveFolder(c *caller, ref folderRef) (*folder, *ewsError) {
	if ref.dist != "" {
		mb := c.mbox
		if ref.mailbox != "" {
			mb = s.byAddr[strings.ToLower(ref.mailbox)]
			if mb == nil {
				return nil, errNoMailboxMsg
			}
		}
		if mb == nil {
			return nil, errMissingEmail
		}
		if !c.mayAccess(mb) {
			return nil, errAccessDenied
		}
		f := mb.dist(ref.dist)
		if f == nil {
			return nil, errFolderNotFound
		}
		return f, nil
	}
	f, e := s.folderByID(ref.id)
	if e != nil {
		return nil, e
	}
	if !c.mayAccess(f.mbox) {
		return nil, errAccessDenied
	}
	return f, nil
}

// resolveItem finds the live item an ItemId names. Callers hold s.mu.
func (s *Server) resolveItem(c *caller, ref itemRef) (*item, *ewsError) {
	if !ref.ok {
		return nil, errItemNotFound
	}
	it, e := s.itemByID(ref.id)
	if e != nil {
		return nil, e
	}
	if !c.mayAccess(it.folder.mbox) {
		return nil, errAccessDenied
	}
	return it, nil
}

// isMailbox reports whether an address belongs to a mailbox of the fake. Callers
// hold s.mu.
func (s *Server) isMailbox(email string) bool { return s.byAddr[strings.ToLower(email)] != nil }
