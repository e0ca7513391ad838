// SPDX-License-Identifier: Apache-2.0

package ewsfake

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// item is one message in a folder. The MIME bytes never change after creation;
// properties a client can change (read flag, categories) live beside them.
type item struct {
	num        uint64
	id         string
	version    uint32
	folder     *folder
	mime       []byte
	hdr        *msgHeader
	received   time.Time
	created    time.Time
	modified   time.Time
	read       bool
	draft      bool
	categories []string
	createSeq  uint64 // change-log position of its creation
	deleted    bool
}

func (it *item) changeKey() string { return changeKey(it.version) }

// changeKind is a SyncFolderItems change.
type changeKind uint8

const (
	chCreate changeKind = iota + 1
	chUpdate
	chDelete
	chReadFlag
)

// logEntry is one change in a folder's log. The item pointer stays valid after the
// item is deleted or moved, so a Delete can still name it.
type logEntry struct {
	seq  uint64
	kind changeKind
	it   *item
}

func (f *folder) record(kind changeKind, it *item) uint64 {
	f.mbox.seq++
	f.log = append(f.log, logEntry{seq: f.mbox.seq, kind: kind, it: it})
	return f.mbox.seq
}

// Item is a snapshot of a stored message, for tests.
type Item struct {
	ID                string
	ChangeKey         string
	FolderID          string
	MIME              []byte
	Received          time.Time
	Size              int
	Subject           string
	InternetMessageID string
	IsRead            bool
	IsDraft           bool
	Categories        []string
}

func (it *item) snapshot() Item {
	return Item{
		ID:                it.id,
		ChangeKey:         it.changeKey(),
		FolderID:          it.folder.id,
		MIME:              it.mime,
		Received:          it.received,
		Size:              len(it.mime),
		Subject:           it.hdr.subject,
		InternetMessageID: it.hdr.messageID,
		IsRead:            it.read,
		IsDraft:           it.draft,
		Categories:        slices.Clone(it.categories),
	}
}

// Deliver stores a message as transport delivery would: into folder (an id or a
// distinguished id such as "inbox"), unread, DateTimeReceived now, and fires
// CreatedEvent, NewMailEvent and a ModifiedEvent for the folder. It returns the new
// item's id.
func (s *Server) Deliver(smtp, folder string, mime []byte) (string, error) {
	hdr := parseHeader(mime)
	s.mu.Lock()
	defer s.mu.Unlock()
	_, f, err := s.lookupFolder(smtp, folder)
	if err != nil {
		return "", fmt.Errorf("ewsfake: Deliver: %w", err)
	}
	it := s.addItem(f, slices.Clone(mime), hdr, false, true)
	return it.id, nil
}

// addItem stores a new item in f and fires its events. newMail marks a transport
// delivery (NewMailEvent); drafts are created read. Callers hold s.mu.
func (s *Server) addItem(f *folder, mime []byte, hdr *msgHeader, draft, newMail bool) *item {
	mb := f.mbox
	mb.nextItem++
	now := time.Now().UTC().Truncate(time.Millisecond)
	it := &item{
		num:      mb.nextItem,
		version:  1,
		folder:   f,
		mime:     mime,
		hdr:      hdr,
		received: now,
		created:  now,
		modified: now,
		draft:    draft,
		read:     draft || !newMail,
	}
	it.id = s.ids.itemID(mb.num, it.num)
	s.insert(f, it)
	if newMail {
		s.fire(mb, event{kind: evNewMail, id: it.id, ck: it.changeKey(), parent: f.id, parentCK: f.changeKey(), at: now})
	}
	s.folderModified(f, now)
	return it
}

// insert links it into f, logs the creation and fires CreatedEvent. Callers hold s.mu.
func (s *Server) insert(f *folder, it *item) {
	if f.items == nil {
		f.items = make(map[uint64]*item)
	}
	it.folder = f
	f.items[it.num] = it
	if f.mbox.items == nil {
		f.mbox.items = make(map[uint64]*item)
	}
	f.mbox.items[it.num] = it
	if !it.read {
		f.unread++
	}
	it.createSeq = f.record(chCreate, it)
	s.fire(f.mbox, event{kind: evCreated, id: it.id, ck: it.changeKey(), parent: f.id, parentCK: f.changeKey(), at: it.created})
}

// unlink removes it from its folder (deleted or moved away) and logs a Delete.
// Callers hold s.mu.
func (s *Server) unlink(it *item) {
	f := it.folder
	delete(f.items, it.num)
	delete(f.mbox.items, it.num)
	if !it.read {
		f.unread--
	}
	it.deleted = true
	f.record(chDelete, it)
}

// folderModified bumps the folder's change key and fires its ModifiedEvent with the
// unread count, as Exchange does after every change of its contents.
func (s *Server) folderModified(f *folder, now time.Time) {
	f.version++
	ev := event{kind: evModified, folderEvent: true, id: f.id, ck: f.changeKey(), unread: f.unread, hasUnread: true, at: now}
	if f.parent != nil {
		ev.parent, ev.parentCK = f.parent.id, f.parent.changeKey()
	}
	s.fire(f.mbox, ev)
}

// Items returns snapshots of the items in a folder (id or distinguished id), newest
// first.
func (s *Server) Items(smtp, folder string) ([]Item, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, f, err := s.lookupFolder(smtp, folder)
	if err != nil {
		return nil, fmt.Errorf("ewsfake: Items: %w", err)
	}
	out := make([]Item, 0, len(f.items))
	for _, it := range sortedItems(f, nil) {
		out = append(out, it.snapshot())
	}
	return out, nil
}

// Item returns a snapshot of one item of the mailbox.
func (s *Server) Item(smtp, id string) (Item, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, err := s.ownItem(smtp, id)
	if err != nil {
		return Item{}, fmt.Errorf("ewsfake: Item: %w", err)
	}
	return it.snapshot(), nil
}

// Sent returns the MIME of every message the mailbox sent through CreateItem
// (SendOnly or SendAndSaveCopy), oldest first, as transmitted (without Bcc header).
func (s *Server) Sent(smtp string) ([][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb := s.byAddr[strings.ToLower(smtp)]
	if mb == nil {
		return nil, fmt.Errorf("ewsfake: Sent %s: %w", smtp, ErrNoMailbox)
	}
	return slices.Clone(mb.sent), nil
}

// Delete removes an item for good (a hard delete) and fires DeletedEvent and the
// folder's ModifiedEvent.
func (s *Server) Delete(smtp, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, err := s.ownItem(smtp, id)
	if err != nil {
		return fmt.Errorf("ewsfake: Delete: %w", err)
	}
	s.hardDelete(it)
	return nil
}

// hardDelete removes it and fires its events. Callers hold s.mu.
func (s *Server) hardDelete(it *item) {
	f := it.folder
	s.unlink(it)
	now := time.Now().UTC()
	s.fire(f.mbox, event{kind: evDeleted, id: it.id, ck: it.changeKey(), parent: f.id, parentCK: f.changeKey(), at: now})
	s.folderModified(f, now)
}

// Move moves an item to another folder (id or distinguished id) of the same mailbox
// and returns its new id: as in Exchange, an item's id changes when it moves. Fires
// MovedEvent (with the old id and folder) and ModifiedEvents for both folders.
func (s *Server) Move(smtp, id, folder string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, err := s.ownItem(smtp, id)
	if err != nil {
		return "", fmt.Errorf("ewsfake: Move: %w", err)
	}
	_, to, err := s.lookupFolder(smtp, folder)
	if err != nil {
		return "", fmt.Errorf("ewsfake: Move: %w", err)
	}
	return s.moveItem(it, to, false).id, nil
}

// Copy copies an item to a folder of the same mailbox and returns the copy's id;
// fires CopiedEvent.
func (s *Server) Copy(smtp, id, folder string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, err := s.ownItem(smtp, id)
	if err != nil {
		return "", fmt.Errorf("ewsfake: Copy: %w", err)
	}
	_, to, err := s.lookupFolder(smtp, folder)
	if err != nil {
		return "", fmt.Errorf("ewsfake: Copy: %w", err)
	}
	return s.moveItem(it, to, true).id, nil
}

// moveItem moves or copies it into to and returns the new item. Callers hold s.mu.
func (s *Server) moveItem(it *item, to *folder, copyOnly bool) *item {
	from := it.folder
	mb := from.mbox
	mb.nextItem++
	n := &item{
		num:        mb.nextItem,
		version:    1,
		mime:       it.mime,
		hdr:        it.hdr,
		received:   it.received,
		created:    time.Now().UTC().Truncate(time.Millisecond),
		modified:   it.modified,
		read:       it.read,
		draft:      it.draft,
		categories: slices.Clone(it.categories),
	}
	n.id = s.ids.itemID(mb.num, n.num)
	if !copyOnly {
		s.unlink(it)
	}
	s.insert(to, n)
	kind := evMoved
	if copyOnly {
		kind = evCopied
	}
	s.fire(mb, event{kind: kind, id: n.id, ck: n.changeKey(), parent: to.id, parentCK: to.changeKey(),
		oldID: it.id, oldCK: it.changeKey(), oldParent: from.id, oldParentCK: from.changeKey(), at: n.created})
	if !copyOnly {
		s.folderModified(from, n.created)
	}
	s.folderModified(to, n.created)
	return n
}

// MarkRead sets an item's read flag, as a client would through UpdateItem.
func (s *Server) MarkRead(smtp, id string, read bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, err := s.ownItem(smtp, id)
	if err != nil {
		return fmt.Errorf("ewsfake: MarkRead: %w", err)
	}
	s.setRead(it, read)
	return nil
}

// setRead changes the read flag, logging a ReadFlagChange and firing a ModifiedEvent
// for the item and its folder. Callers hold s.mu.
func (s *Server) setRead(it *item, read bool) {
	if it.read == read {
		return
	}
	it.read = read
	if read {
		it.folder.unread--
	} else {
		it.folder.unread++
	}
	s.itemModified(it, chReadFlag)
}

// itemModified bumps the item's change key, logs the change and fires the events.
// Callers hold s.mu.
func (s *Server) itemModified(it *item, kind changeKind) {
	it.version++
	f := it.folder
	f.record(kind, it)
	now := time.Now().UTC()
	it.modified = now.Truncate(time.Millisecond)
	s.fire(f.mbox, event{kind: evModified, id: it.id, ck: it.changeKey(), parent: f.id, parentCK: f.changeKey(), at: now})
	s.folderModified(f, now)
}

// ownItem finds a live item of the given mailbox. Callers hold s.mu.
func (s *Server) ownItem(smtp, id string) (*item, error) {
	mb := s.byAddr[strings.ToLower(smtp)]
	if mb == nil {
		return nil, fmt.Errorf("%s: %w", smtp, ErrNoMailbox)
	}
	it, e := s.itemByID(id)
	if e != nil || it.folder.mbox != mb {
		return nil, fmt.Errorf("%s in %s: %w", id, smtp, ErrNoItem)
	}
	return it, nil
}

// sortedItems returns f's live items newest first (DateTimeReceived, then creation
// order), optionally filtered. Callers hold s.mu.
func sortedItems(f *folder, keep func(*item) bool) []*item {
	out := make([]*item, 0, len(f.items))
	for _, it := range f.items {
		if keep == nil || keep(it) {
			out = append(out, it)
		}
	}
	slices.SortFunc(out, newestFirst)
	return out
}

func newestFirst(a, b *item) int {
	if c := b.received.Compare(a.received); c != 0 {
		return c
	}
	switch {
	case a.num > b.num:
		return -1
	case a.num < b.num:
		return 1
	}
	return 0
}
