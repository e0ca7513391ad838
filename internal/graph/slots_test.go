// SPDX-License-Identifier: Apache-2.0

package graph

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// concurrency records the most requests in flight per mailbox and overall.
type concurrency struct {
	mu       sync.Mutex
	cur, max map[string]int
	all, top int
}

func (c *concurrency) enter(user string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cur[user]++
	c.max[user] = max(c.max[user], c.cur[user])
	c.all++
	c.top = max(c.top, c.all)
}

func (c *concurrency) leave(user string) {
	c.mu.Lock()
	c.cur[user]--
	c.all--
	c.mu.Unlock()
}

func TestPerMailboxConcurrency(t *testing.T) {
	cc := &concurrency{cur: map[string]int{}, max: map[string]int{}}
	c, _ := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user := strings.ToLower(strings.Split(r.URL.Path, "/")[3])
		cc.enter(user)
		defer cc.leave(user)
		time.Sleep(15 * time.Millisecond)
		writeJSON(w, 200, folderJSONOf("F", "Inbox", 0))
	}))
	var wg sync.WaitGroup
	for i := range 40 {
		// One mailbox written two ways counts once.
		user := []string{"a@x.com", "A@X.com", "b@x.com", "c@x.com"}[i%4]
		wg.Go(func() {
			if _, err := c.Folder(t.Context(), user, "inbox"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for u, n := range cc.max {
		if n > DefaultMaxConcurrentPerMailbox {
			t.Errorf("%s: %d concurrent requests", u, n)
		}
	}
	if cc.top <= DefaultMaxConcurrentPerMailbox {
		t.Errorf("mailboxes did not run in parallel: at most %d in flight", cc.top)
	}
	if n := c.slots.len(); n != 0 {
		t.Errorf("%d slot entries left", n)
	}
}

func TestSlotWaitEndsWithContext(t *testing.T) {
	s := newMailboxSlots(1)
	release, err := s.acquire(t.Context(), "a", 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.acquire(ctx, "a", 1); err == nil {
		t.Fatal("acquired a busy slot")
	}
	release()
	if s.len() != 0 {
		t.Fatalf("%d entries left", s.len())
	}
}

// Batches that need several slots of the same mailboxes, in different
// orders and more than the limit, neither deadlock nor exceed it.
func TestAcquireAllNoDeadlock(t *testing.T) {
	s := newMailboxSlots(4)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	sets := [][]string{
		{"a", "a", "a", "b"}, {"b", "b", "b", "b", "b", "a"}, {"a", "b", "c", "a", "a", "a", "a"}, {"c", "b", "a"},
	}
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			release, err := s.acquireAll(ctx, sets[i%len(sets)])
			if err != nil {
				t.Error(err)
				return
			}
			time.Sleep(time.Microsecond)
			release()
		})
	}
	wg.Wait()
	if s.len() != 0 {
		t.Fatalf("%d entries left", s.len())
	}
}
