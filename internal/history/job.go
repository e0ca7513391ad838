// SPDX-License-Identifier: Apache-2.0

package history

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/emaillistener/emaillistener/internal/backoff"
	"github.com/emaillistener/emaillistener/internal/ingest"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/source"
)

// job is one mailbox's load. prog is shared under mu; the rest is owned by run.
type job struct {
	l     *Loader
	mb    *mail.Mailbox
	proto Protocol
	query mail.Query
	done  chan struct{}
	log   *slog.Logger

	mu   sync.Mutex
	prog mail.HistoryProgress

	// owned by run
	handled map[string]map[string]bool // per folder, the refs delivered or skipped (for resuming)
	ran     bool                       // a slot was had once (Started is set)
}

func (j *job) progress() mail.HistoryProgress {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.prog
}

func (j *job) update(f func(p *mail.HistoryProgress)) {
	j.mu.Lock()
	f(&j.prog)
	p := j.prog
	j.mu.Unlock()
	if hook := j.l.opts.OnProgress; hook != nil {
		hook(j.mb, p)
	}
}

func (j *job) finished() bool {
	select {
	case <-j.done:
		return true
	default:
		return false
	}
}

func (j *job) run(ctx context.Context) {
	defer close(j.done)
	defer j.l.opts.Panics.Recover(j.log, "history", nil)
	j.handled = make(map[string]map[string]bool)
	park := backoff.Backoff{Policy: j.l.opts.Park}
	for {
		err := j.runInSlot(ctx)
		var pe *parkError
		if !errors.As(err, &pe) || ctx.Err() != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			j.finish(err)
			return
		}
		// The client does not take emails: give the slot to the next load
		// and come back later, resuming after what was delivered.
		wait := park.Next()
		j.l.metrics.parked.Inc()
		j.log.Warn("history load waits for the client, slot released", "retry_in", wait.Round(time.Second), "err", pe.err)
		j.update(func(p *mail.HistoryProgress) {
			p.State = mail.HistoryQueued
			p.Error = fmt.Sprintf("the client does not accept emails (%v); retrying at %s", pe.err, time.Now().Add(wait).UTC().Format(time.RFC3339))
		})
		if backoff.Sleep(ctx, wait) != nil {
			j.finish(ctx.Err())
			return
		}
	}
}

// runInSlot waits for a slot and runs the load in it until it is done, fails
// for good, or must park (*parkError).
func (j *job) runInSlot(ctx context.Context) error {
	select {
	case j.l.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-j.l.slots }()
	j.l.metrics.active.Inc()
	defer j.l.metrics.active.Dec()
	first := !j.ran
	j.ran = true
	j.update(func(p *mail.HistoryProgress) {
		p.State, p.Error = mail.HistoryRunning, ""
		if first {
			p.Started = time.Now()
		}
	})
	j.log.Info("history load started", "filter", j.progress().Filter)

	b := backoff.Backoff{Policy: j.l.opts.Retry}
	var err error
	for attempt := 1; attempt <= j.l.opts.Attempts; attempt++ {
		var pe *parkError
		if err = j.attempt(ctx); err == nil || ctx.Err() != nil || mail.ClassOf(err) == mail.ClassAuth || errors.As(err, &pe) {
			break
		}
		j.log.Warn("history load interrupted, resuming", "attempt", attempt, "err", err)
		if b.Wait(ctx) != nil {
			break
		}
	}
	return err
}

// parkError stops a load whose deliveries fail although the load itself is
// fine: the client (Creatio) is down or refuses for now.
type parkError struct{ err error }

func (e *parkError) Error() string { return "history: client unavailable: " + e.err.Error() }
func (e *parkError) Unwrap() error { return e.err }

func (j *job) finish(err error) {
	p := j.progress()
	switch {
	case err == nil:
		j.l.metrics.loads.WithLabelValues(mail.HistoryDone).Inc()
		j.update(func(p *mail.HistoryProgress) { p.State, p.Finished, p.Folder = mail.HistoryDone, time.Now(), "" })
		j.log.Info("history load done", "found", p.Found, "delivered", p.Delivered, "skipped", p.Skipped,
			"duration", time.Since(p.Started).Round(time.Millisecond))
	case errors.Is(err, context.Canceled):
		j.l.metrics.loads.WithLabelValues("cancelled").Inc()
		j.update(func(p *mail.HistoryProgress) {
			p.State, p.Finished, p.Error = mail.HistoryFailed, time.Now(), "cancelled (replaced, closed or shutting down)"
		})
	default:
		j.l.metrics.loads.WithLabelValues(mail.HistoryFailed).Inc()
		j.update(func(p *mail.HistoryProgress) {
			p.State, p.Finished, p.Error = mail.HistoryFailed, time.Now(), err.Error()
		})
		j.log.Error("history load failed", "err", err, "delivered", p.Delivered)
	}
}

// attempt runs the load on one session, resuming after what earlier attempts
// handled.
func (j *job) attempt(ctx context.Context) error {
	lock := j.l.opts.Lockout
	if lock != nil {
		if until, reason, held := lock.Check(j.mb); held {
			return &mail.Error{Class: mail.ClassAuth, Op: "login", Err: fmt.Errorf(
				"%s (these credentials are not tried again before %s, to protect the account from a lock-out)", reason, until.UTC().Format(time.RFC3339))}
		}
	}
	sess, err := j.proto.Dial(ctx, j.mb)
	if err != nil {
		if lock != nil && mail.ClassOf(err) == mail.ClassAuth {
			lock.Failed(j.mb, err.Error())
		}
		return err
	}
	defer sess.Close()
	if lock != nil {
		lock.Succeeded(j.mb)
	}
	folders, err := j.folders(ctx, sess)
	if err != nil {
		return err
	}
	for _, f := range folders {
		if err := j.loadFolder(ctx, sess, f); err != nil {
			return err
		}
	}
	return nil
}

func (j *job) folders(ctx context.Context, sess Session) ([]string, error) {
	list, err := sess.Folders(ctx)
	if err != nil {
		return nil, err
	}
	out, missing := source.Watched(list, source.ConfiguredFolders(sess, j.mb), j.proto.WatchByDefault)
	for _, id := range missing {
		j.log.Warn("configured folder does not exist, not loaded", "folder", id)
	}
	return out, nil
}

// loadFolder searches one folder and delivers the matches: the fetcher (this
// goroutine) feeds a small channel that Deliverers goroutines drain.
func (j *job) loadFolder(ctx context.Context, sess Session, folder string) error {
	found, err := sess.Search(ctx, folder, j.query)
	if mail.ClassOf(err) == mail.ClassConfig {
		j.log.Warn("folder vanished, not loaded", "folder", folder, "err", err)
		return nil
	}
	if err != nil {
		return err
	}
	handled := j.handled[folder]
	if handled == nil {
		handled = make(map[string]bool)
		j.handled[folder] = handled
		j.update(func(p *mail.HistoryProgress) { p.Found += len(found) })
	}
	refs := found[:0:0]
	for _, r := range found {
		if !handled[r.ID] {
			refs = append(refs, r)
		}
	}
	j.update(func(p *mail.HistoryProgress) { p.Folder = folder })
	if len(refs) == 0 {
		return nil
	}
	dctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	type item struct {
		f       *source.Fetched
		release func() // its share of the budget
	}
	work := make(chan item, 2*j.l.opts.Deliverers)
	var wg sync.WaitGroup
	var mu sync.Mutex // guards handled while the deliverers run
	done := func(id string) {
		mu.Lock()
		handled[id] = true
		mu.Unlock()
	}
	for i := 0; i < j.l.opts.Deliverers; i++ {
		wg.Go(func() {
			defer j.l.opts.Panics.Recover(j.log, "history", nil)
			for it := range work {
				err := func() error {
					defer it.release() // also when deliver panics
					return j.deliver(dctx, sess, it.f)
				}()
				if err != nil {
					cancel(err)
					return
				}
				done(it.f.Ref.ID)
			}
		})
	}
	ferr := sess.FetchMany(dctx, refs, func(ref source.Ref, f *source.Fetched) error {
		if f == nil {
			j.skip(ingest.SkipGone)
			done(ref.ID)
			return nil
		}
		release := func() {}
		if j.l.opts.Budget != nil {
			r, err := j.l.opts.Budget.Acquire(dctx, int64(len(f.Raw)))
			if err != nil {
				return errDelivering
			}
			release = r
		}
		select {
		case work <- item{f, release}:
			return nil
		case <-dctx.Done():
			release()
			return errDelivering // the deliverer's error is the cause of dctx
		}
	})
	if errors.Is(ferr, errDelivering) {
		ferr = nil
	}
	close(work)
	wg.Wait()
	for it := range work { // left behind by deliverers that stopped
		it.release()
	}
	if ferr != nil {
		return ferr
	}
	if err := context.Cause(dctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// errDelivering stops a fetch because delivery failed; the delivery error is
// what the load reports.
var errDelivering = errors.New("history: delivery failed")

// deliver takes one message through the ingest step; a message that cannot be
// delivered for good is skipped, a client that does not take it parks the
// load, anything else stops it (and it resumes).
func (j *job) deliver(ctx context.Context, sess Session, f *source.Fetched) error {
	skipped, err := j.l.step.Run(ctx, j.log, j.mb, f)
	if err != nil {
		if ctx.Err() == nil {
			return &parkError{err} // Deliver gave up for now
		}
		return err
	}
	if skipped != "" {
		j.skip(skipped)
		return nil
	}
	j.l.metrics.emails.WithLabelValues("delivered").Inc()
	j.update(func(p *mail.HistoryProgress) { p.Delivered++ })
	if m, ok := sess.(Marker); ok {
		if err := m.MarkDelivered(ctx, f.Ref); err != nil {
			j.log.Warn("could not mark a delivered message on the server", "folder", f.Ref.Folder, "err", err)
		}
	}
	return nil
}

func (j *job) skip(string) {
	j.l.metrics.emails.WithLabelValues("skipped").Inc()
	j.update(func(p *mail.HistoryProgress) { p.Skipped++ })
}
