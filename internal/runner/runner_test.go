// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestReplaceNeverOverlaps(t *testing.T) {
	var g Group[string]
	if _, err := g.Go("a", func(context.Context, *Run) {}); !errors.Is(err, ErrStopped) {
		t.Fatalf("Go before Start: %v", err)
	}
	g.Start(context.Background())
	var running, maxRunning, runs atomic.Int32
	var prevs atomic.Int32
	for range 20 {
		_, err := g.Go("a", func(ctx context.Context, prev *Run) {
			if prev != nil {
				prevs.Add(1)
				select {
				case <-prev.Done():
				default:
					t.Error("started before the replaced run returned")
				}
			}
			n := running.Add(1)
			for m := maxRunning.Load(); n > m && !maxRunning.CompareAndSwap(m, n); m = maxRunning.Load() {
			}
			runs.Add(1)
			<-ctx.Done()
			running.Add(-1)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runs.Load() < 20 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := g.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if runs.Load() != 20 || maxRunning.Load() != 1 || prevs.Load() != 19 {
		t.Fatalf("runs %d, most at once %d, replaced %d", runs.Load(), maxRunning.Load(), prevs.Load())
	}
	if _, err := g.Go("a", func(context.Context, *Run) {}); !errors.Is(err, ErrStopped) {
		t.Fatalf("Go after Stop: %v", err)
	}
}

func TestStopBounded(t *testing.T) {
	var g Group[int]
	g.Start(context.Background())
	block := make(chan struct{})
	defer close(block)
	if _, err := g.Go(1, func(context.Context, *Run) { <-block }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := g.Stop(ctx); err == nil {
		t.Fatal("Stop returned nil while a run ignored its context")
	}
}
