// SPDX-License-Identifier: Apache-2.0

package syncer

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/emaillistener/emaillistener/internal/backoff"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/obs"
	"github.com/emaillistener/emaillistener/internal/source"
)

// worker supervises one mailbox. Everything below "owned by run" is touched only
// by the run goroutine; mb and status are shared under mu.
type worker struct {
	m    *Manager
	id   mail.MailboxID
	log  *slog.Logger
	kick chan struct{} // buffered(1): retry the connection now
	prev *worker       // the worker this one replaces; read once its run returned

	mu     sync.Mutex
	mb     *mail.Mailbox
	status mail.Status

	// owned by run
	reported    error                  // the failure last reported to the client, nil if none
	refreshed   string                 // the access token a refresh was last requested for
	fence       uint64                 // fencing token of the held lease (cluster mode), stamped on cursor writes
	cursors     map[string]mail.Cursor // last cursor read or written per folder (cursor.go)
	unsaved     map[string]bool        // folders whose cursor the store has not taken yet (store unreachable)
	saveRetryAt time.Time              // while unsaved: next time to try the store
	found       time.Time              // when the pending change was pushed, for the latency metric
}

func (m *Manager) newWorker(mb *mail.Mailbox) *worker {
	w := &worker{
		m:      m,
		id:     mb.ID,
		log:    m.log.With("mailbox", string(mb.ID)),
		kick:   make(chan struct{}, 1),
		mb:     mb,
		status: mail.Status{State: mail.StateConnecting, Since: time.Now(), Kind: mb.Kind},
	}
	m.countState(mail.StateConnecting, 1)
	return w
}

func (w *worker) mailbox() *mail.Mailbox {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mb
}

func (w *worker) setMailbox(mb *mail.Mailbox) {
	w.mu.Lock()
	w.mb = mb
	w.mu.Unlock()
}

func (w *worker) snapshot() mail.Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.status
	s.Folders = append([]string(nil), s.Folders...)
	return s
}

// update changes the status under mu and keeps the per-state gauge in step.
func (w *worker) update(f func(s *mail.Status)) {
	w.mu.Lock()
	old := w.status.State
	f(&w.status)
	changed := w.status.State != old
	if changed {
		w.status.Since = time.Now()
		w.m.countState(old, -1)
		w.m.countState(w.status.State, 1)
	}
	snap, mb := w.status, w.mb
	w.mu.Unlock()
	if changed && w.m.opts.OnStatus != nil {
		w.m.opts.OnStatus(mb, snap)
	}
}

// finish marks the worker closed; closed subscriptions are not in the gauge.
func (w *worker) finish() {
	w.mu.Lock()
	w.m.countState(w.status.State, -1)
	w.status.State, w.status.Since = mail.StateClosed, time.Now()
	snap, mb := w.status, w.mb
	w.mu.Unlock()
	if w.m.opts.OnStatus != nil {
		w.m.opts.OnStatus(mb, snap)
	}
}

func (w *worker) retryNow() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// run supervises the mailbox; in cluster mode only while holding its lease.
func (w *worker) run(ctx context.Context) {
	defer w.finish()
	defer w.forgetUnsaved() // a later worker for the mailbox reads the store afresh
	if w.m.opts.Leaser == nil {
		w.supervise(ctx)
		return
	}
	for ctx.Err() == nil {
		lease, err := w.obtain(ctx)
		if err != nil {
			return
		}
		w.fence = lease.Fence()
		w.forgetUnsaved()
		// The fence log: with these two lines per hold, a test (or an operator)
		// can prove no mailbox was ever held by two nodes at once.
		w.log.Info("mailbox lease obtained", "fence", w.fence)
		lctx, cancel := lease.Context(ctx)
		w.supervise(lctx)
		cancel()
		select {
		case <-lease.Done():
			if ctx.Err() == nil {
				w.log.Warn("mailbox lease lost, session stopped", "fence", w.fence)
			}
		default:
		}
		// Logged before the release: from here on the session is over, and
		// another node may take the lease the moment it is released.
		w.log.Info("mailbox lease released", "fence", w.fence)
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		obs.Check(w.log, lease.Release(rctx), "release mailbox lease")
		rcancel()
	}
}

// obtain waits until this node holds the mailbox's lease: a previous owner may
// still hold it while it hands over or until it expires after a crash. It
// retries with backoff, and right at the expiry when the lease will expire
// sooner (a crashed owner's), so a failover does not lose up to a backoff
// step.
func (w *worker) obtain(ctx context.Context) (Lease, error) {
	b := backoff.Backoff{Policy: backoff.Policy{Min: 200 * time.Millisecond, Max: 2 * time.Second}}
	logged := false
	for {
		lease, err := w.m.opts.Leaser.Obtain(ctx, w.id)
		if err == nil {
			return lease, nil
		}
		if !logged {
			w.log.Info("waiting for the mailbox lease", "err", err)
			logged = true
		}
		delay := b.Next()
		var held expiring
		if errors.As(err, &held) && held.ExpiresIn() > 0 {
			delay = min(delay, held.ExpiresIn()+10*time.Millisecond)
		}
		if err := backoff.Sleep(ctx, delay); err != nil {
			return nil, err
		}
	}
}

// expiring is implemented by an Obtain error that knows when the current
// holder's lease runs out unless renewed.
type expiring interface{ ExpiresIn() time.Duration }

// supervise is the session loop: session, and on failure report, back off, retry.
func (w *worker) supervise(ctx context.Context) {
	b := backoff.Backoff{Policy: w.m.opts.Reconnect}
	for {
		err := w.safeSession(ctx, &b)
		if ctx.Err() != nil {
			return
		}
		class := mail.ClassOf(err)
		w.m.metrics.reconnects.WithLabelValues(string(class)).Inc()
		if class == mail.ClassAuth && w.refreshToken(ctx) {
			continue // Creatio sent a fresh token: retry at once, nothing to report
		}
		delay := max(b.Next(), retryAfter(err))
		if class == mail.ClassAuth && w.m.opts.Lockout != nil {
			until := w.lockoutUntil(err)
			delay = max(time.Until(until), time.Millisecond)
		}
		w.update(func(s *mail.Status) {
			s.State, s.ErrorClass, s.LastError = mail.StateError, string(class), err.Error()
			s.RetryAt = time.Now().Add(delay)
		})
		w.reportFailure(ctx, err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-w.kick:
			b.Reset()
		case <-t.C:
		}
		t.Stop()
	}
}

// maxServerBackoff caps a wait a server asks for.
const maxServerBackoff = 15 * time.Minute

// retryAfter is how long the server asked to be left alone (Exchange's
// ErrorServerBusy back-off), 0 when it did not say.
func retryAfter(err error) time.Duration {
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		return min(max(ra.RetryAfter(), 0), maxServerBackoff)
	}
	return 0
}

// safeSession turns a panic inside one session into an internal error, so one
// malformed mailbox cannot stop its supervisor for good.
func (w *worker) safeSession(ctx context.Context, b *backoff.Backoff) (err error) {
	panicked := false
	defer func() {
		if panicked {
			err = mail.Errorf(mail.ClassInternal, "session", "internal error (panic), see log")
		}
	}()
	defer w.m.opts.Panics.Recover(w.log, "syncer", &panicked)
	return w.session(ctx, b)
}

// lockoutUntil records a rejection of the mailbox's credentials (unless err is
// the hold itself, when no login was tried) and returns when they may be
// tried again.
func (w *worker) lockoutUntil(err error) time.Time {
	var he *heldError
	if errors.As(err, &he) {
		return he.until
	}
	until := w.m.opts.Lockout.Failed(w.mailbox(), err.Error())
	w.log.Warn("the mail server rejected the credentials; the same credentials are not tried again before the back-off ends (account lock-out protection)",
		"retry_at", until.UTC().Format(time.RFC3339))
	return until
}

// heldError is a session not started because its credentials are held
// (Options.Lockout). Its text is the server's last rejection, so the client
// is not told about it a second time.
type heldError struct {
	until  time.Time
	reason string
}

func (e *heldError) Error() string { return e.reason }

// Class makes the hold an authentication failure for mail.ClassOf.
func (e *heldError) Unwrap() error {
	return &mail.Error{Class: mail.ClassAuth, Op: "login held", Err: errors.New(e.reason)}
}

// refreshToken handles a rejected OAuth token: it asks the client for a new
// one (RefreshToken) once per token and waits up to TokenRefreshWait for the
// client's update call. It reports whether a new token arrived.
func (w *worker) refreshToken(ctx context.Context) bool {
	mb := w.mailbox()
	if !mb.UseOAuth || mb.AccessToken == w.refreshed {
		return false
	}
	w.refreshed = mb.AccessToken
	select { // drop a stale kick so only the update this request causes counts
	case <-w.kick:
	default:
	}
	w.log.Info("OAuth token rejected, asking the client for a fresh one")
	w.m.metrics.tokenRefreshes.Inc()
	if err := w.m.opts.Sink.RefreshToken(ctx, mb); err != nil {
		obs.Check(w.log, err, "token refresh request")
		return false
	}
	t := time.NewTimer(w.m.opts.TokenRefreshWait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			w.log.Warn("no fresh OAuth token arrived in time", "waited", w.m.opts.TokenRefreshWait)
			return false
		case <-w.kick:
			if w.mailbox().AccessToken != mb.AccessToken {
				return true
			}
		}
	}
}

// maybeRefreshBeforeExpiry asks for a new token shortly before a JWT access
// token expires, so the next reconnect does not fail first. Opaque tokens
// (Gmail) have no readable expiry and are refreshed on rejection only.
func (w *worker) maybeRefreshBeforeExpiry(ctx context.Context, mb *mail.Mailbox) {
	if !mb.UseOAuth || mb.AccessToken == w.refreshed {
		return
	}
	exp, ok := tokenExpiry(mb.AccessToken)
	if !ok || time.Until(exp) > tokenRefreshLead {
		return
	}
	w.refreshed = mb.AccessToken
	w.m.metrics.tokenRefreshes.Inc()
	w.log.Info("OAuth token expires soon, asking the client for a fresh one", "expires", exp)
	obs.Check(w.log, w.m.opts.Sink.RefreshToken(ctx, mb), "token refresh request")
}

// reportFailure tells the client once per change of the failure's class: an
// outage that shows first as a cut connection and then as refused
// reconnects is one connection failure to the client, not several.
func (w *worker) reportFailure(ctx context.Context, err error) {
	if w.reported != nil && mail.ClassOf(w.reported) == mail.ClassOf(err) {
		return
	}
	w.log.Warn("mailbox session failed", "class", mail.ClassOf(err), "err", err)
	if rerr := w.m.opts.Sink.ReportState(ctx, w.mailbox(), err); rerr != nil {
		obs.Check(w.log, rerr, "report mailbox failure")
		return
	}
	w.reported = err
}

func (w *worker) reportRecovery(ctx context.Context) {
	if w.reported == nil {
		return
	}
	w.log.Info("mailbox session recovered")
	if err := w.m.opts.Sink.ReportState(ctx, w.mailbox(), nil); err != nil {
		obs.Check(w.log, err, "report mailbox recovery")
		return
	}
	w.reported = nil
}

// session runs one connection until it fails or ctx ends.
func (w *worker) session(ctx context.Context, b *backoff.Backoff) error {
	mb := w.mailbox()
	proto, ok := w.m.opts.Protocols[mb.Kind]
	if !ok {
		return mail.Errorf(mail.ClassConfig, "connect", "%s mailboxes are not supported by this service", mb.Kind)
	}
	if w.m.opts.Lockout != nil {
		if until, reason, held := w.m.opts.Lockout.Check(mb); held {
			return &heldError{until: until, reason: reason}
		}
	}
	release, err := w.m.acquireDial(ctx, mb)
	if err != nil {
		return err
	}
	sess, err := w.dial(ctx, proto.Dialer, mb)
	release()
	if err != nil {
		return err
	}
	defer sess.Close()
	if w.m.opts.Lockout != nil {
		w.m.opts.Lockout.Succeeded(mb)
	}

	var folders []string
	err = w.offload("folders", func() (err error) {
		if folders, err = w.resolveFolders(ctx, sess, mb, proto.WatchByDefault); err != nil {
			return err
		}
		for _, f := range folders { // the watched one first: IMAP selects it on the way
			if err := w.ensureCursor(ctx, sess, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	transport := ""
	if t, ok := sess.(interface{ Transport() string }); ok {
		transport = t.Transport()
	}
	w.update(func(s *mail.Status) {
		s.State, s.ErrorClass, s.LastError, s.RetryAt, s.Folders = mail.StateExists, "", "", time.Time{}, folders
		s.Transport, s.Push = transport, ""
	})
	b.Reset()
	w.reportRecovery(ctx)
	w.log.Debug("watching", "transport", transport, "folders", len(folders))
	return w.watch(ctx, sess, mb, folders)
}

// dial opens the session on a goroutine of its own (see offload).
func (w *worker) dial(ctx context.Context, d Dialer, mb *mail.Mailbox) (sess Session, err error) {
	err = w.offload("dial", func() (err error) {
		sess, err = d.Dial(ctx, mb)
		return err
	})
	return sess, err
}

// offload runs fn on a goroutine of its own and waits for it. A TLS
// handshake, a login or the parsing of a large answer need a deep stack,
// which would otherwise stay with the worker's long-lived goroutine while it
// waits for mail (Go shrinks stacks only at GC, by half each time): measured
// 20 → 15 KiB of stack per IMAP TLS mailbox at 1,000 for the dial alone. A
// panic in fn is an internal error of the session, as on the worker.
func (w *worker) offload(op string, fn func() error) error {
	ch := make(chan error, 1)
	go func() {
		err := mail.Errorf(mail.ClassInternal, op, "internal error (panic), see log")
		defer func() { ch <- err }()
		defer w.m.opts.Panics.Recover(w.log, "syncer", nil)
		err = fn()
	}()
	return <-ch
}

// ensureCursor starts a folder without a cursor at its current end: a new
// subscription delivers only new mail (history is the synchronize call's job).
func (w *worker) ensureCursor(ctx context.Context, sess Session, folder string) error {
	_, ok, err := w.loadCursor(ctx, folder)
	if err != nil || ok {
		return err
	}
	ch, err := sess.Changes(ctx, folder, "")
	if err != nil {
		return err
	}
	return w.putCursor(ctx, folder, mail.Cursor{Data: ch.Next})
}

// resolveFolders returns the folders to watch, the one a push connection
// watches (INBOX) first.
func (w *worker) resolveFolders(ctx context.Context, sess Session, mb *mail.Mailbox, byDefault FolderLister) ([]string, error) {
	list, err := sess.Folders(ctx)
	if err != nil {
		return nil, err
	}
	configured := source.ConfiguredFolders(sess, mb)
	out, missing := source.Watched(list, configured, byDefault)
	for _, id := range missing {
		w.log.Warn("configured folder does not exist, skipping it", "folder", id)
	}
	switch {
	case len(out) > 0:
		return out, nil
	case len(configured) > 0:
		return nil, mail.Errorf(mail.ClassConfig, "folders", "none of the %d configured folders exists on the server", len(configured))
	default:
		return nil, mail.Errorf(mail.ClassConfig, "folders", "the server lists no folder to watch")
	}
}
