// SPDX-License-Identifier: Apache-2.0

package ewsfake

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors of the setup and inspection methods.
var (
	ErrNoMailbox = errors.New("ewsfake: no such mailbox")
	ErrNoFolder  = errors.New("ewsfake: no such folder")
	ErrNoItem    = errors.New("ewsfake: no such item")
	ErrExists    = errors.New("ewsfake: already exists")
)

// mailbox is one user's store. Kept small: the fake must hold tens of thousands.
type mailbox struct {
	num         uint32 // 1-based index in Server.mailboxes, encoded in ids
	smtp        string
	display     string
	guid        string
	acct        *account
	backend     int
	folders     []*folder        // by folder number - 1
	items       map[uint64]*item // live items by number
	nextItem    uint64
	seq         uint64 // last change-log position of any folder
	epoch       uint32 // bumped by InvalidateSyncStates: older sync states are refused
	ewsDisabled bool
	sent        [][]byte
	subs        map[*subscription]struct{}
}

// dist returns a distinguished folder ("inbox", …) or nil. The distinguished
// folders are the first ones created, so a scan is as quick as a map and costs no
// memory per mailbox.
func (mb *mailbox) dist(name string) *folder {
	for _, f := range mb.folders[:min(len(defaultFolders), len(mb.folders))] {
		if f.dist == name {
			return f
		}
	}
	return nil
}

// folder is one mail folder. items is allocated on first use.
type folder struct {
	num     uint32
	id      string
	version uint32
	mbox    *mailbox
	parent  *folder
	kids    []*folder
	name    string
	class   string
	dist    string // distinguished id, "" for user folders
	items   map[uint64]*item
	unread  int
	log     []logEntry // change log for SyncFolderItems, in seq order
}

func (f *folder) changeKey() string { return changeKey(f.version) }

// elementName is the schema element for the folder: Exchange answers with the
// specific folder type for calendar, contacts and task folders.
func (f *folder) elementName() string {
	switch {
	case strings.HasPrefix(f.class, "IPF.Appointment"):
		return "t:CalendarFolder"
	case strings.HasPrefix(f.class, "IPF.Contact"):
		return "t:ContactsFolder"
	case strings.HasPrefix(f.class, "IPF.Task"):
		return "t:TasksFolder"
	}
	return "t:Folder"
}

// hasUnreadCount tells whether the folder's schema type has UnreadCount (FolderType
// and TasksFolderType do; calendar and contacts folders do not).
func (f *folder) hasUnreadCount() bool {
	n := f.elementName()
	return n == "t:Folder" || n == "t:TasksFolder"
}

// The folders every mailbox starts with: distinguished id, display name, class and
// parent (by distinguished id).
var defaultFolders = []struct{ dist, name, class, parent string }{
	{"root", "Root", "", ""},
	{"msgfolderroot", "Top of Information Store", "IPF.Note", "root"},
	{"inbox", "Inbox", "IPF.Note", "msgfolderroot"},
	{"drafts", "Drafts", "IPF.Note", "msgfolderroot"},
	{"sentitems", "Sent Items", "IPF.Note", "msgfolderroot"},
	{"deleteditems", "Deleted Items", "IPF.Note", "msgfolderroot"},
	{"junkemail", "Junk Email", "IPF.Note", "msgfolderroot"},
	{"outbox", "Outbox", "IPF.Note", "msgfolderroot"},
	{"calendar", "Calendar", "IPF.Appointment", "msgfolderroot"},
	{"contacts", "Contacts", "IPF.Contact", "msgfolderroot"},
}

// AddMailbox creates a mailbox with the default folders (root, msgfolderroot, inbox,
// drafts, sentitems, deleteditems, junkemail, outbox, calendar, contacts). login may
// be a UPN (user@domain) or DOMAIN\user; both forms are accepted at login, and so is
// the SMTP address. An empty login means the SMTP address. The display name is the
// local part of the address.
func (s *Server) AddMailbox(smtp, login, password string) error {
	if !strings.Contains(smtp, "@") {
		return fmt.Errorf("ewsfake: AddMailbox: %q is not an SMTP address", smtp)
	}
	if login == "" {
		login = smtp
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	key := strings.ToLower(smtp)
	if s.byAddr[key] != nil {
		return fmt.Errorf("ewsfake: AddMailbox %s: %w", smtp, ErrExists)
	}
	aliases := loginAliases(login, smtp)
	for _, a := range aliases {
		if s.logins[a] != nil {
			return fmt.Errorf("ewsfake: AddMailbox %s: login %s: %w", smtp, a, ErrExists)
		}
	}
	local, _, _ := strings.Cut(smtp, "@")
	mb := &mailbox{
		num:     uint32(len(s.mailboxes) + 1),
		smtp:    smtp,
		display: local,
		guid:    newGUID(),
		backend: homeBackend(key, len(s.backends)),
	}
	mb.acct = &account{login: login, password: password, mbox: mb}
	for _, d := range defaultFolders {
		f := s.newFolder(mb, mb.dist(d.parent), d.name, d.class)
		f.dist = d.dist
	}
	s.mailboxes = append(s.mailboxes, mb)
	s.byAddr[key] = mb
	for _, a := range aliases {
		s.logins[a] = mb.acct
	}
	return nil
}

// newFolder appends a folder to mb. Callers hold s.mu.
func (s *Server) newFolder(mb *mailbox, parent *folder, name, class string) *folder {
	f := &folder{
		num:     uint32(len(mb.folders) + 1),
		version: 1,
		mbox:    mb,
		parent:  parent,
		name:    name,
		class:   class,
	}
	f.id = s.ids.folderID(mb.num, f.num)
	mb.folders = append(mb.folders, f)
	if parent != nil {
		parent.kids = append(parent.kids, f)
		parent.version++
	}
	return f
}

// CreateFolder creates a folder below parent (a folder id or a distinguished id such
// as "inbox" or "msgfolderroot") and returns its id. An empty class means IPF.Note.
// Folder names must be unique among siblings, as in Exchange.
func (s *Server) CreateFolder(smtp, parent, name, class string) (string, error) {
	if class == "" {
		class = "IPF.Note"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	mb, p, err := s.lookupFolder(smtp, parent)
	if err != nil {
		return "", fmt.Errorf("ewsfake: CreateFolder: %w", err)
	}
	for _, k := range p.kids {
		if strings.EqualFold(k.name, name) {
			return "", fmt.Errorf("ewsfake: CreateFolder %q: %w", name, ErrExists)
		}
	}
	f := s.newFolder(mb, p, name, class)
	s.fire(mb, event{kind: evCreated, folderEvent: true, id: f.id, ck: f.changeKey(), parent: p.id, parentCK: p.changeKey(), at: time.Now()})
	return f.id, nil
}

// FolderID returns the id of a distinguished folder ("inbox", "sentitems", …), or ""
// if the mailbox or folder does not exist.
func (s *Server) FolderID(smtp, distinguished string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb := s.byAddr[strings.ToLower(smtp)]
	if mb == nil {
		return ""
	}
	if f := mb.dist(strings.ToLower(distinguished)); f != nil {
		return f.id
	}
	return ""
}

// lookupFolder resolves a folder given by id or distinguished name. Callers hold s.mu.
func (s *Server) lookupFolder(smtp, ref string) (*mailbox, *folder, error) {
	mb := s.byAddr[strings.ToLower(smtp)]
	if mb == nil {
		return nil, nil, fmt.Errorf("%s: %w", smtp, ErrNoMailbox)
	}
	if f := mb.dist(strings.ToLower(ref)); f != nil {
		return mb, f, nil
	}
	m, n, err := s.ids.parseFolderID(ref)
	if err != nil || m != mb.num || n == 0 || int(n) > len(mb.folders) {
		return nil, nil, fmt.Errorf("%s in %s: %w", ref, smtp, ErrNoFolder)
	}
	return mb, mb.folders[n-1], nil
}

// mailboxByNum resolves a mailbox number from an id. Callers hold s.mu.
func (s *Server) mailboxByNum(n uint32) *mailbox {
	if n == 0 || int(n) > len(s.mailboxes) {
		return nil
	}
	return s.mailboxes[n-1]
}

// folderByID resolves an opaque folder id. Callers hold s.mu.
func (s *Server) folderByID(id string) (*folder, *ewsError) {
	m, n, err := s.ids.parseFolderID(id)
	if err != nil {
		return nil, errIDMalformed
	}
	mb := s.mailboxByNum(m)
	if mb == nil || n == 0 || int(n) > len(mb.folders) {
		return nil, errFolderNotFound
	}
	return mb.folders[n-1], nil
}

// itemByID resolves an opaque item id to a live item. Callers hold s.mu.
func (s *Server) itemByID(id string) (*item, *ewsError) {
	m, n, err := s.ids.parseItemID(id)
	if err != nil {
		return nil, errIDMalformed
	}
	mb := s.mailboxByNum(m)
	if mb == nil {
		return nil, errItemNotFound
	}
	it := mb.items[n]
	if it == nil {
		return nil, errItemNotFound
	}
	return it, nil
}
