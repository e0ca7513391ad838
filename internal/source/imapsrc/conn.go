// SPDX-License-Identifier: Apache-2.0

package imapsrc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/source"
)

var errCommandTimeout = errors.New("imap command timeout")

// Conn is one authenticated IMAP connection. Its methods must be called from one
// goroutine at a time (the mailbox's supervisor); only the exists callback runs
// on go-imap's reader goroutine.
type Conn struct {
	c    *imapclient.Client
	g    *guard // bounds what the server sends; limits are set per command
	opts Options
	log  *slog.Logger
}

// FolderStatus is what STATUS/EXAMINE tell about a folder.
type FolderStatus struct {
	UIDValidity uint32
	UIDNext     uint32 // 0 when the server did not say
	Messages    uint32
}

// MessageRef identifies a message of the selected folder.
type MessageRef struct {
	UID  uint32
	Size int64     // RFC822.SIZE; 0 when unknown
	Date time.Time // INTERNALDATE; zero when unknown
	// MessageID is the Message-ID header's value as the server has it (in
	// listings of new mail), to recognise the message across a UIDVALIDITY
	// change; empty when unknown or absent.
	MessageID string
}

// messageIDSection is the header field listings fetch with every message.
var messageIDSection = &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Message-ID"}, Peek: true}

// Fetched is a downloaded message of the selected folder.
type Fetched struct {
	UID       uint32
	Raw       []byte
	Date      time.Time
	Truncated bool // over the size limit: Raw holds the header only
}

// run executes one command under the command timeout and the response limits
// lim, closing the connection if ctx ends first so that the blocked go-imap
// call returns.
func (c *Conn) run(ctx context.Context, op string, lim *limits, f func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeoutCause(ctx, c.opts.CommandTimeout, errCommandTimeout)
	defer cancel()
	c.g.set(lim)
	stop := context.AfterFunc(cctx, func() { c.c.Close() })
	err := f()
	if !stop() {
		return classify(op, ctxErr(cctx, err))
	}
	return guarded(c.g, op, err)
}

// guarded classifies err, the failure of op. When the guard broke the
// connection, its violation is the cause, and when reading from the
// connection failed, that error is: go-imap keeps only the text of a read
// error (readResponse in imapclient/client.go formats it with %v).
func guarded(g *guard, op string, err error) error {
	if err == nil {
		return nil
	}
	if v := g.violation(); v != nil {
		return protocolError(op, v)
	}
	if cerr := g.connError(); cerr != nil && !closedByPeer(cerr) {
		return classify(op, cerr)
	}
	if bye := g.byeText(); bye != "" {
		return &mail.Error{Class: mail.ClassConnect, Op: op, Err: fmt.Errorf("the server closed the connection: %s", bye)}
	}
	if closedByPeer(err) || closedByPeer(g.connError()) {
		return &mail.Error{Class: mail.ClassConnect, Op: op, Err: errClosedByServer}
	}
	return classify(op, err)
}

// errClosedByServer replaces what Go says when the server hangs up ("EOF",
// "use of closed network connection" once go-imap closed its side in turn).
var errClosedByServer = errors.New("connection closed by the server")

// closedByPeer reports whether err is the connection having ended under us.
func closedByPeer(err error) bool {
	return err != nil && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed))
}

// readFailure classifies err, the failure of op while reading through g with
// the deadline ctx: the context's verdict first, then the guard's.
func readFailure(ctx context.Context, g *guard, op string, err error) error {
	if ctx.Err() != nil {
		return classify(op, ctxErr(ctx, err))
	}
	return guarded(g, op, err)
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
	c.g.set(commandLimits(commandBudget))
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
	return c.run(ctx, "noop", commandLimits(noopBudget), func() error { return c.c.Noop().Wait() })
}

// Status returns a folder's UIDVALIDITY and UIDNEXT without selecting it.
func (c *Conn) Status(ctx context.Context, folder string) (FolderStatus, error) {
	var st FolderStatus
	err := c.run(ctx, "status "+folder, commandLimits(commandBudget), func() error {
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
	err := c.run(ctx, "examine "+folder, commandLimits(commandBudget), func() error {
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
	return c.listUIDs(ctx, "list new", imap.UIDRange{Start: imap.UID(after + 1), Stop: 0}, commandLimits(listAfterBudget))
}

// ListRange returns the messages of the selected folder with UIDs from..to,
// in UID order: a large backlog is listed in pages, each within a response
// budget sized to its range.
func (c *Conn) ListRange(ctx context.Context, from, to uint32) ([]MessageRef, error) {
	if to < from || to-from >= maxListRange {
		return nil, mail.Errorf(mail.ClassInternal, "list range", "range %d:%d is not 1 to %d UIDs", from, to, maxListRange)
	}
	return c.listUIDs(ctx, "list range", imap.UIDRange{Start: imap.UID(from), Stop: imap.UID(to)},
		commandLimits(listRangeBudget(to-from+1)))
}

func (c *Conn) listUIDs(ctx context.Context, op string, r imap.UIDRange, lim *limits) ([]MessageRef, error) {
	var refs []MessageRef
	err := c.run(ctx, op, lim, func() error {
		cmd := c.c.Fetch(imap.UIDSet{r}, &imap.FetchOptions{UID: true, RFC822Size: true, InternalDate: true,
			BodySection: []*imap.FetchItemBodySection{messageIDSection}})
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
			if uid := buf.UID; uid >= r.Start && (r.Stop == 0 || uid <= r.Stop) {
				refs = append(refs, MessageRef{UID: uint32(uid), Size: buf.RFC822Size, Date: buf.InternalDate,
					MessageID: headerValue(buf.FindBodySection(messageIDSection))})
			}
		}
		return cmd.Close()
	})
	sortRefs(refs)
	return refs, err
}

// Persist selects folder read-write and then read-only again. Courier keeps
// a folder's UIDVALIDITY and UIDs only in memory, following the clock and
// renumbering at will, until a read-write SELECT (or a new message) makes it
// store them; a listener that only EXAMINEs would see them change on every
// connection. Servers that store them anyway lose nothing but the \Recent
// flags of the folder.
func (c *Conn) Persist(ctx context.Context, folder string) (FolderStatus, error) {
	err := c.run(ctx, "select "+folder, commandLimits(commandBudget), func() error {
		_, err := c.c.Select(folder, nil).Wait()
		return err
	})
	if err != nil {
		return FolderStatus{}, err
	}
	return c.Examine(ctx, folder)
}

// LastUID returns the UID of the selected folder's last message (0 when the
// folder is empty), for servers whose EXAMINE leaves UIDNEXT out: "n:*"
// always matches the last message (RFC 9051 §6.4.8), so the highest n asks
// for it alone.
func (c *Conn) LastUID(ctx context.Context) (uint32, error) {
	var last uint32
	err := c.run(ctx, "last uid", commandLimits(commandBudget), func() error {
		cmd := c.c.Fetch(imap.UIDSet{{Start: imap.UID(math.MaxUint32), Stop: 0}}, &imap.FetchOptions{UID: true})
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
			last = max(last, uint32(buf.UID))
		}
		return cmd.Close()
	})
	return last, err
}

// SearchSince returns messages of the selected folder that arrived on or after
// the day of since (IMAP SINCE has day granularity).
func (c *Conn) SearchSince(ctx context.Context, since time.Time) ([]MessageRef, error) {
	var refs []MessageRef
	err := c.run(ctx, "search since", searchLimits(), func() error {
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

// ErrGone means the message was expunged before we could fetch it.
var ErrGone = source.ErrGone

func sortRefs(refs []MessageRef) {
	slices.SortFunc(refs, func(a, b MessageRef) int { return int(int64(a.UID) - int64(b.UID)) })
}

// Search returns the UIDs of the selected folder matching q, ascending.
func (c *Conn) Search(ctx context.Context, q mail.Query) ([]uint32, error) {
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
	err := c.run(ctx, "search", searchLimits(), func() error {
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

// headerValue is the value of the one header field in a HEADER.FIELDS
// answer ("Message-ID: <x@y>\r\n\r\n"), unfolded and trimmed; empty when
// there is none.
func headerValue(b []byte) string {
	_, v, ok := strings.Cut(string(b), ":")
	if !ok {
		return ""
	}
	return strings.Join(strings.Fields(v), " ")
}
