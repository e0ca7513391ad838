package syncer

import (
	"context"
	"errors"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/source"
)

// uidValidityLookback is how far before the last delivered message a
// UIDVALIDITY change re-delivers: generous, since the client deduplicates by
// Message-ID and losing mail is worse than sending it twice.
const uidValidityLookback = 24 * time.Hour

// catchUp delivers every message of the selected folder above its cursor. st is
// the folder's status from EXAMINE, or zero when the folder stayed selected
// (then UIDVALIDITY cannot have changed: the server would have closed it).
func (w *worker) catchUp(ctx context.Context, sess Session, mb *mail.Mailbox, folder string, st source.FolderStatus) error {
	cur, ok, err := w.loadCursor(ctx, folder)
	if err != nil {
		return err
	}
	if !ok { // folder appeared after the session started
		return w.startCursor(ctx, folder, st)
	}
	var refs []source.MessageRef
	if st.UIDValidity != 0 && st.UIDValidity != cur.UIDValidity {
		since := cur.LastDate.Add(-uidValidityLookback)
		w.log.Warn("UIDVALIDITY changed, re-delivering recent mail", "folder", folder,
			"old", cur.UIDValidity, "new", st.UIDValidity, "since", since)
		w.m.metrics.uidValidity.Inc()
		if refs, err = sess.SearchSince(ctx, since); err != nil {
			return err
		}
		// Not persisted until a message is delivered: a crash before that
		// repeats the re-delivery instead of skipping it.
		cur = mail.Cursor{UIDValidity: st.UIDValidity, LastDate: cur.LastDate}
		if len(refs) == 0 && st.UIDNext > 0 {
			cur.LastUID = st.UIDNext - 1
			return w.putCursor(ctx, folder, cur)
		}
	} else {
		if st.UIDNext > 0 && st.UIDNext <= cur.LastUID+1 {
			return nil
		}
		if rl, ok := sess.(rangeLister); ok && st.UIDNext > 0 && st.UIDNext-1-cur.LastUID > listPage {
			if err := w.catchUpPaged(ctx, sess, rl, mb, folder, st.UIDNext, &cur); err != nil {
				return err
			}
		}
		if refs, err = sess.ListAfter(ctx, cur.LastUID); err != nil {
			return err
		}
	}
	for _, ref := range refs {
		if err := w.deliverOne(ctx, sess, mb, folder, ref, &cur); err != nil {
			return err
		}
	}
	return nil
}

// rangeLister is an optional Session capability: listing the messages of a
// UID range, so that a large backlog (after a long outage) is listed in pages
// instead of in one response the source may have to refuse as too large.
type rangeLister interface {
	ListRange(ctx context.Context, from, to uint32) ([]source.MessageRef, error)
}

// listPage is how many UIDs one ListRange asks for.
const listPage = 20_000

// catchUpPaged delivers the messages between the cursor and uidNext page by
// page; ListAfter then picks up what arrived since.
func (w *worker) catchUpPaged(ctx context.Context, sess Session, rl rangeLister, mb *mail.Mailbox, folder string, uidNext uint32, cur *mail.Cursor) error {
	const page = listPage
	for from := cur.LastUID + 1; from < uidNext; from += page {
		to := min(from+page-1, uidNext-1)
		refs, err := rl.ListRange(ctx, from, to)
		if err != nil {
			return err
		}
		for _, ref := range refs {
			if err := w.deliverOne(ctx, sess, mb, folder, ref, cur); err != nil {
				return err
			}
		}
		if to > cur.LastUID { // an empty page still moves the cursor on
			if err := w.advance(ctx, folder, to, time.Time{}, cur); err != nil {
				return err
			}
		}
		if to == uidNext-1 {
			break
		}
	}
	return nil
}

// deliverOne fetches, parses and delivers one message, then advances the cursor.
func (w *worker) deliverOne(ctx context.Context, sess Session, mb *mail.Mailbox, folder string, ref source.MessageRef, cur *mail.Cursor) error {
	found := time.Now()
	if t := w.woke.Swap(0); t != 0 {
		found = time.Unix(0, t)
	}
	if b := w.m.opts.Budget; b != nil {
		release, err := b.Acquire(ctx, w.weight(ref))
		if err != nil {
			return err
		}
		defer release()
	}
	f, err := sess.Fetch(ctx, ref)
	if errors.Is(err, source.ErrGone) {
		w.m.metrics.skipped.WithLabelValues("expunged").Inc()
		return w.advance(ctx, folder, ref.UID, time.Time{}, cur)
	}
	if err != nil {
		return err
	}
	msg, err := w.m.opts.Parser(f.Raw)
	if err != nil {
		w.log.Error("unparseable message skipped", "folder", folder, "uid", ref.UID, "err", err)
		w.m.metrics.skipped.WithLabelValues("unparseable").Inc()
		return w.advance(ctx, folder, ref.UID, f.Date, cur)
	}
	if msg.Date.IsZero() {
		msg.Date = f.Date.UTC()
	}
	if f.Truncated {
		msg.MarkTruncated()
	}
	if err := w.m.opts.Sink.Deliver(ctx, mb, msg); err != nil {
		var p permanent
		if !errors.As(err, &p) || !p.PermanentFailure() {
			return err
		}
		w.log.Error("client refused the email for good, skipped", "folder", folder, "uid", ref.UID,
			"message_id", msg.MessageID, "err", err)
		w.m.metrics.skipped.WithLabelValues("rejected").Inc()
		return w.advance(ctx, folder, ref.UID, f.Date, cur)
	}
	w.m.metrics.delivered.Inc()
	w.m.metrics.latency.Observe(time.Since(found).Seconds())
	w.update(func(s *Status) { s.Delivered++; s.LastEventAt = time.Now() })
	return w.advance(ctx, folder, ref.UID, f.Date, cur)
}

func (w *worker) advance(ctx context.Context, folder string, uid uint32, date time.Time, cur *mail.Cursor) error {
	if uid > cur.LastUID {
		cur.LastUID = uid
	}
	if !date.IsZero() {
		cur.LastDate = date.UTC()
	}
	// The cursor write is the commit point: it happens after the client's
	// acknowledgement, and a write that fails means re-delivery, never loss.
	return w.putCursor(context.WithoutCancel(ctx), folder, *cur)
}

// unknownSizeWeight is what a message of unknown size takes of the budget.
const unknownSizeWeight = 1 << 20

// weight is the share of the in-flight budget a message takes: its size, or
// only a header's worth when it is over the fetch limit.
func (w *worker) weight(ref source.MessageRef) int64 {
	switch max := w.m.opts.MaxMessageBytes; {
	case ref.Size <= 0:
		return unknownSizeWeight
	case max > 0 && ref.Size > max:
		return 64 << 10
	default:
		return ref.Size
	}
}
