// SPDX-License-Identifier: Apache-2.0

package lease_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/emaillistener/emaillistener/internal/clock"
	"github.com/emaillistener/emaillistener/internal/lease"
	"github.com/emaillistener/emaillistener/internal/obs"
	"github.com/emaillistener/emaillistener/internal/testenv"
)

// panics is shared by every Manager in the tests; TestMain fails if it moved.
var panics = obs.NewPanics(nil)

func TestMain(m *testing.M) { os.Exit(testenv.RunCountingPanics(m, panics, "lease")) }

// newManager starts a Manager that is stopped at cleanup.
func newManager(t *testing.T, c lease.Client, node string, opts lease.Options) *lease.Manager {
	t.Helper()
	opts.Panics = panics
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	m, err := lease.New(c, node, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := m.Stop(ctx); err != nil {
			t.Logf("stop %s: %v", node, err)
		}
	})
	return m
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// advanceRound moves clk by d and waits until m finished its next renewal round.
func advanceRound(t *testing.T, m *lease.Manager, clk *clock.Fake, d time.Duration) lease.Stats {
	t.Helper()
	before := m.Stats().Rounds
	clk.Advance(d)
	var st lease.Stats
	waitFor(t, fmt.Sprintf("renewal round %d", before+1), func() bool {
		st = m.Stats()
		return st.Rounds > before
	})
	return st
}

func isDone(l *lease.Lease) bool {
	select {
	case <-l.Done():
		return true
	default:
		return false
	}
}

// countingHook counts what a client sends: single commands and pipelines
// (without the CLIENT SETINFO pipeline of a new connection).
type countingHook struct {
	cmds, pipelines, pipelinedCmds atomic.Int64
}

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.cmds.Add(1)
		return next(ctx, cmd)
	}
}

func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && cmds[0].Name() == "client" { // connection set-up, not ours
			return next(ctx, cmds)
		}
		h.pipelines.Add(1)
		h.pipelinedCmds.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

func (h *countingHook) reset() { h.cmds.Store(0); h.pipelines.Store(0); h.pipelinedCmds.Store(0) }

// testLogger writes to the test's output (shown on failure or with -v).
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}
