// SPDX-License-Identifier: Apache-2.0

// Package runner runs one goroutine per key (a mailbox's subscription, a
// mailbox's history load) with the lifecycle both need: a new run for a key
// replaces the running one, starting only once the old one has returned, so
// two runs of one key never overlap; Stop cancels everything and waits.
package runner

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// ErrStopped is returned by Go after Stop, or before Start.
var ErrStopped = errors.New("runner: not running")

// Run is one started run.
type Run struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// Done is closed when the run's function has returned.
func (r *Run) Done() <-chan struct{} { return r.done }

// Cancel asks the run to end.
func (r *Run) Cancel() { r.cancel() }

// Group runs keyed functions. Its methods are safe for concurrent use.
type Group[K comparable] struct {
	mu      sync.Mutex
	ctx     context.Context // base of every run; set by Start
	stopped bool
	runs    map[K]*Run
	wg      sync.WaitGroup
}

// Start lets runs begin, under ctx.
func (g *Group[K]) Start(ctx context.Context) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ctx = ctx
}

// Go starts fn for key, replacing (cancelling) the key's running one; fn
// begins once that one has returned. fn gets a context that ends when the run
// is cancelled, replaced or stopped, and the replaced run (nil if none) so
// that it can take over its state.
func (g *Group[K]) Go(key K, fn func(ctx context.Context, prev *Run)) (*Run, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped || g.ctx == nil {
		return nil, ErrStopped
	}
	if g.runs == nil {
		g.runs = make(map[K]*Run)
	}
	prev := g.runs[key]
	if prev != nil {
		prev.cancel()
	}
	ctx, cancel := context.WithCancel(g.ctx)
	r := &Run{cancel: cancel, done: make(chan struct{})}
	g.runs[key] = r
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer close(r.done)
		defer cancel()
		if prev != nil {
			<-prev.done
		}
		fn(ctx, prev)
		g.mu.Lock()
		if g.runs[key] == r {
			delete(g.runs, key)
		}
		g.mu.Unlock()
	}()
	return r, nil
}

// Cancel ends key's run, if any, without waiting.
func (g *Group[K]) Cancel(key K) {
	g.mu.Lock()
	r := g.runs[key]
	g.mu.Unlock()
	if r != nil {
		r.cancel()
	}
}

// Stop cancels every run and waits for them until ctx ends. Go fails after it.
func (g *Group[K]) Stop(ctx context.Context) error {
	g.mu.Lock()
	g.stopped = true
	for _, r := range g.runs {
		r.cancel()
	}
	g.mu.Unlock()
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("runner: stop: %w", context.Cause(ctx))
	}
}
