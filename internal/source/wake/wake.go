// SPDX-License-Identifier: Apache-2.0

// Package wake is the meeting point of a mailbox session and a hub that
// learns of its changes for it (an Exchange streaming connection shared by
// many mailboxes, a Graph poller or webhook): the hub records which watched
// folders changed, or that every folder must be caught up, or that the
// subscription failed; the session waits for that and takes it.
//
// Records coalesce: however many notifications arrive while the session is
// busy, its next wait returns each changed folder once. Nothing blocks the
// hub.
package wake

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Box is one mailbox's record of changes. The zero value is not usable; use
// New.
type Box struct {
	folders []string // the watched folders

	signal chan struct{} // buffered(1): something to take

	mu      sync.Mutex
	changed []string  // watched folders notified since the last take
	all     bool      // catch up every folder (after a gap)
	err     error     // the subscription failed for good: the session ends
	at      time.Time // when the first untaken notification arrived
	last    time.Time // when the notification last taken arrived
}

// New returns a Box for the watched folders.
func New(folders []string) *Box {
	return &Box{folders: slices.Clone(folders), signal: make(chan struct{}, 1)}
}

// Folders are the watched folders.
func (b *Box) Folders() []string { return b.folders }

// Notify records that folders changed; all asks for a catch-up of every
// watched folder. Folders the mailbox does not watch are ignored.
func (b *Box) Notify(folders []string, all bool) {
	b.mu.Lock()
	hit := all
	if all {
		b.all = true
	}
	for _, f := range folders {
		if slices.Contains(b.folders, f) {
			hit = true
			if !slices.Contains(b.changed, f) {
				b.changed = append(b.changed, f)
			}
		}
	}
	if hit && b.at.IsZero() {
		b.at = time.Now()
	}
	b.mu.Unlock()
	if hit {
		b.wake()
	}
}

// Fail ends the subscription with err: the waiting session returns it.
func (b *Box) Fail(err error) {
	b.mu.Lock()
	if b.err == nil {
		b.err = err
	}
	b.mu.Unlock()
	b.wake()
}

func (b *Box) wake() {
	select {
	case b.signal <- struct{}{}:
	default:
	}
}

// take returns what was notified since the last take; ok is false when
// nothing was.
func (b *Box) take() (folders []string, err error, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.err != nil:
		return nil, b.err, true
	case b.all:
		folders = slices.Clone(b.folders)
	case len(b.changed) > 0:
		folders = b.changed
	default:
		return nil, nil, false
	}
	b.changed, b.all = nil, false
	b.last, b.at = b.at, time.Time{}
	return folders, nil, true
}

// Wait returns the folders that changed, nil when max passed, or the error
// that ended the subscription.
func (b *Box) Wait(ctx context.Context, max time.Duration) ([]string, error) {
	t := time.NewTimer(max)
	defer t.Stop()
	for {
		if folders, err, ok := b.take(); ok {
			return folders, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-b.signal:
		case <-t.C:
			return nil, nil
		}
	}
}

// Pushed returns when the notification last taken arrived.
func (b *Box) Pushed() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}
