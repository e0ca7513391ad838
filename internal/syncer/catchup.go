// SPDX-License-Identifier: Apache-2.0

package syncer

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/emaillistener/emaillistener/internal/ingest"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/source"
)

// watch is the steady state: catch up every folder, then wait for the next
// change, forever. The first folder is the one a push connection watches;
// every FolderPoll all folders are checked.
func (w *worker) watch(ctx context.Context, sess Session, mb *mail.Mailbox, folders []string) error {
	waiter, _ := sess.(Waiter)
	signaller, _ := sess.(Signaller)
	due := folders
	nextPoll := time.Now().Add(w.m.opts.FolderPoll)
	for {
		err := w.offload("catch up", func() error {
			for i, f := range due {
				err := w.catchUp(ctx, sess, mb, f)
				if err != nil && i > 0 && f != folders[0] && mail.ClassOf(err) == mail.ClassConfig {
					w.log.Warn("watched folder is gone, skipping it", "folder", f, "err", err)
					continue
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		w.maybeRefreshBeforeExpiry(ctx, w.mailbox())
		if err := w.flushCursors(ctx); err != nil {
			return err
		}
		changed, err := w.wait(ctx, sess, waiter, signaller, folders, nextPoll)
		if err != nil {
			return err
		}
		switch now := time.Now(); {
		case !now.Before(nextPoll):
			due, nextPoll = folders, now.Add(w.m.opts.FolderPoll)
		case changed != nil:
			due = changed
		default:
			due = folders[:1] // a quiet round: re-check the watched folder
		}
	}
}

// wait waits for the next change: pushed by the session itself, signalled by
// its hub, or none until the next round is due. It returns the folders that
// changed, nil when none is known to have.
func (w *worker) wait(ctx context.Context, sess Session, waiter Waiter, signaller Signaller, folders []string, nextPoll time.Time) ([]string, error) {
	d := w.m.opts.IdleMax
	if len(w.unsaved) > 0 {
		d = min(d, w.m.unsavedRetry)
	}
	if len(folders) > 1 || waiter == nil {
		d = min(d, max(time.Until(nextPoll), time.Millisecond))
	}
	if mb := w.mailbox(); mb.UseOAuth {
		if exp, ok := tokenExpiry(mb.AccessToken); ok {
			d = min(d, max(time.Until(exp.Add(-tokenRefreshLead)), time.Second))
		}
	}
	if waiter != nil {
		changed, err := waiter.Wait(ctx, folders, d)
		if p, ok := sess.(interface{ Push() string }); ok {
			if push := p.Push(); push != w.snapshot().Push {
				w.update(func(s *mail.Status) { s.Push = push })
			}
		}
		if changed != nil {
			w.found = time.Now()
			if pt, ok := sess.(pushTimer); ok {
				if t := pt.Pushed(); !t.IsZero() {
					w.found = t
				}
			}
		}
		return changed, err
	}
	var signal <-chan []string
	if signaller != nil {
		signal = signaller.Signal()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case changed := <-signal:
			if changed == nil {
				changed = folders
			} else if changed = watchedOnly(changed, folders); len(changed) == 0 {
				continue // a folder this mailbox does not sync (Sent Items, …)
			}
			w.found = time.Now()
			return changed, nil
		case <-t.C:
			return nil, nil
		}
	}
}

// watchedOnly keeps the folders of changed that are watched: a hub may report
// any folder of the mailbox (an Exchange subscription covers them all).
func watchedOnly(changed, watched []string) []string {
	out := changed[:0:0]
	for _, f := range changed {
		if slices.Contains(watched, f) && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// catchUp delivers every message of folder after its cursor, page by page.
func (w *worker) catchUp(ctx context.Context, sess Session, mb *mail.Mailbox, folder string) error {
	for {
		cur, ok, err := w.loadCursor(ctx, folder)
		if err != nil {
			return err
		}
		if !ok { // the folder appeared after the session started
			return w.ensureCursor(ctx, sess, folder)
		}
		ch, err := sess.Changes(ctx, folder, cur.Data)
		if err != nil {
			return err
		}
		if ch.Reset {
			w.m.metrics.cursorResets.Inc()
		}
		for _, ref := range ch.Refs {
			if err := w.deliverOne(ctx, sess, mb, ref); err != nil {
				return err
			}
		}
		if ch.Next != "" {
			if err := w.advance(ctx, folder, ch.Next); err != nil {
				return err
			}
		}
		if !ch.More {
			return nil
		}
	}
}

// deliverOne fetches, parses and delivers one message, then advances the
// cursor past it.
func (w *worker) deliverOne(ctx context.Context, sess Session, mb *mail.Mailbox, ref source.Ref) error {
	found := w.found
	if found.IsZero() {
		found = time.Now()
	}
	w.found = time.Time{}
	if b := w.m.opts.Budget; b != nil {
		release, err := b.Acquire(ctx, w.weight(ref))
		if err != nil {
			return err
		}
		defer release()
	}
	f, err := sess.Fetch(ctx, ref)
	if errors.Is(err, source.ErrGone) {
		w.m.metrics.skipped.WithLabelValues(ingest.SkipGone).Inc()
		return w.advance(ctx, ref.Folder, ref.Cursor)
	}
	if err != nil {
		return err
	}
	skipped, err := w.m.step.Run(ctx, w.log, mb, f)
	if err != nil {
		return err
	}
	if skipped != "" {
		w.m.metrics.skipped.WithLabelValues(skipped).Inc()
	} else {
		w.m.metrics.delivered.Inc()
		w.m.metrics.latency.Observe(time.Since(found).Seconds())
		w.update(func(s *mail.Status) { s.Delivered++; s.LastEventAt = time.Now() })
		if m, ok := sess.(Marker); ok {
			if err := m.MarkDelivered(ctx, ref); err != nil {
				w.log.Warn("could not mark a delivered message on the server", "folder", ref.Folder, "err", err)
			}
		}
	}
	return w.advance(ctx, ref.Folder, ref.Cursor)
}

// advance saves the folder's cursor after an acknowledgement. The write is
// the commit point: it happens after the client's acknowledgement, and a
// write that fails means re-delivery, never loss. An empty cursor (a source
// that advances per batch only) saves nothing yet.
func (w *worker) advance(ctx context.Context, folder, cursor string) error {
	if cursor == "" {
		return nil
	}
	return w.putCursor(context.WithoutCancel(ctx), folder, mail.Cursor{Data: cursor})
}

// unknownSizeWeight is what a message of unknown size takes of the budget.
const unknownSizeWeight = 1 << 20

// weight is the share of the in-flight budget a message takes: its size, or
// only a header's worth when it is over the fetch limit.
func (w *worker) weight(ref source.Ref) int64 {
	switch max := w.m.opts.MaxMessageBytes; {
	case ref.Size <= 0:
		return unknownSizeWeight
	case max > 0 && ref.Size > max:
		return 64 << 10
	default:
		return ref.Size
	}
}
