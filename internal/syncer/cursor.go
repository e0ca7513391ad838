// SPDX-License-Identifier: Apache-2.0

package syncer

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// unsavedRetry is how often a worker retries cursors the store did not take,
// waking from its wait for it.
const unsavedRetry = 5 * time.Second

// staleFence is implemented by cursor-store errors that refuse a write for a
// stale fence: another node has taken the mailbox over.
type staleFence interface{ StaleFence() bool }

func isStaleFence(err error) bool {
	var s staleFence
	return errors.As(err, &s) && s.StaleFence()
}

// putCursor stamps the cursor with the held lease's fence: in a cluster a
// paused or partitioned former owner cannot move it (the store rejects a lower
// fence), and the rejection ends its session.
//
// A store that cannot be reached (Redis down) does not stop the mailbox: the
// cursor is kept in memory, used by loadCursor, and written when the store
// answers again (flushCursors). Mail keeps flowing through a Redis outage; a
// crash during one re-delivers from the last saved cursor (duplicates, never
// loss).
func (w *worker) putCursor(ctx context.Context, folder string, c mail.Cursor) error {
	c.Fence = w.fence
	if len(w.unsaved) > 0 && time.Now().Before(w.saveRetryAt) {
		// The store failed a moment ago: a hung Redis costs its full timeout
		// per call, so do not wait for it on every message.
		w.keepUnsaved(folder, c)
		return nil
	}
	err := w.m.opts.Cursors.PutCursor(ctx, w.id, folder, c)
	if isStaleFence(err) {
		return mail.Wrap(mail.ClassInternal, "save cursor", err)
	}
	if err != nil {
		if len(w.unsaved) == 0 {
			w.log.Warn("cursor store unreachable: keeping the sync position in memory until it answers", "folder", folder, "err", err)
		}
		w.saveRetryAt = time.Now().Add(w.m.unsavedRetry)
		w.keepUnsaved(folder, c)
		return nil
	}
	w.remember(folder, c)
	if w.unsaved[folder] {
		delete(w.unsaved, folder)
		w.m.metrics.unsavedCursors.Dec()
		if len(w.unsaved) == 0 {
			w.log.Info("cursor store answers again: sync positions saved")
		}
	}
	return nil
}

func (w *worker) remember(folder string, c mail.Cursor) {
	if w.cursors == nil {
		w.cursors = make(map[string]mail.Cursor)
	}
	w.cursors[folder] = c
}

func (w *worker) keepUnsaved(folder string, c mail.Cursor) {
	w.remember(folder, c)
	if w.unsaved == nil {
		w.unsaved = make(map[string]bool)
	}
	if !w.unsaved[folder] {
		w.unsaved[folder] = true
		w.m.metrics.unsavedCursors.Inc()
	}
}

// flushCursors retries the cursors the store did not take, at most every
// unsavedRetry. It fails only when the store refuses one for a stale fence.
func (w *worker) flushCursors(ctx context.Context) error {
	if len(w.unsaved) == 0 || time.Now().Before(w.saveRetryAt) {
		return nil
	}
	w.saveRetryAt = time.Time{}
	for _, folder := range slices.Sorted(maps.Keys(w.unsaved)) {
		if err := w.putCursor(ctx, folder, w.cursors[folder]); err != nil {
			return err
		}
		if w.unsaved[folder] {
			return nil // still unreachable: try again later
		}
	}
	return nil
}

// forgetUnsaved drops the cursors not yet saved when a new lease starts: after
// a lease was lost another node may have moved the mailbox on, and the store
// (reachable again, since it granted the lease) is the truth. At worst this
// re-delivers what was delivered while the store was down.
func (w *worker) forgetUnsaved() {
	for folder := range w.unsaved {
		delete(w.unsaved, folder)
		w.m.metrics.unsavedCursors.Dec()
	}
}

// loadCursor reads a folder's cursor. A cursor not yet saved (store
// unreachable) is newer than the store's; while the store cannot be read, the
// last one read or written is used. When the store has lost one this
// supervisor read or wrote before (Redis restarted without persistence), the
// last known value is restored from memory: restarting at the folder's end
// would skip the mail that arrived meanwhile.
func (w *worker) loadCursor(ctx context.Context, folder string) (mail.Cursor, bool, error) {
	mine, had := w.cursors[folder]
	if had && w.unsaved[folder] {
		return mine, true, nil
	}
	c, ok, err := w.m.opts.Cursors.Cursor(ctx, w.id, folder)
	if err != nil {
		if had {
			return mine, true, nil
		}
		return c, ok, err
	}
	if ok {
		w.remember(folder, c) // what we read too, not only what we wrote
		return c, true, nil
	}
	if !had {
		return c, false, nil
	}
	w.log.Warn("sync cursor missing from the store, restoring it", "folder", folder)
	if err := w.putCursor(ctx, folder, mine); err != nil {
		return c, false, err
	}
	return mine, true, nil
}
