// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"sort"
	"sync"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Memory is the embedded single-process store. It is safe for concurrent use.
// State is lost when the process exits; a restarted node re-learns mailboxes
// from the client's failover calls and starts each folder at its current UIDNEXT.
type Memory struct {
	mu        sync.RWMutex
	mailboxes map[mail.MailboxID]*mail.Mailbox
	cursors   map[mail.MailboxID]map[string]mail.Cursor
	statuses  map[mail.MailboxID]mail.Status
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{
		mailboxes: make(map[mail.MailboxID]*mail.Mailbox),
		cursors:   make(map[mail.MailboxID]map[string]mail.Cursor),
		statuses:  make(map[mail.MailboxID]mail.Status),
	}
}

// PutMailbox registers or replaces a mailbox. Cursors and status are kept.
func (s *Memory) PutMailbox(_ context.Context, m *mail.Mailbox) error {
	if m.ID == "" {
		return ErrInvalidID
	}
	s.mu.Lock()
	s.mailboxes[m.ID] = cloneMailbox(m)
	s.mu.Unlock()
	return nil
}

// Mailbox returns a copy of the registered mailbox, or ErrNotFound.
func (s *Memory) Mailbox(_ context.Context, id mail.MailboxID) (*mail.Mailbox, error) {
	s.mu.RLock()
	m, ok := s.mailboxes[id]
	s.mu.RUnlock()
	if !ok {
		return nil, ErrNotFound
	}
	return cloneMailbox(m), nil
}

// Mailboxes returns copies of every registered mailbox, ordered by id.
func (s *Memory) Mailboxes(_ context.Context) ([]*mail.Mailbox, error) {
	s.mu.RLock()
	out := make([]*mail.Mailbox, 0, len(s.mailboxes))
	for _, m := range s.mailboxes {
		out = append(out, cloneMailbox(m))
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// DeleteMailbox forgets a mailbox, its cursors and its status. Unknown ids are
// not an error.
func (s *Memory) DeleteMailbox(_ context.Context, id mail.MailboxID) error {
	s.mu.Lock()
	delete(s.mailboxes, id)
	delete(s.cursors, id)
	delete(s.statuses, id)
	s.mu.Unlock()
	return nil
}

// Cursor returns the cursor of one folder and whether it exists.
func (s *Memory) Cursor(_ context.Context, id mail.MailboxID, folder string) (mail.Cursor, bool, error) {
	s.mu.RLock()
	c, ok := s.cursors[id][folder]
	s.mu.RUnlock()
	return c, ok, nil
}

// PutCursor stores the cursor of one folder unless c.Fence is lower than the
// fence stored with it (ErrStaleFence). Fence 0 everywhere, as a single node
// writes, always succeeds.
func (s *Memory) PutCursor(_ context.Context, id mail.MailboxID, folder string, c mail.Cursor) error {
	if id == "" {
		return ErrInvalidID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fc := s.cursors[id]
	if fc == nil {
		fc = make(map[string]mail.Cursor)
		s.cursors[id] = fc
	}
	if old, ok := fc[folder]; ok && c.Fence < old.Fence {
		return staleFence(id, folder, c.Fence, old.Fence)
	}
	fc[folder] = c
	return nil
}

// PutStatus replaces the status record of a mailbox.
func (s *Memory) PutStatus(_ context.Context, id mail.MailboxID, st mail.Status) error {
	if id == "" {
		return ErrInvalidID
	}
	st = normStatus(st)
	s.mu.Lock()
	s.statuses[id] = st
	s.mu.Unlock()
	return nil
}

// Statuses returns the status records of the given mailboxes; ids without one
// are absent from the map.
func (s *Memory) Statuses(_ context.Context, ids []mail.MailboxID) (map[mail.MailboxID]mail.Status, error) {
	out := make(map[mail.MailboxID]mail.Status, len(ids))
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, id := range ids {
		if st, ok := s.statuses[id]; ok {
			st.Folders = cloneSlice(st.Folders)
			out[id] = st
		}
	}
	return out, nil
}
