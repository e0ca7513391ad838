// SPDX-License-Identifier: Apache-2.0

package ewsfake

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// SyncFolderItems. A sync state is a position in the folder's change log. The first
// call (no state) enumerates the folder's items newest first as Create changes,
// paged by MaxChangesReturned with a cursor in the state; after that, each call
// returns the log entries after the state's position. Within one response, changes
// to the same item are merged (Create absorbs later updates; Create then Delete
// cancel out). Across responses the same item may appear again, which clients must
// tolerate anyway.

type syncChange struct {
	kind changeKind
	it   *item
}

func (s *Server) opSyncFolderItems(c *caller, op *node, b *xw) error {
	if err := checkSeq(op, one(nsMsg, "ItemShape"), one(nsMsg, "SyncFolderId"), opt(nsMsg, "SyncState"),
		opt(nsMsg, "Ignore"), one(nsMsg, "MaxChangesReturned"), opt(nsMsg, "SyncScope")); err != nil {
		return err
	}
	sh, err := parseItemShape(op.child(nsMsg, "ItemShape"))
	if err != nil {
		return err
	}
	refs, err := parseFolderIDs(op.child(nsMsg, "SyncFolderId"), true)
	if err != nil {
		return err
	}
	maxN, err := intText(op.child(nsMsg, "MaxChangesReturned"), 1, 512)
	if err != nil {
		return err
	}
	if sc := op.child(nsMsg, "SyncScope"); sc != nil {
		if _, err := enumText(sc, "NormalItems", "NormalAndAssociatedItems"); err != nil {
			return err
		}
	}
	ignore := map[string]bool{}
	if ig := op.child(nsMsg, "Ignore"); ig != nil && len(ig.kids) > 0 {
		ids, err := parseItemIDs(ig)
		if err != nil {
			return err
		}
		for _, r := range ids {
			ignore[r.id] = true
		}
	}
	stateText := op.child(nsMsg, "SyncState").value()

	s.mu.Lock()
	defer s.mu.Unlock()
	responseStart(b, "SyncFolderItems")
	defer responseEnd(b, "SyncFolderItems")
	// Clients (exchangelib by default) ask for every property, MimeContent and
	// Attachments included, and Exchange accepts that; like FindItem, it returns no
	// MIME and at most the start of the body.
	f, e := s.resolveFolder(c, refs[0])
	if e != nil {
		errorMessage(b, "SyncFolderItems", e)
		return nil
	}
	mb := f.mbox
	st := syncState{mbox: mb.num, folder: f.num, epoch: mb.epoch, initial: true, base: mb.seq}
	if strings.TrimSpace(stateText) != "" {
		st, err = s.ids.parseSyncState(stateText)
		if err != nil || st.mbox != mb.num || st.folder != f.num || st.epoch != mb.epoch || st.base > mb.seq || st.seq > mb.seq {
			errorMessage(b, "SyncFolderItems", errInvalidSyncState)
			return nil
		}
	}
	changes, st, last := syncPage(f, st, maxN, ignore)

	msgStart(b, "SyncFolderItems", nil)
	b.leaf("m:SyncState", s.ids.syncState(st))
	b.leaf("m:IncludesLastItemInRange", strconv.FormatBool(last))
	b.open("m:Changes")
	ctx := &itemCtx{sh: sh, ms: c.ms, find: true, mbox: s.isMailbox}
	for _, ch := range changes {
		switch ch.kind {
		case chCreate, chUpdate:
			name := "t:Create"
			if ch.kind == chUpdate {
				name = "t:Update"
			}
			b.open(name)
			writeItem(b, ch.it, ctx)
			b.end(name)
		case chDelete:
			b.open("t:Delete")
			b.empty("t:ItemId", "Id", ch.it.id, "ChangeKey", ch.it.changeKey())
			b.end("t:Delete")
		case chReadFlag:
			b.open("t:ReadFlagChange")
			b.empty("t:ItemId", "Id", ch.it.id, "ChangeKey", ch.it.changeKey())
			b.leaf("t:IsRead", strconv.FormatBool(ch.it.read))
			b.end("t:ReadFlagChange")
		default:
			panic(fmt.Sprintf("ewsfake: unknown change kind %d", ch.kind))
		}
	}
	b.end("m:Changes")
	msgEnd(b, "SyncFolderItems")
	return nil
}

// syncPage computes one page of changes from st and returns them, the next state and
// whether the client is now up to date. Callers hold s.mu.
func syncPage(f *folder, st syncState, maxN int, ignore map[string]bool) ([]syncChange, syncState, bool) {
	var out []syncChange
	budget := maxN
	if st.initial {
		cursorSet := st.cursorItem != 0
		items := sortedItems(f, func(it *item) bool {
			if it.createSeq > st.base || ignore[it.id] {
				return false
			}
			if !cursorSet {
				return true
			}
			// strictly older than the cursor in newest-first order
			return it.received.UnixNano() < st.cursorTime ||
				(it.received.UnixNano() == st.cursorTime && it.num < st.cursorItem)
		})
		n := min(len(items), budget)
		for _, it := range items[:n] {
			out = append(out, syncChange{chCreate, it})
		}
		budget -= n
		if n > 0 {
			st.cursorTime, st.cursorItem = items[n-1].received.UnixNano(), items[n-1].num
		}
		if n < len(items) {
			return out, st, false
		}
		st.initial, st.seq, st.cursorTime, st.cursorItem = false, st.base, 0, 0
	}
	i := sort.Search(len(f.log), func(i int) bool { return f.log[i].seq > st.seq })
	index := map[*item]int{}
	for ; i < len(f.log) && budget > 0; i++ {
		e := f.log[i]
		st.seq = e.seq
		budget--
		if ignore[e.it.id] {
			continue
		}
		if j, ok := index[e.it]; ok {
			out[j] = merge(out[j], e.kind)
			continue
		}
		index[e.it] = len(out)
		out = append(out, syncChange{e.kind, e.it})
	}
	kept := out[:0]
	for _, ch := range out {
		if ch.kind != 0 {
			kept = append(kept, ch)
		}
	}
	return kept, st, i >= len(f.log)
}

// merge folds a later change of the same item into an earlier one of the same page;
// kind 0 means the two cancel out.
func merge(prev syncChange, next changeKind) syncChange {
	switch {
	case prev.kind == chCreate && next == chDelete:
		prev.kind = 0
	case prev.kind == chCreate:
	case next == chDelete:
		prev.kind = chDelete
	case prev.kind == chUpdate || next == chUpdate:
		prev.kind = chUpdate
	}
	return prev
}

// InvalidateSyncStates makes every sync state issued so far for the mailbox invalid
// (ErrorInvalidSyncStateData), as after a mailbox move or store corruption.
func (s *Server) InvalidateSyncStates(smtp string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb := s.byAddr[strings.ToLower(smtp)]
	if mb == nil {
		return fmt.Errorf("ewsfake: InvalidateSyncStates %s: %w", smtp, ErrNoMailbox)
	}
	mb.epoch++
	return nil
}
