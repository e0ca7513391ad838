// SPDX-License-Identifier: Apache-2.0

package ewsfake

var errCrossMailbox = &ewsError{"ErrorMoveCopyFailed", "Moving or copying items between mailboxes is not supported by this server."}

// MoveItem and CopyItem within one mailbox. As in Exchange, a moved item gets a new
// id (returned, like ReturnNewItemIds asks); the source folder logs a Delete and the
// target a Create, and MovedEvent/CopiedEvent carry the old id.
func (s *Server) opMoveItem(c *caller, op *node, b *xw) error {
	return s.moveCopy(c, op, b, "MoveItem")
}

func (s *Server) opCopyItem(c *caller, op *node, b *xw) error {
	return s.moveCopy(c, op, b, "CopyItem")
}

func (s *Server) moveCopy(c *caller, op *node, b *xw, name string) error {
	if err := checkSeq(op, one(nsMsg, "ToFolderId"), one(nsMsg, "ItemIds"), opt(nsMsg, "ReturnNewItemIds")); err != nil {
		return err
	}
	to, err := parseFolderIDs(op.child(nsMsg, "ToFolderId"), true)
	if err != nil {
		return err
	}
	refs, err := parseItemIDs(op.child(nsMsg, "ItemIds"))
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	responseStart(b, name)
	defer responseEnd(b, name)
	target, e := s.resolveFolder(c, to[0])
	for _, ref := range refs {
		it, e2 := s.resolveItem(c, ref)
		switch {
		case e != nil:
			errorMessage(b, name, e)
			continue
		case e2 != nil:
			errorMessage(b, name, e2)
			continue
		case it.folder.mbox != target.mbox:
			errorMessage(b, name, errCrossMailbox)
			continue
		}
		n := s.moveItem(it, target, name == "CopyItem")
		msgStart(b, name, nil)
		b.open("m:Items")
		b.open(n.hdr.element())
		b.empty("t:ItemId", "Id", n.id, "ChangeKey", n.changeKey())
		b.end(n.hdr.element())
		b.end("m:Items")
		msgEnd(b, name)
	}
	return nil
}
