// SPDX-License-Identifier: Apache-2.0

package graphfake

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// wellKnownFolders are the folders AddMailbox creates, in creation order, with
// their display names. msgfolderroot ("Top of Information Store") is the parent
// of the others; Graph's /mailFolders lists its children.
var wellKnownFolders = []struct{ name, display string }{
	{"msgfolderroot", "Top of Information Store"},
	{"inbox", "Inbox"},
	{"sentitems", "Sent Items"},
	{"drafts", "Drafts"},
	{"deleteditems", "Deleted Items"},
	{"junkemail", "Junk Email"},
	{"archive", "Archive"},
	{"outbox", "Outbox"},
}

// mailbox is one user and its mail. Guarded by Server.mu.
type mailbox struct {
	num     uint32
	id      string // user object id (GUID)
	upn     string
	folders map[uint32]*folder
	order   []*folder // creation order, for listings
	wk      map[string]*folder
	msgs    map[uint64]*message
	subs    map[*subscription]struct{}
	sent    [][]byte

	nextFolder uint32
	nextMsg    uint64
	// changeNum numbers every modification of a message in the mailbox; a
	// message's version is the number of its last change, so change keys differ
	// across messages and versions.
	changeNum uint32
	// epoch is bumped by ExpireDeltaTokens; tokens carry the epoch they were
	// issued in, and older ones are refused.
	epoch uint32

	// Throttling state.
	inflight int
	winStart time.Time
	winCount int
}

// folder is a mail folder with its change log. Guarded by Server.mu.
type folder struct {
	mbox      *mailbox
	num       uint32
	id        string
	name      string
	parent    *folder // nil for msgfolderroot
	wellKnown string
	hidden    bool
	msgs      map[uint64]*message
	// log holds the folder's latest changes, oldest first, for delta tokens. seq
	// is the number of the last change ever logged; dropped the number of the
	// last change dropped from the front of log (log[0].seq == dropped+1). A delta
	// token at position p is good while p >= dropped.
	log     []change
	seq     uint64
	dropped uint64
}

type changeKind uint8

const (
	chCreated changeKind = iota + 1
	chUpdated
	chDeleted // deleted, or moved to another folder
)

func (k changeKind) String() string {
	switch k {
	case chCreated:
		return "created"
	case chUpdated:
		return "updated"
	}
	return "deleted"
}

type change struct {
	seq  uint64
	msg  uint64
	kind changeKind
}

// message is a stored message. Guarded by Server.mu.
type message struct {
	num     uint64
	folder  *folder
	gen     uint32 // moves, for default (REST) ids
	entered uint64 // the folder's seq when it entered its folder
	mime    []byte
	hdr     *msgHeader
	// received is receivedDateTime; created and modified are createdDateTime and
	// lastModifiedDateTime.
	received, created, modified time.Time
	version                     uint32
	read                        bool
	categories                  []string
}

// Message is a snapshot of a stored message.
type Message struct {
	ID                string // immutable id
	FolderID          string
	Received          time.Time
	Subject           string
	InternetMessageID string
	Categories        []string
	MIME              []byte
	IsRead            bool
}

func (s *Server) snapshot(m *message) Message {
	return Message{
		ID:                s.msgID(m),
		FolderID:          m.folder.id,
		Received:          m.received,
		Subject:           m.hdr.subject,
		InternetMessageID: m.hdr.messageID,
		Categories:        slices.Clone(m.categories),
		MIME:              slices.Clone(m.mime),
		IsRead:            m.read,
	}
}

// msgID is the immutable id of m, the only kind the fake hands out: immutable ids
// survive moves, which is what clients asking for them want, and a fake that
// never changes ids cannot hide a client's mixing of id kinds either way.
func (s *Server) msgID(m *message) string { return s.immutableID(m.folder.mbox, m.num) }

func (s *Server) immutableID(mb *mailbox, num uint64) string {
	return s.ids.id(objRef{immutable: true, mbox: mb.num, num: num})
}

// AddMailbox creates a user with a random object id and the well-known folders.
// The UPN doubles as the primary SMTP address.
func (s *Server) AddMailbox(upn string) error {
	if upn == "" || strings.ContainsAny(upn, "/?#\\ ") {
		return fmt.Errorf("graphfake: AddMailbox %q: bad user principal name", upn)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	key := strings.ToLower(upn)
	if s.byName[key] != nil {
		return fmt.Errorf("graphfake: AddMailbox %s: already exists", upn)
	}
	mb := &mailbox{
		num:     uint32(len(s.mailboxes) + 1),
		id:      newGUID(),
		upn:     upn,
		folders: make(map[uint32]*folder),
		wk:      make(map[string]*folder),
		msgs:    make(map[uint64]*message),
		subs:    make(map[*subscription]struct{}),
	}
	s.mailboxes = append(s.mailboxes, mb)
	s.byName[key] = mb
	s.byName[mb.id] = mb
	var root *folder
	for _, w := range wellKnownFolders {
		f := s.newFolder(mb, root, w.display)
		f.wellKnown = w.name
		mb.wk[w.name] = f
		if root == nil {
			root = f
		}
	}
	return nil
}

// newFolder creates a folder. Callers hold s.mu.
func (s *Server) newFolder(mb *mailbox, parent *folder, name string) *folder {
	mb.nextFolder++
	f := &folder{mbox: mb, num: mb.nextFolder, name: name, parent: parent, msgs: make(map[uint64]*message)}
	f.id = s.ids.id(objRef{folder: true, mbox: mb.num, num: uint64(f.num)})
	mb.folders[f.num] = f
	mb.order = append(mb.order, f)
	return f
}

// CreateFolder creates a folder under parent (an id or well-known name; "" means
// msgfolderroot, a top-level folder) and returns its id.
func (s *Server) CreateFolder(upn, parentID, displayName string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb := s.byName[strings.ToLower(upn)]
	if mb == nil {
		return "", fmt.Errorf("graphfake: CreateFolder %s: %w", upn, ErrNoMailbox)
	}
	if parentID == "" {
		parentID = "msgfolderroot"
	}
	parent := s.lookupFolder(mb, parentID)
	if parent == nil {
		return "", fmt.Errorf("graphfake: CreateFolder %s %s: %w", upn, parentID, ErrNotFound)
	}
	if displayName == "" || childNamed(parent, displayName) != nil {
		return "", fmt.Errorf("graphfake: CreateFolder %s %q: empty or existing name", upn, displayName)
	}
	return s.newFolder(mb, parent, displayName).id, nil
}

func childNamed(parent *folder, name string) *folder {
	for _, f := range parent.mbox.order {
		if f.parent == parent && strings.EqualFold(f.name, name) {
			return f
		}
	}
	return nil
}

// FolderID returns the id of a well-known folder ("inbox", "sentitems", …), or ""
// if the mailbox or folder does not exist.
func (s *Server) FolderID(upn, wellKnown string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb := s.byName[strings.ToLower(upn)]
	if mb == nil {
		return ""
	}
	if f := mb.wk[strings.ToLower(wellKnown)]; f != nil {
		return f.id
	}
	return ""
}

// UserID returns the object id of a mailbox's user, or "".
func (s *Server) UserID(upn string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if mb := s.byName[strings.ToLower(upn)]; mb != nil {
		return mb.id
	}
	return ""
}

// lookupFolder resolves an id or well-known name within mb. Callers hold s.mu.
func (s *Server) lookupFolder(mb *mailbox, ref string) *folder {
	if f := mb.wk[strings.ToLower(ref)]; f != nil {
		return f
	}
	r, err := s.ids.parseID(ref)
	if err != nil || !r.folder || r.mbox != mb.num {
		return nil
	}
	return mb.folders[uint32(r.num)]
}

// lookupMessage resolves a message id (immutable or default) within mb. Callers
// hold s.mu. malformed tells a garbled id from one of a message that is gone.
func (s *Server) lookupMessage(mb *mailbox, id string) (m *message, malformed bool) {
	r, err := s.ids.parseID(id)
	if err != nil || r.folder {
		return nil, true
	}
	if r.mbox != mb.num {
		return nil, false
	}
	m = mb.msgs[r.num]
	if m == nil || (!r.immutable && r.gen != m.gen) {
		return nil, false
	}
	return m, false
}

// Deliver stores a message as transport delivery would: into a folder (an id or
// well-known name), unread, receivedDateTime Options.Now() truncated to seconds.
// It logs a "created" change for delta queries and notifies subscriptions, and
// returns the message's immutable id. The header is parsed forgivingly: a
// message without a usable header is stored with empty properties.
func (s *Server) Deliver(upn, folderIDOrWellKnown string, mime []byte) (string, error) {
	return s.DeliverAt(upn, folderIDOrWellKnown, mime, s.opts.Now())
}

// DeliverAt is Deliver with a given receivedDateTime (truncated to seconds).
func (s *Server) DeliverAt(upn, folder string, mime []byte, received time.Time) (string, error) {
	hdr := parseMessage(mime)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", errClosed
	}
	mb := s.byName[strings.ToLower(upn)]
	if mb == nil {
		return "", fmt.Errorf("graphfake: Deliver %s: %w", upn, ErrNoMailbox)
	}
	f := s.lookupFolder(mb, folder)
	if f == nil {
		return "", fmt.Errorf("graphfake: Deliver %s %s: %w", upn, folder, ErrNotFound)
	}
	m := s.addMessage(f, slices.Clone(mime), hdr, received.UTC().Truncate(time.Second), false)
	return s.msgID(m), nil
}

// addMessage stores a new message in f, logs and notifies its creation. Callers
// hold s.mu.
func (s *Server) addMessage(f *folder, mime []byte, hdr *msgHeader, received time.Time, read bool) *message {
	mb := f.mbox
	mb.nextMsg++
	now := s.opts.Now().UTC().Truncate(time.Second)
	mb.changeNum++
	m := &message{num: mb.nextMsg, mime: mime, hdr: hdr, received: received, created: now, modified: now, read: read,
		version: mb.changeNum}
	mb.msgs[m.num] = m
	s.link(f, m)
	return m
}

// link puts m into f and logs and notifies "created". Callers hold s.mu.
func (s *Server) link(f *folder, m *message) {
	m.folder = f
	f.msgs[m.num] = m
	s.logChange(f, m.num, chCreated)
	m.entered = f.seq
	s.notifyChange(f, m, chCreated)
}

// unlink takes m out of its folder and logs and notifies "deleted". Callers hold
// s.mu.
func (s *Server) unlink(m *message) {
	f := m.folder
	delete(f.msgs, m.num)
	s.logChange(f, m.num, chDeleted)
	s.notifyChange(f, m, chDeleted)
}

// bump gives m a new version (change key). Callers hold s.mu.
func (s *Server) bump(m *message) {
	mb := m.folder.mbox
	mb.changeNum++
	m.version = mb.changeNum
}

// updated records a change of m's properties. Callers hold s.mu.
func (s *Server) updated(m *message) {
	s.bump(m)
	m.modified = s.opts.Now().UTC().Truncate(time.Second)
	s.logChange(m.folder, m.num, chUpdated)
	s.notifyChange(m.folder, m, chUpdated)
}

// logChange appends to f's change log, dropping the oldest entries beyond
// Options.DeltaLogLimit. Callers hold s.mu.
func (s *Server) logChange(f *folder, num uint64, kind changeKind) {
	f.seq++
	f.log = append(f.log, change{seq: f.seq, msg: num, kind: kind})
	if over := len(f.log) - s.opts.DeltaLogLimit; over > 0 {
		f.dropped = f.log[over-1].seq
		f.log = f.log[over:]
	}
}

// move moves m to another folder of its mailbox: "deleted" in the old folder's
// log, "created" in the new one's. The immutable id stays; the default id changes.
// Callers hold s.mu.
func (s *Server) move(m *message, to *folder) {
	if m.folder == to {
		return
	}
	s.unlink(m)
	m.gen++
	s.bump(m)
	m.modified = s.opts.Now().UTC().Truncate(time.Second)
	s.link(to, m)
}

// hardDelete removes m for good. Callers hold s.mu.
func (s *Server) hardDelete(m *message) {
	s.unlink(m)
	delete(m.folder.mbox.msgs, m.num)
}

// ownMessage finds a message of a mailbox by id for the setup methods. Callers
// hold s.mu.
func (s *Server) ownMessage(upn, id string) (*message, error) {
	mb := s.byName[strings.ToLower(upn)]
	if mb == nil {
		return nil, fmt.Errorf("%s: %w", upn, ErrNoMailbox)
	}
	m, _ := s.lookupMessage(mb, id)
	if m == nil {
		return nil, fmt.Errorf("message %s: %w", id, ErrNotFound)
	}
	return m, nil
}

// Delete removes a message for good (a hard delete, not a move to Deleted Items):
// delta queries of its folder report it as @removed with reason "deleted".
func (s *Server) Delete(upn, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.ownMessage(upn, id)
	if err != nil {
		return fmt.Errorf("graphfake: Delete: %w", err)
	}
	s.hardDelete(m)
	return nil
}

// Move moves a message to another folder (id or well-known name) of its mailbox.
// Its immutable id does not change.
func (s *Server) Move(upn, id, folder string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.ownMessage(upn, id)
	if err != nil {
		return fmt.Errorf("graphfake: Move: %w", err)
	}
	to := s.lookupFolder(m.folder.mbox, folder)
	if to == nil {
		return fmt.Errorf("graphfake: Move to %s: %w", folder, ErrNotFound)
	}
	s.move(m, to)
	return nil
}

// MarkRead sets a message's isRead, an "updated" change.
func (s *Server) MarkRead(upn, id string, read bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.ownMessage(upn, id)
	if err != nil {
		return fmt.Errorf("graphfake: MarkRead: %w", err)
	}
	if m.read != read {
		m.read = read
		s.updated(m)
	}
	return nil
}

// Message returns a snapshot of a message, by immutable or default id.
func (s *Server) Message(upn, id string) (Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.ownMessage(upn, id)
	if err != nil {
		return Message{}, fmt.Errorf("graphfake: Message: %w", err)
	}
	return s.snapshot(m), nil
}

// Messages returns snapshots of the messages in a folder (id or well-known name),
// oldest first.
func (s *Server) Messages(upn, folder string) ([]Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb := s.byName[strings.ToLower(upn)]
	if mb == nil {
		return nil, fmt.Errorf("graphfake: Messages %s: %w", upn, ErrNoMailbox)
	}
	f := s.lookupFolder(mb, folder)
	if f == nil {
		return nil, fmt.Errorf("graphfake: Messages %s %s: %w", upn, folder, ErrNotFound)
	}
	ms := sortedMessages(f)
	out := make([]Message, len(ms))
	for i, m := range ms {
		out[i] = s.snapshot(m)
	}
	return out, nil
}

// sortedMessages lists f's messages in delivery order. Callers hold s.mu.
func sortedMessages(f *folder) []*message {
	ms := make([]*message, 0, len(f.msgs))
	for _, m := range f.msgs {
		ms = append(ms, m)
	}
	slices.SortFunc(ms, func(a, b *message) int {
		switch {
		case a.num < b.num:
			return -1
		case a.num > b.num:
			return 1
		}
		return 0
	})
	return ms
}

// Sent returns the MIME of every message the mailbox sent with sendMail, oldest
// first, as transmitted (without a Bcc header).
func (s *Server) Sent(upn string) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb := s.byName[strings.ToLower(upn)]
	if mb == nil {
		return nil
	}
	out := make([][]byte, len(mb.sent))
	for i, b := range mb.sent {
		out[i] = slices.Clone(b)
	}
	return out
}

// EWSFolderID renders a folder id (or well-known name) of a mailbox as an EWS id,
// the form an EWS client stored before moving to Graph; translateExchangeIds
// turns it back. It returns "" for an unknown mailbox or folder.
func (s *Server) EWSFolderID(upn, folderID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb := s.byName[strings.ToLower(upn)]
	if mb == nil {
		return ""
	}
	f := s.lookupFolder(mb, folderID)
	if f == nil {
		return ""
	}
	return s.ids.format(objRef{folder: true, mbox: mb.num, num: uint64(f.num)}, fmtEWS)
}

// EWSMessageID renders a message id of a mailbox as an EWS id (of the message's
// current location), or "".
func (s *Server) EWSMessageID(upn, id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.ownMessage(upn, id)
	if err != nil {
		return ""
	}
	return s.ids.format(objRef{mbox: m.folder.mbox.num, num: m.num, gen: m.gen}, fmtEWS)
}
