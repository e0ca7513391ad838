// SPDX-License-Identifier: Apache-2.0

package imapsrc

// Implementation notes for Session, the IMAP side of the protocol-neutral
// source contract (syncer and history declare what they need of it).
//
//   - One connection per mailbox. The first folder the caller watches (INBOX)
//     is kept selected and waited on with IDLE (RFC 2177); the server's EXISTS
//     pushes reach the session on go-imap's reader goroutine and are recorded
//     in woke/exists. Other folders are checked with STATUS, which is cheap,
//     and selected (EXAMINE, read-only) only when they moved.
//   - st caches the selected folder's status from its last EXAMINE. It is
//     dropped when the server pushes (UIDNEXT is then unknown: list instead)
//     and refreshed by a new EXAMINE after idleMax: a server does not always
//     tell an IDLE client that its folder was deleted and re-created (new
//     UIDVALIDITY); EXAMINE does.
//   - A cursor (cursor.go) is UIDVALIDITY + last UID + date. A UIDVALIDITY
//     change re-delivers the mail since a day before the last delivered
//     message (SEARCH SINCE): the client deduplicates by Message-ID, and
//     losing mail is worse than sending it twice.
//   - Changes lists at most pageUIDs UIDs per call (More tells the caller to
//     ask again), so a mailbox that was not served for months is caught up
//     page by page instead of in one response the guard must refuse.
//
// All methods but the exists callback run on the caller's goroutine, one at
// a time.

import (
	"context"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/source"
)

// uidValidityLookback is how far before the last delivered message a
// UIDVALIDITY change re-delivers.
const uidValidityLookback = 24 * time.Hour

// pageUIDs is the most UIDs one Changes call lists.
const pageUIDs = 20_000

// Lost pushes are bounded by re-checks: after any activity on the mailbox (it
// connected, the server pushed, mail was delivered) the watched folder is
// listed again at these offsets, whether or not the server announced
// anything. Servers drop pushes: Dovecot moving a connection to
// imap-hibernate (2 s into an IDLE with imap_hibernate_timeout = 2s) sends no
// EXISTS for mail arriving at that moment. Each re-check starts a new IDLE,
// and so a new such moment 2 s later, which the next re-check covers: with
// these offsets a lost push is found within 1, 3 and 5 s for the moments at
// +2, +5 and +10 s. A mailbox that stays quiet costs nothing more. A server
// too busy to answer quickly gets none (Rechecks).
var recheckAfter = []time.Duration{3 * time.Second, 8 * time.Second, 15 * time.Second}

// A server that accepts IDLE but does not push (Cyrus without idled, Courier
// without IMAP_ENHANCEDIDLE) is found out when re-checks keep finding mail
// it did not announce; its IDLE rounds are then cut to silentRound, each
// followed by a listing, until pushes outnumber such finds again.
const (
	silentRound = 15 * time.Second
	silentLimit = 2 // finds no push announced before a mailbox is taken as not pushed
)

// DefaultIdleMax re-selects the watched folder at least this often (see the
// notes above); the syncer's IDLE rounds are no longer than this either.
const DefaultIdleMax = 10 * time.Minute

// Session is an authenticated IMAP connection serving one mailbox through the
// protocol-neutral source contract.
type Session struct {
	c       *Conn
	idleMax time.Duration
	page    uint32 // most UIDs one Changes call lists (tests lower it)

	folders []string  // the mailbox's configured folders (see ConfiguredFolders)
	server  string    // host:port, the key of pacer
	pacer   *Rechecks // shared: whether re-checks run on server

	exists chan struct{} // buffered(1): the server pushed new mail
	woke   atomic.Int64  // unix nanos of the first push not yet consumed

	// owned by the caller's goroutine
	active   time.Time // last activity: connected, pushed, delivered
	rechecks int       // re-checks done since active
	quiet    bool      // the last Wait ended without a push
	pushes   int       // pushes this session
	silent   int       // mail found that no push announced
	selected string
	st       FolderStatus // of selected, from its EXAMINE; zero: unknown (pushed since)
	examined time.Time
}

// Open connects and logs in (see Dial). idleMax (0: DefaultIdleMax) bounds
// how long the watched folder's status is trusted.
func Open(ctx context.Context, mb *mail.Mailbox, opts *Options, idleMax time.Duration) (*Session, error) {
	if idleMax <= 0 {
		idleMax = DefaultIdleMax
	}
	s := &Session{idleMax: idleMax, page: pageUIDs, folders: mb.FolderIDs, exists: make(chan struct{}, 1), active: time.Now(),
		server: net.JoinHostPort(mb.Host, strconv.Itoa(mb.Port))}
	if opts != nil {
		s.pacer = opts.Rechecks
	}
	c, err := Dial(ctx, mb, opts, s.onExists)
	if err != nil {
		return nil, err
	}
	s.c = c
	return s, nil
}

// onExists runs on go-imap's reader goroutine: record and signal, never block.
func (s *Session) onExists() {
	s.woke.CompareAndSwap(0, time.Now().UnixNano())
	select {
	case s.exists <- struct{}{}:
	default:
	}
}

// Conn is the underlying connection (to file sent mail, for instance).
func (s *Session) Conn() *Conn { return s.c }

// Close logs out.
func (s *Session) Close() error { return s.c.Close() }

// Folders lists the mailbox's folders.
func (s *Session) Folders(ctx context.Context) ([]mail.Folder, error) { return s.c.Folders(ctx) }

// examine selects folder and caches its status.
func (s *Session) examine(ctx context.Context, folder string) (FolderStatus, error) {
	st, err := s.c.Examine(ctx, folder)
	if err != nil {
		s.selected, s.st = "", FolderStatus{}
		return st, err
	}
	s.selected, s.st, s.examined = folder, st, time.Now()
	return st, nil
}

// status returns what is known about folder without listing it: the cached
// EXAMINE status of the selected folder (ok false after a push, when only a
// listing tells), EXAMINE when nothing is selected yet (the first folder a
// session looks at is the one it watches: one round trip instead of STATUS
// now and EXAMINE later), or STATUS for another folder, which keeps the
// watched one selected.
func (s *Session) status(ctx context.Context, folder string) (st FolderStatus, ok bool, err error) {
	switch {
	case folder == s.selected && time.Since(s.examined) < s.idleMax:
		return s.st, s.st.UIDNext != 0, nil
	case folder == s.selected || s.selected == "":
		st, err = s.examine(ctx, folder)
		return st, err == nil && st.UIDNext != 0, err
	}
	st, err = s.c.Status(ctx, folder)
	return st, err == nil, err
}

// Changes returns the messages of folder after cur, oldest first. An empty cur
// starts the folder at its current end: no messages, and a cursor at UIDNEXT.
func (s *Session) Changes(ctx context.Context, folder, cur string) (source.Changes, error) {
	if cur == "" {
		return s.start(ctx, folder)
	}
	c, err := parseCursor(cur)
	if err != nil {
		// Another transport's cursor (an Exchange mailbox moved from EWS to
		// IMAP): start over like after a UIDVALIDITY change, re-delivering
		// the last day (the client deduplicates by Message-ID).
		c = cursor{Date: time.Now().Add(-uidValidityLookback).UTC().Truncate(time.Second)}
	}
	st, known, err := s.status(ctx, folder)
	if err != nil {
		return source.Changes{}, err
	}
	if known && st.UIDValidity == c.UIDValidity && st.UIDNext <= c.UID+1 {
		return source.Changes{}, nil // nothing new: no EXAMINE, no listing
	}
	if folder != s.selected {
		if st, err = s.examine(ctx, folder); err != nil {
			return source.Changes{}, err
		}
	}
	// Drain the push signal before listing: what arrives after the listing
	// wakes the next Wait at once.
	select {
	case <-s.exists:
	default:
	}
	if s.st.UIDValidity != 0 && s.st.UIDValidity != c.UIDValidity {
		return s.reset(ctx, folder, c, s.st)
	}
	var refs []MessageRef
	more := false
	if next := s.st.UIDNext; next > 0 && next-1-c.UID > s.page {
		refs, err = s.c.ListRange(ctx, c.UID+1, c.UID+s.page)
		more = true
	} else {
		refs, err = s.c.ListAfter(ctx, c.UID)
	}
	if err != nil {
		return source.Changes{}, err
	}
	if len(refs) > 0 {
		s.noticed()
	}
	ch := source.Changes{Refs: s.refs(folder, c, refs), More: more}
	if more {
		ch.Next = c.after(MessageRef{UID: c.UID + s.page}).String()
	}
	return ch, nil
}

// start returns the cursor at folder's current end.
func (s *Session) start(ctx context.Context, folder string) (source.Changes, error) {
	st, known, err := s.status(ctx, folder)
	if err == nil && !known && folder != s.selected {
		st, err = s.examine(ctx, folder)
	}
	if err != nil {
		return source.Changes{}, err
	}
	if st.UIDNext == 0 {
		// The server left UIDNEXT out of its answer (Courier's EXAMINE),
		// and such a server may not have stored the folder's UIDs yet:
		// make it (see Conn.Persist), then never start at 0, which would
		// deliver the whole folder.
		if st, err = s.persist(ctx, folder); err != nil {
			return source.Changes{}, err
		}
		if st, err = s.uidNext(ctx, folder, st); err != nil {
			return source.Changes{}, err
		}
	}
	c := cursor{UIDValidity: st.UIDValidity, Date: time.Now().UTC().Truncate(time.Second)}
	if st.UIDNext > 0 {
		c.UID = st.UIDNext - 1
	}
	return source.Changes{Next: c.String()}, nil
}

// persist makes the server store folder's UIDs (Conn.Persist) and leaves it
// selected read-only.
func (s *Session) persist(ctx context.Context, folder string) (FolderStatus, error) {
	st, err := s.c.Persist(ctx, folder)
	if err != nil {
		s.selected, s.st = "", FolderStatus{}
		return st, err
	}
	s.selected, s.st, s.examined = folder, st, time.Now()
	return st, nil
}

// uidNext completes a status without UIDNEXT: STATUS (UIDNEXT), else the last
// message's UID + 1 (UID FETCH of "*"), which needs the folder selected.
func (s *Session) uidNext(ctx context.Context, folder string, st FolderStatus) (FolderStatus, error) {
	if x, err := s.c.Status(ctx, folder); err == nil && x.UIDNext > 0 && (st.UIDValidity == 0 || x.UIDValidity == st.UIDValidity) {
		st.UIDNext = x.UIDNext
		if st.UIDValidity == 0 {
			st.UIDValidity = x.UIDValidity
		}
		return st, nil
	} else if err != nil && mail.ClassOf(err) != mail.ClassProtocol {
		return st, err
	}
	if folder != s.selected {
		var err error
		if st, err = s.examine(ctx, folder); err != nil {
			return st, err
		}
	}
	last, err := s.c.LastUID(ctx)
	if err != nil {
		return st, err
	}
	st.UIDNext = last + 1
	return st, nil
}

// reset handles a UIDVALIDITY change: the mail since a day before the last
// delivered message, under the new UIDVALIDITY.
func (s *Session) reset(ctx context.Context, folder string, old cursor, st FolderStatus) (source.Changes, error) {
	since := old.Date.Add(-uidValidityLookback)
	s.c.log.Warn("UIDVALIDITY changed, delivering what was not delivered yet", "folder", folder,
		"old", old.UIDValidity, "new", st.UIDValidity, "since", since)
	if st.UIDNext == 0 {
		// See start: a server that does not say UIDNEXT may renumber until
		// it stored the folder's UIDs.
		p, err := s.persist(ctx, folder)
		if err != nil {
			return source.Changes{}, err
		}
		st = p
	}
	found, err := s.c.SearchSince(ctx, since)
	if err != nil {
		return source.Changes{}, err
	}
	var listed []MessageRef
	if len(found) > 0 {
		// SEARCH gives UIDs only; the listing from the first of them gives
		// arrival dates and sizes (and what arrived since).
		if listed, err = s.c.ListAfter(ctx, found[0].UID-1); err != nil {
			return source.Changes{}, err
		}
	}
	// Skipped messages still move the cursor (Next), so that they are not
	// listed again; the arrival date and Seen acknowledged before carry over.
	base := cursor{UIDValidity: st.UIDValidity, Date: old.Date, Seen: old.Seen}
	next := base
	var refs []MessageRef
	for _, r := range listed {
		if old.delivered(r) {
			next.UID = max(next.UID, r.UID)
			continue
		}
		refs = append(refs, r)
		next = next.after(r)
	}
	if len(listed) == 0 {
		if st.UIDNext == 0 {
			if st, err = s.uidNext(ctx, folder, st); err != nil {
				return source.Changes{}, err
			}
		}
		if st.UIDNext > 0 {
			next.UID = st.UIDNext - 1
		}
	}
	if len(refs) < len(listed) {
		s.c.log.Info("UIDVALIDITY changed: passed over mail delivered before", "folder", folder, "count", len(listed)-len(refs))
	}
	ch := source.Changes{Refs: s.refs(folder, base, refs), Reset: true, Next: next.String()}
	return ch, nil
}

// refs turns listed messages into source refs, each carrying the cursor
// after it.
func (s *Session) refs(folder string, c cursor, in []MessageRef) []source.Ref {
	out := make([]source.Ref, len(in))
	for i, r := range in {
		c = c.after(r)
		out[i] = source.Ref{Folder: folder, ID: uidID(r.UID), Size: r.Size, Date: r.Date, Cursor: c.String()}
	}
	return out
}

// Fetch downloads one message with BODY.PEEK[] (never marking it read); a
// message over the size limit comes with its header only.
func (s *Session) Fetch(ctx context.Context, ref source.Ref) (*source.Fetched, error) {
	uid, err := parseUID(ref.ID)
	if err != nil {
		return nil, mail.Wrap(mail.ClassInternal, "fetch", err)
	}
	if ref.Folder != s.selected {
		if _, err := s.examine(ctx, ref.Folder); err != nil {
			return nil, err
		}
	}
	f, err := s.c.Fetch(ctx, MessageRef{UID: uid, Size: ref.Size, Date: ref.Date})
	if err != nil {
		return nil, err
	}
	return &source.Fetched{Ref: ref, Raw: f.Raw, Date: f.Date, Truncated: f.Truncated}, nil
}

// Wait waits for new mail in the first of folders, which it keeps selected,
// in IDLE (NOOP polling on servers without IDLE), for at most limit, and less
// when a re-check is due (see recheckAfter) or the server does not push. It
// returns that folder when the server pushed, nil otherwise; after nil the
// caller re-checks the watched folder. When another folder was selected, it
// selects the watched one and returns it at once: mail that arrived
// meanwhile was not pushed.
func (s *Session) Wait(ctx context.Context, folders []string, limit time.Duration) ([]string, error) {
	if len(folders) == 0 {
		return nil, mail.Errorf(mail.ClassInternal, "wait", "no folder to watch")
	}
	watched := folders[0]
	if s.selected != watched {
		if _, err := s.examine(ctx, watched); err != nil {
			return nil, err
		}
		return folders[:1], nil
	}
	d, recheck := limit, false
	if chain := s.pacer.chain(s.server, time.Now()); s.rechecks < len(chain) {
		if until := time.Until(s.active.Add(chain[s.rechecks])); until < d {
			d, recheck = max(until, time.Millisecond), true
		}
	}
	if s.silentServer() && silentRound < d {
		d, recheck = silentRound, true
	}
	pushed, done, err := s.c.Idle(ctx, s.exists, d)
	if err != nil {
		return nil, err
	}
	s.pacer.observe(s.server, done, time.Now())
	// A push woke the IDLE; news the server only gave when IDLE ended (an
	// EXISTS before DONE's OK) is what a re-check found: the server kept
	// it to itself.
	s.quiet = !pushed
	if s.woke.Load() != 0 {
		if pushed {
			s.pushes++
		}
		s.touch()
		s.st = FolderStatus{} // only a listing tells what is new
		return folders[:1], nil
	}
	if recheck {
		// The caller re-checks the watched folder after a quiet round; a
		// fresh EXAMINE makes that a real check: the cached status says
		// nothing new, and a server may show new mail (and a new
		// UIDVALIDITY) to a selected folder only when it is selected again
		// (Courier without a push).
		s.rechecks++
		s.st, s.examined = FolderStatus{}, time.Time{}
	}
	return nil, nil
}

// touch records activity: the re-checks start over.
func (s *Session) touch() { s.active, s.rechecks = time.Now(), 0 }

// noticed records that a listing found new mail: activity, and, when no
// push announced it, a sign of a server that does not push.
func (s *Session) noticed() {
	if s.quiet {
		s.silent++
		if s.silentServer() && s.silent == max(silentLimit, s.pushes) {
			s.c.log.Info("the server does not push new mail in IDLE: checking every "+silentRound.String(),
				"hint", "Cyrus: run idled; Courier: IMAP_ENHANCEDIDLE=1")
		}
	}
	s.quiet = false
	s.touch()
}

// silentServer reports whether the server is taken as one that does not
// push: re-checks found mail twice or more, and at least as often as pushes
// announced any (Cyrus without idled and Courier without enhanced IDLE do
// push, from their own once-a-minute poll, which must not pass for push).
func (s *Session) silentServer() bool { return s.silent >= silentLimit && s.silent >= s.pushes }

// Push says how new mail is noticed, for the mailbox's state: "idle" (the
// server pushes), or "poll" when it was found not to.
func (s *Session) Push() string {
	if s.silentServer() {
		return "poll"
	}
	return "idle"
}

// Pushed returns when the server's last push arrived (zero if none since the
// last call), for the delivery latency metric.
func (s *Session) Pushed() time.Time {
	if t := s.woke.Swap(0); t != 0 {
		return time.Unix(0, t)
	}
	return time.Time{}
}

// Search returns the messages of folder matching q (history loads).
func (s *Session) Search(ctx context.Context, folder string, q mail.Query) ([]source.Ref, error) {
	if _, err := s.examine(ctx, folder); err != nil {
		return nil, err
	}
	uids, err := s.c.Search(ctx, q)
	if err != nil {
		return nil, err
	}
	out := make([]source.Ref, len(uids))
	for i, u := range uids {
		out[i] = source.Ref{Folder: folder, ID: uidID(u)}
	}
	return out, nil
}

// FetchMany downloads refs (one folder, in the order Search returned them)
// with few round trips and calls fn for each in order, with nil for a message
// deleted meanwhile.
func (s *Session) FetchMany(ctx context.Context, refs []source.Ref, fn func(ref source.Ref, f *source.Fetched) error) error {
	if len(refs) == 0 {
		return nil
	}
	folder := refs[0].Folder
	if folder != s.selected {
		if _, err := s.examine(ctx, folder); err != nil {
			return err
		}
	}
	uids := make([]uint32, len(refs))
	byUID := make(map[uint32]source.Ref, len(refs))
	for i, r := range refs {
		uid, err := parseUID(r.ID)
		if err != nil || r.Folder != folder {
			return mail.Errorf(mail.ClassInternal, "fetch", "refs of one folder only (%q in %q)", r.ID, r.Folder)
		}
		uids[i], byUID[uid] = uid, r
	}
	return s.c.FetchMany(ctx, uids, func(uid uint32, f *Fetched) error {
		ref := byUID[uid]
		if f == nil {
			return fn(ref, nil)
		}
		return fn(ref, &source.Fetched{Ref: ref, Raw: f.Raw, Date: f.Date, Truncated: f.Truncated})
	})
}

// ConfiguredFolders are the folders of the mailbox this session was opened
// for: a caller that converted a mailbox of another transport (see package
// exo) dropped the ids IMAP cannot know.
func (s *Session) ConfiguredFolders() []string { return s.folders }

// Transport names how the mailbox is reached, for its state and logs.
func (s *Session) Transport() string { return "imap" }
