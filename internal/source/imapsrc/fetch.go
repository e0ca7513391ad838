// SPDX-License-Identifier: Apache-2.0

package imapsrc

import (
	"bytes"
	"context"
	"errors"

	"github.com/emersion/go-imap/v2"
)

// Batch bounds of FetchMany: whole messages per UID FETCH, and the bytes one
// FETCH may hold in memory (a message over it is fetched on its own).
const (
	fetchBatchCount = 100
	fetchBatchBytes = 8 << 20
)

// Fetch downloads one message of the selected folder with BODY.PEEK[], so the
// \Seen flag is never set. A message over MaxMessageBytes comes with its
// header only (Truncated), and so does one larger than ref.Size announced
// plus slack (a size of 0 means unknown: then MaxMessageBytes is the bound).
func (c *Conn) Fetch(ctx context.Context, ref MessageRef) (*Fetched, error) {
	if ref.Size > c.opts.MaxMessageBytes {
		return c.fetchHeader(ctx, ref.UID)
	}
	var out *Fetched
	err := c.fetchWhole(ctx, []uint32{ref.UID}, map[uint32]int64{ref.UID: ref.Size}, ref.Size > 0,
		func(_ uint32, f *Fetched) error { out = f; return nil })
	if err == nil && out == nil {
		return nil, ErrGone
	}
	return out, err
}

// FetchMany downloads the messages uids (ascending) of the selected folder
// with few round trips: their sizes in one UID FETCH per fetchBatchCount,
// then the messages themselves in UID FETCHes of up to fetchBatchCount
// messages and fetchBatchBytes. fn is called in UID order, with nil for a
// message expunged meanwhile; one over MaxMessageBytes, or larger than its
// announced size plus slack, comes with its header only (Truncated). An error
// from fn stops the fetch and is returned.
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
			err := c.fetchWhole(ctx, chunk, sizes, true, fn)
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
				if f, err = c.fetchHeader(ctx, uid); errors.Is(err, ErrGone) {
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
	err := c.run(ctx, "fetch sizes", commandLimits(commandBudget), func() error {
		bufs, err := c.c.Fetch(uidSet(uids), &imap.FetchOptions{UID: true, RFC822Size: true}).Collect()
		for _, b := range bufs {
			out[uint32(b.UID)] = b.RFC822Size
		}
		return err
	})
	return out, err
}

// fetchWhole fetches the messages uids in one UID FETCH and hands them to fn
// in order (nil for one expunged meanwhile). sizes are their RFC822.SIZE
// (known false: the caller has none); what the server sends beyond them is
// bounded by fetchLimits and within, as the message's own bound.
func (c *Conn) fetchWhole(ctx context.Context, uids []uint32, sizes map[uint32]int64, known bool, fn func(uint32, *Fetched) error) error {
	section := &imap.FetchItemBodySection{Peek: true}
	announced := make([]int64, len(uids))
	for i, uid := range uids {
		announced[i] = sizes[uid]
	}
	got := make(map[uint32]*Fetched, len(uids))
	err := c.run(ctx, "fetch", c.opts.fetchLimits(announced, known), func() error {
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
		f := got[uid]
		if f != nil {
			if f, err = c.bounded(ctx, f, c.opts.messageBound(sizes[uid], known)); err != nil {
				return err
			}
		}
		if err := fn(uid, f); err != nil {
			return err
		}
	}
	return nil
}

// bounded returns f if its body is within bound, else f with its header only
// (Truncated), as for a message over MaxMessageBytes: the header from what
// arrived, or fetched again when the guard cut the body to NIL. nil, nil: the
// message was expunged meanwhile.
func (c *Conn) bounded(ctx context.Context, f *Fetched, bound int64) (*Fetched, error) {
	if f.Raw != nil && int64(len(f.Raw)) <= bound {
		return f, nil
	}
	c.log.Warn("imap: message larger than the server announced; delivering its header only",
		"uid", f.UID, "bound", bound, "got", len(f.Raw), "cut", f.Raw == nil)
	if h := headerOf(f.Raw); h != nil {
		f.Raw, f.Truncated = h, true
		return f, nil
	}
	h, err := c.fetchHeader(ctx, f.UID)
	if errors.Is(err, ErrGone) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if h.Date.IsZero() {
		h.Date = f.Date
	}
	return h, nil
}

// fetchHeader fetches the header of message uid (BODY.PEEK[HEADER]), for a
// message delivered with its header only. A header over maxHeaderBytes is
// cut by the guard and ends at its last complete line.
func (c *Conn) fetchHeader(ctx context.Context, uid uint32) (*Fetched, error) {
	section := &imap.FetchItemBodySection{Peek: true, Specifier: imap.PartSpecifierHeader}
	var out *Fetched
	err := c.run(ctx, "fetch header", headerLimits(), func() error {
		set := imap.UIDSetNum(imap.UID(uid))
		bufs, err := c.c.Fetch(set, &imap.FetchOptions{UID: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
		if err != nil {
			return err
		}
		for _, b := range bufs {
			if uint32(b.UID) == uid {
				out = &Fetched{UID: uid, Raw: b.FindBodySection(section), Date: b.InternalDate, Truncated: true}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, ErrGone
	}
	if len(out.Raw) >= maxHeaderBytes {
		if i := bytes.LastIndexByte(out.Raw, '\n'); i >= 0 {
			out.Raw = out.Raw[:i+1]
		}
	}
	return out, nil
}

func uidSet(uids []uint32) imap.UIDSet {
	var set imap.UIDSet
	for _, u := range uids {
		set.AddNum(imap.UID(u))
	}
	return set
}

// headerOf returns a copy of raw's header section up to and including the
// empty line that ends it (RFC 5322 §2.1), nil if raw has no complete header.
// The copy lets the rest of a large body go.
func headerOf(raw []byte) []byte {
	if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
		return bytes.Clone(raw[:i+4])
	}
	if i := bytes.Index(raw, []byte("\n\n")); i >= 0 {
		return bytes.Clone(raw[:i+2])
	}
	return nil
}
