// SPDX-License-Identifier: Apache-2.0

package imapsrc

import (
	"context"
	"time"
)

// Idle waits in IDLE (RFC 2177) on the selected folder until wake fires (the
// exists callback or an outside request), max elapses, or ctx ends; then it ends
// IDLE and waits for the server to confirm, which also proves the connection is
// still alive. Servers without IDLE are polled with NOOP at the same cadence.
// woken reports that wake fired while idling: a push, as opposed to news the
// server only gave when IDLE ended or the NOOP asked; done is how long the
// server took to end IDLE (or answer the NOOP).
//
// max must stay below 29 minutes: servers may drop an IDLE client after 30
// (RFC 2177 §3).
func (c *Conn) Idle(ctx context.Context, wake <-chan struct{}, max time.Duration) (woken bool, done time.Duration, err error) {
	if !c.HasIdle() {
		return c.pollWait(ctx, wake, max)
	}
	var cmd interface {
		Close() error
		Wait() error
	}
	if err := c.run(ctx, "idle", commandLimits(commandBudget), func() error {
		ic, err := c.c.Idle()
		cmd = ic
		return err
	}); err != nil {
		return false, 0, err
	}
	c.g.set(idleLimits()) // updates go to the exists callback: nothing to budget
	t := time.NewTimer(max)
	defer t.Stop()
	select {
	case <-ctx.Done():
		// Shutting down or closed: drop the connection instead of ending IDLE
		// politely. A hibernated Dovecot session must be woken to answer DONE
		// (~12 ms of server CPU each), which made stopping 1,000 mailboxes take
		// 15 s; a closed socket costs the server nothing.
		_ = c.c.Close()
		return false, 0, ctx.Err()
	case <-wake:
		woken = true
	case <-t.C:
	case <-c.c.Closed():
	}
	start := time.Now()
	err = c.run(ctx, "idle done", commandLimits(commandBudget), func() error {
		if err := cmd.Close(); err != nil {
			return err
		}
		return cmd.Wait()
	})
	return woken, time.Since(start), err
}

func (c *Conn) pollWait(ctx context.Context, wake <-chan struct{}, max time.Duration) (bool, time.Duration, error) {
	t := time.NewTimer(min(max, 30*time.Second))
	defer t.Stop()
	woken := false
	select {
	case <-ctx.Done():
		return false, 0, ctx.Err()
	case <-wake:
		woken = true
	case <-t.C:
	}
	start := time.Now()
	err := c.Noop(ctx)
	return woken, time.Since(start), err
}
