// SPDX-License-Identifier: Apache-2.0

package graphsrc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/emaillistener/emaillistener/internal/compose"
	"github.com/emaillistener/emaillistener/internal/graph"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/source"
)

// Page sizes: live pages are small because a cursor advances only after a
// whole page (a restart re-delivers at most a page); history listings take
// Graph's larger pages.
const (
	livePage   = 50
	searchPage = 250
)

// foreignLookback is how far back a folder whose cursor another transport
// wrote (EWS or IMAP, before the mailbox moved to Graph) is re-delivered;
// the client deduplicates by Message-ID.
const foreignLookback = 24 * time.Hour

// Session serves one mailbox. Its methods are called by one goroutine at a
// time (the syncer's worker, or a history load), except MarkDelivered, which
// history loads call from their deliverers, and what the poller calls
// (links, prefetched).
type Session struct {
	a       *Adapter
	c       *graph.Client
	release func()
	mb      *mail.Mailbox
	user    string
	inbox   string
	folders []string // configured folders, as Graph ids
	limit   int64
	mark    bool // MarkEmailsAsSynchronized

	m *member // the poller's record of this mailbox, from the first Wait

	mu  sync.Mutex
	pre map[string]prefetch // by folder: a delta page the poller read
	at  map[string]string   // by folder: the link the folder's cursor holds
}

// prefetch is a delta page the poller read for a folder's link.
type prefetch struct {
	link string
	page *graph.DeltaPage
	at   time.Time
}

// Open reads mb's inbox (the login check) and returns its session.
func (a *Adapter) Open(ctx context.Context, mb *mail.Mailbox) (*Session, error) {
	c, release, err := a.clientFor(mb)
	if err != nil {
		return nil, err
	}
	s := &Session{a: a, c: c, release: release, mb: mb, user: address(mb), limit: a.opts.MaxMessageBytes,
		mark: mb.Features["MarkEmailsAsSynchronized"], pre: map[string]prefetch{}, at: map[string]string{}}
	inbox, err := retry(ctx, a, func() (graph.Folder, error) { return c.Folder(ctx, s.user, "inbox") })
	if err != nil {
		release()
		return nil, err
	}
	s.inbox = inbox.ID
	if s.folders, err = s.translate(ctx, mb.FolderIDs); err != nil {
		release()
		return nil, err
	}
	return s, nil
}

// translate maps the folder ids the client configured to Graph ids: Creatio
// stored EWS ids for mailboxes it registered as Exchange, which Graph
// translates (translateExchangeIds); ids it cannot translate are kept, since
// they may be Graph ids already or well-known names.
func (s *Session) translate(ctx context.Context, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	m, err := retry(ctx, s.a, func() (map[string]string, error) {
		return s.c.TranslateIDs(ctx, s.user, ids, graph.IDTypeEWS, graph.IDTypeREST)
	})
	if err != nil {
		if c := mail.ClassOf(err); c == mail.ClassAuth || c == mail.ClassConnect || c == mail.ClassTimeout {
			return nil, err
		}
		// A refused translation (ids that are not EWS ids) keeps them.
		s.a.log.Debug("folder ids not translated", "mailbox", s.mb.ID, "err", err)
		m = nil
	}
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if t := m[id]; t != "" {
			id = t
		}
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out, nil
}

// ConfiguredFolders are the mailbox's configured folders as Graph ids.
func (s *Session) ConfiguredFolders() []string { return s.folders }

// Transport names how the mailbox is reached, for its state and logs.
func (s *Session) Transport() string { return "graph" }

// Close ends the poller's watch and the session's client.
func (s *Session) Close() error {
	if s.m != nil {
		s.a.poll.leave(s.m)
		s.m = nil
	}
	s.release()
	return nil
}

// Folders lists the mailbox's mail folders (the tree below the message
// folder root): Graph id, display name and parent id.
func (s *Session) Folders(ctx context.Context) ([]mail.Folder, error) {
	list, err := retry(ctx, s.a, func() ([]graph.Folder, error) { return s.c.Folders(ctx, s.user) })
	if err != nil {
		return nil, err
	}
	out := make([]mail.Folder, 0, len(list))
	for _, f := range list {
		out = append(out, mail.Folder{Name: f.ID, Display: f.DisplayName, Parent: f.ParentID, Selectable: true,
			Inbox: f.ID == s.inbox})
	}
	return out, nil
}

// Changes lists the messages that arrived in folder after cur, a page at a
// time.
func (s *Session) Changes(ctx context.Context, folder, cur string) (source.Changes, error) {
	now := time.Now().UTC()
	if cur == "" {
		start := now.Add(-s.a.opts.Slack).Truncate(time.Second)
		return source.Changes{Next: cursor{Round: true, Floor: start, Top: start}.String()}, nil
	}
	c, err := parseCursor(cur)
	if err != nil {
		start := now.Add(-foreignLookback).Truncate(time.Second)
		return source.Changes{Next: cursor{Round: true, Floor: start, Top: start}.String(), Reset: true, More: true}, nil
	}
	page, err := s.page(ctx, folder, c)
	var reset *graph.ResetError
	switch {
	case errors.As(err, &reset) || errors.Is(err, graph.ErrSyncReset):
		loc := ""
		if reset != nil {
			loc = reset.Location
		}
		s.a.log.Info("graph delta link expired, resyncing the folder", "mailbox", s.mb.ID, "folder", folder)
		return source.Changes{Next: c.restart(loc).String(), Reset: true, More: true}, nil
	case errors.Is(err, graph.ErrNotFound):
		return source.Changes{}, mail.Errorf(mail.ClassConfig, "sync folder", "the folder no longer exists")
	case errors.Is(err, graph.ErrLinkRefused) && c.Link != "":
		// A link of another endpoint (EL_GRAPH_URL changed): start over.
		return source.Changes{Next: c.restart("").String(), Reset: true, More: true}, nil
	case err != nil:
		return source.Changes{}, err
	}
	var refs []source.Ref
	next := c
	for _, m := range page.Messages {
		if m.Removed || c.acknowledged(m.ID, m.Received) {
			continue
		}
		refs = append(refs, source.Ref{Folder: folder, ID: m.ID, Date: m.Received})
		next.advance(m.ID, m.Received)
	}
	slices.SortStableFunc(refs, func(a, b source.Ref) int { return a.Date.Compare(b.Date) })
	if page.Next != "" {
		next.Link = page.Next
	} else {
		next.Link, next.Round = page.DeltaLink, false
		next.Floor, next.FloorSeen = time.Time{}, nil
		s.mu.Lock()
		s.at[folder] = page.DeltaLink
		s.mu.Unlock()
	}
	return source.Changes{Refs: refs, Next: next.String(), More: page.Next != ""}, nil
}

// page reads the delta page at c's link, or the one the poller read for it.
func (s *Session) page(ctx context.Context, folder string, c cursor) (*graph.DeltaPage, error) {
	if c.Link != "" {
		s.mu.Lock()
		p, ok := s.pre[folder]
		delete(s.pre, folder)
		s.mu.Unlock()
		if ok && p.link == c.Link && time.Since(p.at) < s.a.opts.PollInterval {
			return p.page, nil
		}
	}
	req := graph.DeltaRequest{User: s.user, Folder: folder, Link: c.Link, PageSize: livePage, ChangeType: "created"}
	if c.Link == "" {
		req.Since = c.Floor
	}
	return retry(ctx, s.a, func() (*graph.DeltaPage, error) { return s.c.DeltaOf(ctx, req) })
}

// links returns the delta link each watched folder's cursor holds, for the
// poller; folders in a round (or not yet read) are missing.
func (s *Session) links(folders []string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(folders))
	for _, f := range folders {
		if l := s.at[f]; l != "" {
			out[f] = l
		}
	}
	return out
}

// prefetched keeps a page the poller read at a folder's link for Changes.
func (s *Session) prefetched(folder, link string, page *graph.DeltaPage) {
	s.mu.Lock()
	s.pre[folder] = prefetch{link: link, page: page, at: time.Now()}
	s.mu.Unlock()
}

// Fetch downloads a message as MIME; one over the size limit comes as its
// header block.
func (s *Session) Fetch(ctx context.Context, ref source.Ref) (*source.Fetched, error) {
	m, err := retry(ctx, s.a, func() (*graph.MIME, error) { return s.c.MIME(ctx, s.user, ref.ID, s.limit) })
	if errors.Is(err, graph.ErrNotFound) {
		return nil, source.ErrGone
	}
	if err != nil {
		return nil, err
	}
	return &source.Fetched{Ref: ref, Raw: m.Raw, Date: ref.Date, Truncated: m.Truncated}, nil
}

// FetchMany downloads refs in order; a message deleted meanwhile is reported
// as nil.
func (s *Session) FetchMany(ctx context.Context, refs []source.Ref, fn func(ref source.Ref, f *source.Fetched) error) error {
	return source.FetchEach(ctx, refs, s.Fetch, fn)
}

// MarkDelivered gives a delivered message the client's category when the
// client asked for it (MarkEmailsAsSynchronized).
func (s *Session) MarkDelivered(ctx context.Context, ref source.Ref) error {
	if !s.mark {
		return nil
	}
	_, err := retry(ctx, s.a, func() (struct{}, error) {
		return struct{}{}, s.c.AddCategory(ctx, s.user, ref.ID, s.a.opts.Category)
	})
	if errors.Is(err, graph.ErrNotFound) {
		return nil // deleted since: nothing to mark
	}
	return err
}

// Search lists the messages of folder for a history load: those received at
// or after q.Since (everything when it is zero), oldest first. IMAP criteria
// cannot be applied and are refused rather than widened.
func (s *Session) Search(ctx context.Context, folder string, q mail.Query) ([]source.Ref, error) {
	if q.UIDFrom != 0 || len(q.NotFlags) > 0 {
		return nil, mail.Errorf(mail.ClassConfig, "search", "Exchange mailboxes take a date filter (.NET ticks), not IMAP criteria")
	}
	var refs []source.Ref
	_, err := retry(ctx, s.a, func() (struct{}, error) {
		refs = refs[:0]
		return struct{}{}, s.c.Search(ctx, s.user, folder, q.Since, searchPage, func(ms []graph.Message) error {
			for _, m := range ms {
				refs = append(refs, source.Ref{Folder: folder, ID: m.ID, Date: m.Received})
			}
			return nil
		})
	})
	if errors.Is(err, graph.ErrNotFound) {
		return nil, mail.Errorf(mail.ClassConfig, "search", "the folder no longer exists")
	}
	return refs, err
}

// Wait returns the watched folders that have news, nil when max passed. The
// first call hands the mailbox to the poller (and, with a notification URL,
// subscribes its folders), which reports every folder once it is watched:
// what arrived between the caller's catch-up and the watch is caught up too.
func (s *Session) Wait(ctx context.Context, folders []string, max time.Duration) ([]string, error) {
	if s.m == nil || !slices.Equal(s.m.Folders(), folders) {
		if s.m != nil {
			s.a.poll.leave(s.m)
			s.m = nil
		}
		m, err := s.a.poll.join(s, folders)
		if err != nil {
			return nil, err
		}
		s.m = m
	}
	return s.m.Wait(ctx, max)
}

// Pushed returns when the news being handled was noticed (zero if none),
// for the notice-to-delivery latency metric.
func (s *Session) Pushed() time.Time {
	if s.m == nil {
		return time.Time{}
	}
	return s.m.Pushed()
}

// Send sends msg from mb through Graph: the RFC 5322 message the SMTP path
// would submit (package compose), as MIME to sendMail, which saves the copy
// in Sent Items. A failure carries a sentence for the user.
func (a *Adapter) Send(ctx context.Context, mb *mail.Mailbox, msg *mail.Message) error {
	raw, err := compose.Build(msg, time.Now())
	if err != nil {
		err = mail.Wrap(mail.ClassConfig, "compose", err)
		return &mail.UserError{Err: err, Msg: fmt.Sprintf("The email cannot be built: %v", err)}
	}
	return a.SendRaw(ctx, mb, raw)
}

// SendRaw sends a complete message as it is (Graph's sendMail with MIME
// content: recipients from its header, the copy in Sent Items).
func (a *Adapter) SendRaw(ctx context.Context, mb *mail.Mailbox, raw []byte) error {
	c, release, err := a.clientFor(mb)
	if err != nil {
		return &mail.UserError{Err: err, Msg: "Sending failed: " + Describe(mb, err)}
	}
	defer release()
	// Retried only when Graph refused it for throttling (it did not take the
	// message then); any other failure is final, since a resend could send
	// twice.
	_, err = retry(ctx, a, func() (struct{}, error) { return struct{}{}, c.SendMIME(ctx, address(mb), raw) })
	if err != nil {
		return &mail.UserError{Err: err, Msg: "Sending failed: " + Describe(mb, err)}
	}
	return nil
}
