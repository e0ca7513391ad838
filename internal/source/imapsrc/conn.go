package imapsrc

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/emaillistener/emaillistener/internal/source"
)

var errCommandTimeout = errors.New("imap command timeout")

// Conn is one authenticated IMAP connection. Its methods must be called from one
// goroutine at a time (the mailbox's supervisor); only the exists callback runs
// on go-imap's reader goroutine.
type Conn struct {
	c    *imapclient.Client
	opts Options
	log  *slog.Logger
}

type (
	// FolderStatus is what STATUS/EXAMINE tell about a folder.
	FolderStatus = source.FolderStatus
	// MessageRef identifies a message found by ListAfter or SearchSince.
	MessageRef = source.MessageRef
	// Fetched is a downloaded message.
	Fetched = source.Fetched
)

// run executes one command under the command timeout, closing the connection if
// ctx ends first so that the blocked go-imap call returns.
func (c *Conn) run(ctx context.Context, op string, f func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeoutCause(ctx, c.opts.CommandTimeout, errCommandTimeout)
	defer cancel()
	stop := context.AfterFunc(cctx, func() { c.c.Close() })
	err := f()
	if !stop() {
		return classify(op, ctxErr(cctx, err))
	}
	return classify(op, err)
}

// Closed is closed when the connection is gone.
func (c *Conn) Closed() <-chan struct{} { return c.c.Closed() }

// Close logs out politely (bounded) and closes the connection. On an already
// closed connection it returns at once.
func (c *Conn) Close() error {
	select {
	case <-c.c.Closed():
		return nil
	default:
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.c.Logout().Wait()
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	_ = c.c.Close() // already closed by the server or by Logout: nothing to report
	return nil
}

// HasIdle reports whether the server supports IDLE (RFC 2177).
func (c *Conn) HasIdle() bool {
	caps := c.c.Caps()
	return caps.Has(imap.CapIdle) || caps.Has(imap.CapIMAP4rev2)
}

// Noop checks that the connection is alive.
func (c *Conn) Noop(ctx context.Context) error {
	return c.run(ctx, "noop", func() error { return c.c.Noop().Wait() })
}

// Status returns a folder's UIDVALIDITY and UIDNEXT without selecting it.
func (c *Conn) Status(ctx context.Context, folder string) (FolderStatus, error) {
	var st FolderStatus
	err := c.run(ctx, "status "+folder, func() error {
		d, err := c.c.Status(folder, &imap.StatusOptions{UIDNext: true, UIDValidity: true, NumMessages: true}).Wait()
		if err != nil {
			return err
		}
		st.UIDValidity, st.UIDNext = d.UIDValidity, uint32(d.UIDNext)
		if d.NumMessages != nil {
			st.Messages = *d.NumMessages
		}
		return nil
	})
	return st, err
}

// Examine selects a folder read-only: we never change flags, and read-only
// selection also keeps \Recent for the user's own client.
func (c *Conn) Examine(ctx context.Context, folder string) (FolderStatus, error) {
	var st FolderStatus
	err := c.run(ctx, "examine "+folder, func() error {
		d, err := c.c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			return err
		}
		st = FolderStatus{UIDValidity: d.UIDValidity, UIDNext: uint32(d.UIDNext), Messages: d.NumMessages}
		return nil
	})
	return st, err
}

// ListAfter returns the messages of the selected folder with a UID above after,
// in UID order.
func (c *Conn) ListAfter(ctx context.Context, after uint32) ([]MessageRef, error) {
	var refs []MessageRef
	err := c.run(ctx, "list new", func() error {
		set := imap.UIDSet{imap.UIDRange{Start: imap.UID(after + 1), Stop: 0}}
		cmd := c.c.Fetch(set, &imap.FetchOptions{UID: true, RFC822Size: true, InternalDate: true})
		defer cmd.Close()
		for {
			m := cmd.Next()
			if m == nil {
				break
			}
			buf, err := m.Collect()
			if err != nil {
				return err
			}
			// "n:*" always matches the last message, even below n (RFC 9051 §6.4.8).
			if uint32(buf.UID) > after {
				refs = append(refs, MessageRef{UID: uint32(buf.UID), Size: buf.RFC822Size, Date: buf.InternalDate})
			}
		}
		return cmd.Close()
	})
	sortRefs(refs)
	return refs, err
}

// SearchSince returns messages of the selected folder that arrived on or after
// the day of since (IMAP SINCE has day granularity).
func (c *Conn) SearchSince(ctx context.Context, since time.Time) ([]MessageRef, error) {
	var refs []MessageRef
	err := c.run(ctx, "search since", func() error {
		d, err := c.c.UIDSearch(&imap.SearchCriteria{Since: since}, nil).Wait()
		if err != nil {
			return err
		}
		for _, uid := range d.AllUIDs() {
			refs = append(refs, MessageRef{UID: uint32(uid)})
		}
		return nil
	})
	sortRefs(refs)
	return refs, err
}

// Fetch downloads one message of the selected folder with BODY.PEEK[], so the
// \Seen flag is never set.
func (c *Conn) Fetch(ctx context.Context, ref MessageRef) (*Fetched, error) {
	section := &imap.FetchItemBodySection{Peek: true}
	truncated := ref.Size > c.opts.MaxMessageBytes
	if truncated {
		section.Specifier = imap.PartSpecifierHeader
	}
	var out *Fetched
	err := c.run(ctx, "fetch", func() error {
		set := imap.UIDSetNum(imap.UID(ref.UID))
		bufs, err := c.c.Fetch(set, &imap.FetchOptions{UID: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
		if err != nil {
			return err
		}
		for _, b := range bufs {
			if uint32(b.UID) != ref.UID {
				continue
			}
			out = &Fetched{UID: ref.UID, Raw: b.FindBodySection(section), Date: b.InternalDate, Truncated: truncated}
		}
		return nil
	})
	if err == nil && out == nil {
		return nil, ErrGone
	}
	return out, err
}

// Batch bounds of FetchMany: whole messages per UID FETCH, and the bytes one
// FETCH may hold in memory (a message over it is fetched on its own).
const (
	fetchBatchCount = 100
	fetchBatchBytes = 8 << 20
)

// FetchMany downloads the messages uids (ascending) of the selected folder
// with few round trips: their sizes in one UID FETCH per fetchBatchCount,
// then the messages themselves in UID FETCHes of up to fetchBatchCount
// messages and fetchBatchBytes. fn is called in UID order, with nil for a
// message expunged meanwhile; one over MaxMessageBytes comes with its header
// only (Truncated). An error from fn stops the fetch and is returned.
func (c *Conn) FetchMany(ctx context.Context, uids []uint32, fn func(uid uint32, f *Fetched) error) error {
	for len(uids) > 0 {
		batch := uids[:min(len(uids), fetchBatchCount)]
		uids = uids[len(batch):]
		sizes, err := c.sizes(ctx, batch)
		if err != nil {
			return err
		}
		var chunk []uint32
		var chunkBytes int64
		flush := func() error {
			if len(chunk) == 0 {
				return nil
			}
			err := c.fetchWhole(ctx, chunk, fn)
			chunk, chunkBytes = chunk[:0], 0
			return err
		}
		for _, uid := range batch {
			size, exists := sizes[uid]
			whole := exists && size <= c.opts.MaxMessageBytes
			if !whole || (len(chunk) > 0 && chunkBytes+size > fetchBatchBytes) {
				if err := flush(); err != nil { // keeps fn's calls in UID order
					return err
				}
			}
			if whole {
				chunk, chunkBytes = append(chunk, uid), chunkBytes+size
				continue
			}
			var f *Fetched // nil: expunged
			if exists {    // over the size limit: the header only
				if f, err = c.Fetch(ctx, MessageRef{UID: uid, Size: size}); errors.Is(err, ErrGone) {
					f, err = nil, nil
				}
				if err != nil {
					return err
				}
			}
			if err := fn(uid, f); err != nil {
				return err
			}
		}
		if err := flush(); err != nil {
			return err
		}
	}
	return nil
}

// sizes returns RFC822.SIZE of the messages uids that still exist.
func (c *Conn) sizes(ctx context.Context, uids []uint32) (map[uint32]int64, error) {
	out := make(map[uint32]int64, len(uids))
	err := c.run(ctx, "fetch sizes", func() error {
		bufs, err := c.c.Fetch(uidSet(uids), &imap.FetchOptions{UID: true, RFC822Size: true}).Collect()
		for _, b := range bufs {
			out[uint32(b.UID)] = b.RFC822Size
		}
		return err
	})
	return out, err
}

// fetchWhole fetches the messages uids in one UID FETCH and hands them to fn
// in order (nil for one expunged meanwhile).
func (c *Conn) fetchWhole(ctx context.Context, uids []uint32, fn func(uint32, *Fetched) error) error {
	section := &imap.FetchItemBodySection{Peek: true}
	got := make(map[uint32]*Fetched, len(uids))
	err := c.run(ctx, "fetch", func() error {
		bufs, err := c.c.Fetch(uidSet(uids), &imap.FetchOptions{UID: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
		for _, b := range bufs {
			got[uint32(b.UID)] = &Fetched{UID: uint32(b.UID), Raw: b.FindBodySection(section), Date: b.InternalDate}
		}
		return err
	})
	if err != nil {
		return err
	}
	for _, uid := range uids {
		if err := fn(uid, got[uid]); err != nil {
			return err
		}
	}
	return nil
}

func uidSet(uids []uint32) imap.UIDSet {
	var set imap.UIDSet
	for _, u := range uids {
		set.AddNum(imap.UID(u))
	}
	return set
}

// ErrGone means the message was expunged before we could fetch it.
var ErrGone = source.ErrGone

func sortRefs(refs []MessageRef) {
	slices.SortFunc(refs, func(a, b MessageRef) int { return int(int64(a.UID) - int64(b.UID)) })
}

// Search returns the UIDs of the selected folder matching q, ascending.
func (c *Conn) Search(ctx context.Context, q source.Query) ([]uint32, error) {
	crit := &imap.SearchCriteria{}
	if !q.Since.IsZero() {
		if q.SentSince {
			crit.SentSince = q.Since
		} else {
			crit.Since = q.Since
		}
	}
	for _, f := range q.NotFlags {
		crit.NotFlag = append(crit.NotFlag, imap.Flag(f))
	}
	if q.UIDFrom > 0 {
		crit.UID = []imap.UIDSet{{imap.UIDRange{Start: imap.UID(q.UIDFrom), Stop: 0}}}
	}
	var out []uint32
	err := c.run(ctx, "search", func() error {
		d, err := c.c.UIDSearch(crit, nil).Wait()
		if err != nil {
			return err
		}
		for _, uid := range d.AllUIDs() {
			// "n:*" matches the highest UID even below n (RFC 9051 §6.4.8).
			if uint32(uid) >= q.UIDFrom {
				out = append(out, uint32(uid))
			}
		}
		return nil
	})
	slices.Sort(out)
	return out, err
}
