// SPDX-License-Identifier: Apache-2.0

package ewssrc

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/emaillistener/emaillistener/internal/creatio"
	"github.com/emaillistener/emaillistener/internal/ews"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/source"
)

// Page sizes of SyncFolderItems (EWS allows 1–512). Live pages are small
// because a cursor advances only after a whole page: a restart re-delivers at
// most a page. The first walk of a folder passes over almost everything, so it
// takes the largest pages.
const (
	livePage     = 32
	baselinePage = 512
	searchPage   = 500
)

// foreignLookback is how far back a folder whose cursor another transport
// wrote is re-delivered.
const foreignLookback = 24 * time.Hour

// Session serves one Exchange mailbox. Its methods are called by one
// goroutine at a time (the syncer's worker, or a history load), except
// MarkDelivered, which history loads call from their deliverers.
type Session struct {
	a     *Adapter
	mb    *mail.Mailbox
	c     *ews.Client
	t     ews.Target
	url   string
	group string // Autodiscover's GroupingInformation
	addr  string
	inbox string // the inbox's folder id
	limit int64
	mark  bool // MarkEmailsAsSynchronized

	m *member // the live subscription, from the first Wait
}

// Open connects to mb's Exchange server and logs in by reading the inbox.
func (a *Adapter) Open(ctx context.Context, mb *mail.Mailbox) (*Session, error) {
	url, group, err := a.endpoint(ctx, mb)
	if err != nil {
		return nil, err
	}
	c, err := a.client(url, a.credentials(mb))
	if err != nil {
		return nil, err
	}
	s := &Session{a: a, mb: mb, c: c, url: url, group: group, addr: address(mb), limit: a.opts.MaxMessageBytes,
		mark: mb.Features["MarkEmailsAsSynchronized"]}
	s.t = ews.Target{Anchor: s.addr}
	folders, err := retry(ctx, a.opts.BusyPatience, func() ([]ews.Folder, error) {
		return c.GetFolder(ctx, s.t, ews.FolderID{Distinguished: "inbox"})
	})
	if err == nil && len(folders) == 0 {
		err = mail.Errorf(mail.ClassProtocol, "GetFolder", "the server returned no inbox")
	}
	if err != nil {
		c.CloseIdleConnections()
		return nil, err
	}
	s.inbox = folders[0].ID.ID
	return s, nil
}

// Close ends the live subscription and drops the session's connections.
func (s *Session) Close() error {
	if s.m != nil {
		s.m.leave()
		s.m = nil
	}
	s.c.CloseIdleConnections()
	return nil
}

// Folders lists the mailbox's folders below the message folder root: id,
// display name and parent id, as the client shows them. With the client's
// FolderClassName (IPF.Note for mail) only folders of that class (or a
// subclass, IPF.Note.*) are listed.
func (s *Session) Folders(ctx context.Context) ([]mail.Folder, error) {
	list, err := retry(ctx, s.a.opts.BusyPatience, func() ([]ews.Folder, error) {
		return s.c.FindFolders(ctx, s.t, ews.FolderID{Distinguished: "msgfolderroot"}, true)
	})
	if err != nil {
		return nil, err
	}
	class := strings.TrimSpace(s.mb.Extra[creatio.ExtraFolderClassName])
	out := make([]mail.Folder, 0, len(list))
	for _, f := range list {
		if class != "" && !strings.EqualFold(f.Class, class) && !strings.HasPrefix(strings.ToLower(f.Class), strings.ToLower(class)+".") {
			continue
		}
		out = append(out, mail.Folder{Name: f.ID.ID, Display: f.DisplayName, Parent: f.ParentID, Selectable: true,
			Inbox: f.ID.ID == s.inbox})
	}
	return out, nil
}

// Changes lists the messages that arrived in folder after cursor, a page at
// a time (see cursor for the first walk and for refused states).
func (s *Session) Changes(ctx context.Context, folder, cur string) (source.Changes, error) {
	now := time.Now().UTC()
	if cur == "" {
		return source.Changes{Next: cursor{Baseline: true, Mark: now.Add(-s.a.opts.BaselineSlack)}.String()}, nil
	}
	c, err := parseCursor(cur)
	if err != nil {
		// Another transport's cursor (the mailbox was served over IMAP or
		// Graph before): walk the folder again, re-delivering the last day
		// (the client deduplicates).
		next := cursor{Baseline: true, Mark: now.Add(-foreignLookback)}
		return source.Changes{Next: next.String(), Reset: true, More: true}, nil
	}
	page := livePage
	if c.Baseline {
		page = baselinePage
	}
	res, err := retry(ctx, s.a.opts.BusyPatience, func() (*ews.SyncResult, error) {
		return s.c.SyncFolderItems(ctx, s.t, ews.FolderID{ID: folder}, c.State, page)
	})
	switch {
	case errors.Is(err, ews.ErrInvalidSyncState):
		next := cursor{Baseline: true, Mark: c.Mark}
		if next.Mark.IsZero() {
			next.Mark = now.Add(-s.a.opts.BaselineSlack)
		}
		return source.Changes{Next: next.String(), Reset: true, More: true}, nil
	case errors.Is(err, ews.ErrNotFound):
		return source.Changes{}, mail.Errorf(mail.ClassConfig, "sync folder", "the folder no longer exists")
	case err != nil:
		return source.Changes{}, err
	}
	var refs []source.Ref
	newest := c.Mark
	for _, ch := range res.Changes {
		if ch.Kind != ews.ChangeCreate || ch.Item.ID.ID == "" {
			continue
		}
		if c.Baseline && ch.Item.Received.Before(c.Mark) {
			continue // there before the subscription started
		}
		refs = append(refs, source.Ref{Folder: folder, ID: ch.Item.ID.ID, Size: ch.Item.Size, Date: ch.Item.Received})
		if ch.Item.Received.After(newest) {
			newest = ch.Item.Received
		}
	}
	slices.SortStableFunc(refs, func(a, b source.Ref) int { return a.Date.Compare(b.Date) })
	next := cursor{Baseline: c.Baseline && !res.Last, Mark: c.Mark, State: res.State}
	if !c.Baseline {
		// Only a finished walk moves the mark: the first walk lists newest
		// first, so an early page's arrival time says nothing of later pages.
		next.Mark = newest.UTC()
	}
	return source.Changes{Refs: refs, Next: next.String(), More: !res.Last}, nil
}

// Fetch downloads a message; one over the size limit comes as its header.
func (s *Session) Fetch(ctx context.Context, ref source.Ref) (*source.Fetched, error) {
	if s.limit > 0 && ref.Size > s.limit {
		return s.header(ctx, ref)
	}
	id := ews.ItemID{ID: ref.ID}
	m, err := retry(ctx, s.a.opts.BusyPatience, func() (*ews.MIME, error) { return s.c.GetMIME(ctx, s.t, id, s.limit) })
	if errors.Is(err, ews.ErrNotFound) {
		return nil, source.ErrGone
	}
	if err != nil {
		return nil, err
	}
	return &source.Fetched{Ref: ref, Raw: m.Raw, Date: ref.Date, Truncated: m.Truncated}, nil
}

// header builds a header-only message from the item's Internet headers.
func (s *Session) header(ctx context.Context, ref source.Ref) (*source.Fetched, error) {
	type hdr struct {
		h    []ews.Header
		date time.Time
	}
	r, err := retry(ctx, s.a.opts.BusyPatience, func() (hdr, error) {
		h, d, err := s.c.GetHeaders(ctx, s.t, ews.ItemID{ID: ref.ID})
		return hdr{h, d}, err
	})
	if errors.Is(err, ews.ErrNotFound) {
		return nil, source.ErrGone
	}
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	for _, h := range r.h {
		if h.Name == "" || strings.ContainsAny(h.Name, ": \r\n") {
			continue
		}
		b.WriteString(h.Name)
		b.WriteString(": ")
		b.WriteString(strings.NewReplacer("\r", " ", "\n", " ").Replace(h.Value))
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	date := ref.Date
	if date.IsZero() {
		date = r.date
	}
	return &source.Fetched{Ref: ref, Raw: b.Bytes(), Date: date, Truncated: true}, nil
}

// MarkDelivered gives a delivered item the client's category when the client
// asked for it (MarkEmailsAsSynchronized).
func (s *Session) MarkDelivered(ctx context.Context, ref source.Ref) error {
	if !s.mark {
		return nil
	}
	_, err := retry(ctx, s.a.opts.BusyPatience, func() (struct{}, error) {
		return struct{}{}, s.c.AddCategory(ctx, s.t, ews.ItemID{ID: ref.ID}, s.a.opts.Category)
	})
	if errors.Is(err, ews.ErrNotFound) {
		return nil // moved or deleted since: nothing to mark
	}
	return err
}

// Search lists the messages of folder for a history load: those received at
// or after q.Since (everything when it is zero), oldest first. Exchange
// history filters are instants; IMAP criteria cannot be applied and are
// refused rather than widened.
func (s *Session) Search(ctx context.Context, folder string, q mail.Query) ([]source.Ref, error) {
	if q.UIDFrom != 0 || len(q.NotFlags) > 0 {
		return nil, mail.Errorf(mail.ClassConfig, "search", "Exchange mailboxes take a date filter (.NET ticks), not IMAP criteria")
	}
	var refs []source.Ref
	_, err := retry(ctx, s.a.opts.BusyPatience, func() (struct{}, error) {
		refs = refs[:0]
		return struct{}{}, s.c.FindItems(ctx, s.t, ews.FolderID{ID: folder}, q.Since, searchPage, func(items []ews.ItemInfo) error {
			for _, it := range items {
				refs = append(refs, source.Ref{Folder: folder, ID: it.ID.ID, Size: it.Size, Date: it.Received})
			}
			return nil
		})
	})
	if errors.Is(err, ews.ErrNotFound) {
		return nil, mail.Errorf(mail.ClassConfig, "search", "the folder no longer exists")
	}
	return refs, err
}

// FetchMany downloads refs in order; a message deleted meanwhile is reported
// as nil.
func (s *Session) FetchMany(ctx context.Context, refs []source.Ref, fn func(ref source.Ref, f *source.Fetched) error) error {
	return source.FetchEach(ctx, refs, s.Fetch, fn)
}

// Wait returns the watched folders that changed, as the mailbox's streaming
// subscription reports them, or nil when max passed. The first call joins the
// hub, which subscribes the folders and then reports them all: what arrived
// between the caller's catch-up and the subscription is caught up too.
func (s *Session) Wait(ctx context.Context, folders []string, max time.Duration) ([]string, error) {
	if s.m == nil || !slices.Equal(s.m.folders, folders) {
		if s.m != nil {
			s.m.leave()
			s.m = nil
		}
		m, err := s.a.hub.join(s, folders)
		if err != nil {
			return nil, err
		}
		s.m = m
	}
	return s.m.Wait(ctx, max)
}

// Pushed returns when the notification being handled arrived (zero if none),
// for the push-to-delivery latency metric.
func (s *Session) Pushed() time.Time {
	if s.m == nil {
		return time.Time{}
	}
	return s.m.Pushed()
}

// Transport names how the mailbox is reached, for its state and logs.
func (s *Session) Transport() string { return "ews" }
