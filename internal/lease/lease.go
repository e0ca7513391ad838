// SPDX-License-Identifier: Apache-2.0

package lease

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Errors callers branch on.
var (
	// ErrHeld means another node holds the lease; Obtain returns a *HeldError.
	ErrHeld = errors.New("lease: held by another node")
	// ErrHeldLocally means this Manager already holds (or is obtaining) the
	// lease: one mailbox has at most one Lease per process.
	ErrHeldLocally = errors.New("lease: already held by this node")
	// ErrNotRunning is returned by Obtain before Start and after Stop.
	ErrNotRunning = errors.New("lease: manager not running")
	// ErrLost is the class of every *LostError.
	ErrLost = errors.New("lease: lost")
	// ErrReleased is Lease.Err after Release, and after Stop released it.
	ErrReleased = errors.New("lease: released")
)

// HeldError says who holds a lease that Obtain could not take.
type HeldError struct {
	ID     mail.MailboxID
	Holder string        // the holder's node id
	Fence  uint64        // the holder's fence
	TTL    time.Duration // until the lease expires unless renewed
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("lease: %s held by node %q (fence %d, expires in %v)", e.ID, e.Holder, e.Fence, e.TTL)
}

// Is makes errors.Is(err, ErrHeld) true.
func (e *HeldError) Is(target error) bool { return target == ErrHeld }

// ExpiresIn is how long the lease lasts unless its holder renews it: a waiting
// node retries then.
func (e *HeldError) ExpiresIn() time.Duration { return e.TTL }

// Reason says why a lease was lost. The values are metric labels.
type Reason string

const (
	// ReasonExpired: not renewed before the local deadline (Redis unreachable
	// or slow for longer than TTL minus skew).
	ReasonExpired Reason = "expired"
	// ReasonMissing: renewal found the key gone (expired in Redis, deleted, or
	// Redis lost its data) and did not (or could not) restore it.
	ReasonMissing Reason = "missing"
	// ReasonTaken: renewal found the key holding another value, another node's
	// lease or a newer one of ours.
	ReasonTaken Reason = "taken"
)

var reasons = []Reason{ReasonExpired, ReasonMissing, ReasonTaken}

// LostError is Lease.Err after the lease was lost.
type LostError struct {
	ID     mail.MailboxID
	Fence  uint64
	Reason Reason
}

func (e *LostError) Error() string {
	return fmt.Sprintf("lease: %s (fence %d) lost: %s", e.ID, e.Fence, e.Reason)
}

// Is makes errors.Is(err, ErrLost) true.
func (e *LostError) Is(target error) bool { return target == ErrLost }

// Lease is this node's ownership of one mailbox, proven by a fencing token. It
// is renewed by its Manager until Release, Manager.Stop, or loss; Done is then
// closed and Err says why. Its methods are safe for concurrent use.
type Lease struct {
	id    mail.MailboxID
	fence uint64
	value string // "<node>|<fence>": the owner check of renew and release
	m     *Manager

	// sig is cancelled, with the reason as cause, when the lease ends. It is a
	// signal object, not a request context: it carries Done, Err, and lets
	// Context derive worker contexts without a goroutine per lease.
	sig      context.Context
	end      context.CancelCauseFunc
	ended    atomic.Bool
	deadline atomic.Int64 // local expiry, Clock unix nanoseconds; extended by renewals
	// unconfirmed: the deadline passed without an answer from Redis and the
	// Manager holds on (Options.HoldWhileUnreachable); owned by the loop,
	// atomic for Confirmed.
	unconfirmed atomic.Bool
}

func newLease(m *Manager, id mail.MailboxID, fence uint64, deadline time.Time) *Lease {
	l := &Lease{id: id, fence: fence, value: value(m.node, fence), m: m}
	l.sig, l.end = context.WithCancelCause(context.Background())
	l.deadline.Store(deadline.UnixNano())
	return l
}

// ID returns the mailbox the lease is for.
func (l *Lease) ID() mail.MailboxID { return l.id }

// Fence returns the fencing token: it is higher than that of every earlier
// lease on this mailbox. Every state write made under the lease must carry it,
// so that the store rejects writes of an owner that lost the lease.
func (l *Lease) Fence() uint64 { return l.fence }

// Done is closed when the lease ends: lost (renewal rejected, or not renewed
// before its local deadline), released, or released by Manager.Stop. The
// holder must then stop acting for the mailbox.
func (l *Lease) Done() <-chan struct{} { return l.sig.Done() }

// Err returns nil while the lease is held, then ErrReleased or a *LostError.
func (l *Lease) Err() error {
	if l.sig.Err() == nil {
		return nil
	}
	return context.Cause(l.sig)
}

// Deadline returns the local expiry: the lease is given up at this time unless
// renewed first. Redis expires it no earlier than Deadline plus the skew margin.
func (l *Lease) Deadline() time.Time { return time.Unix(0, l.deadline.Load()) }

// Confirmed reports whether Redis confirmed the lease within its TTL. It is
// false only with Options.HoldWhileUnreachable, after the local deadline passed
// without an answer from Redis: the node still holds on, but another node may
// have obtained the lease if Redis was reachable for it.
func (l *Lease) Confirmed() bool { return !l.unconfirmed.Load() }

// Context returns a child of parent that is cancelled, with Err as its cause,
// when the lease ends. Call the CancelFunc when done with it.
func (l *Lease) Context(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	stop := context.AfterFunc(l.sig, func() { cancel(l.Err()) })
	return ctx, func() { stop(); cancel(context.Canceled) }
}

// Release gives the lease back: Done is closed first, then the key is deleted
// if it is still ours, so another node can obtain it at once (hand-off). It
// returns an error only if Redis could not be told; the lease then expires
// there after its TTL. Releasing an ended lease only deletes its key if that
// still holds our value (e.g. lost locally by expiry a moment before Redis).
func (l *Lease) Release(ctx context.Context) error {
	l.finish(ErrReleased)
	l.m.forget(ctx, l)
	cmd := releaseScript.Run(ctx, l.m.client, []string{LeaseKey(l.m.opts.Prefix, l.id)}, l.value)
	if err := cmd.Err(); err != nil {
		return fmt.Errorf("lease: release %s: %w", l.id, err)
	}
	return nil
}

// finish ends the lease with cause; only the first call counts.
func (l *Lease) finish(cause error) bool {
	if !l.ended.CompareAndSwap(false, true) {
		return false
	}
	l.end(cause)
	return true
}

// extend moves the local deadline forward (never backward).
func (l *Lease) extend(deadline time.Time) {
	n := deadline.UnixNano()
	for {
		old := l.deadline.Load()
		if n <= old || l.deadline.CompareAndSwap(old, n) {
			return
		}
	}
}
