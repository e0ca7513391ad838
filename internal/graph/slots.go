// SPDX-License-Identifier: Apache-2.0

package graph

import (
	"context"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sync/semaphore"
)

// mailboxSlots bounds the requests in flight per mailbox. A mailbox's
// semaphore exists while someone holds or waits for one of its slots and is
// dropped with the last one, so that a Client serving thousands of mailboxes
// keeps entries only for the busy ones.
//
// The semaphores are weighted because a $batch runs several requests to one
// mailbox at once and must take that many slots in one step: taking them one
// by one would let two batches each hold some of a mailbox's slots and wait
// for the rest forever.
type mailboxSlots struct {
	n  int64
	mu sync.Mutex
	m  map[string]*slot // guarded by mu
}

type slot struct {
	sem  *semaphore.Weighted // n units, one per request in flight
	refs int                 // holders and waiters; guarded by mailboxSlots.mu
}

func newMailboxSlots(n int) *mailboxSlots {
	return &mailboxSlots{n: int64(n), m: map[string]*slot{}}
}

// mailboxKey folds the ways of writing one user argument together.
func mailboxKey(user string) string { return strings.ToLower(user) }

// acquire waits for w slots (capped at the limit) of the mailbox key, or
// for ctx to end. The returned func releases them; call it exactly once.
func (s *mailboxSlots) acquire(ctx context.Context, key string, w int64) (func(), error) {
	w = min(max(w, 1), s.n)
	s.mu.Lock()
	sl := s.m[key]
	if sl == nil {
		sl = &slot{sem: semaphore.NewWeighted(s.n)}
		s.m[key] = sl
	}
	sl.refs++
	s.mu.Unlock()
	if err := sl.sem.Acquire(ctx, w); err != nil {
		s.unref(key, sl)
		return nil, err
	}
	return func() { sl.sem.Release(w); s.unref(key, sl) }, nil
}

func (s *mailboxSlots) unref(key string, sl *slot) {
	s.mu.Lock()
	sl.refs--
	if sl.refs == 0 {
		delete(s.m, key)
	}
	s.mu.Unlock()
}

// acquireAll takes one slot per occurrence of a mailbox in keys (a $batch
// touching several mailboxes, some more than once), at most the limit per
// mailbox, in sorted order so that two callers cannot each hold what the
// other waits for. On failure it releases what it took.
func (s *mailboxSlots) acquireAll(ctx context.Context, keys []string) (func(), error) {
	keys = slices.Clone(keys)
	slices.Sort(keys)
	var held []func()
	release := func() {
		for _, r := range held {
			r()
		}
	}
	for i := 0; i < len(keys); {
		j := i + 1
		for j < len(keys) && keys[j] == keys[i] {
			j++
		}
		r, err := s.acquire(ctx, keys[i], int64(j-i))
		if err != nil {
			release()
			return nil, err
		}
		held = append(held, r)
		i = j
	}
	return release, nil
}

// len reports the mailboxes with an entry (tests).
func (s *mailboxSlots) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}
