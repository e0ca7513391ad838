// SPDX-License-Identifier: Apache-2.0

// Package backoff computes exponential backoff delays with full jitter and waits
// for them under a context.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy describes an exponential ladder: Min, Min*Factor, … capped at Max. The
// zero value is usable and means 1s…5m with factor 2.
type Policy struct {
	Min    time.Duration
	Max    time.Duration
	Factor float64
	// Jitter is the fraction of each delay that is randomized (0 = none, 1 =
	// full jitter between 0 and the delay). The default is 0.5: the delay is
	// uniformly spread over [d/2, d], so a fleet that failed together does not
	// retry together while progress is still guaranteed.
	Jitter float64
}

const (
	defaultMin    = time.Second
	defaultMax    = 5 * time.Minute
	defaultFactor = 2
	defaultJitter = 0.5
)

func (p Policy) withDefaults() Policy {
	if p.Min <= 0 {
		p.Min = defaultMin
	}
	if p.Max <= 0 {
		p.Max = defaultMax
	}
	if p.Max < p.Min {
		p.Max = p.Min
	}
	if p.Factor < 1 {
		p.Factor = defaultFactor
	}
	if p.Jitter <= 0 || p.Jitter > 1 {
		p.Jitter = defaultJitter
	}
	return p
}

// Delay returns the wait before retry number attempt (0-based).
func (p Policy) Delay(attempt int) time.Duration {
	p = p.withDefaults()
	d := float64(p.Min)
	for i := 0; i < attempt && d < float64(p.Max); i++ {
		d *= p.Factor
	}
	if d > float64(p.Max) {
		d = float64(p.Max)
	}
	spread := d * p.Jitter
	return time.Duration(d - spread + rand.Float64()*spread)
}

// Backoff tracks attempts of one retry loop. It is not safe for concurrent use.
type Backoff struct {
	Policy  Policy
	attempt int
}

// Attempt returns how many waits have happened since the last Reset.
func (b *Backoff) Attempt() int { return b.attempt }

// Reset starts the ladder again, after a success.
func (b *Backoff) Reset() { b.attempt = 0 }

// Next returns the next delay and advances the ladder.
func (b *Backoff) Next() time.Duration {
	d := b.Policy.Delay(b.attempt)
	b.attempt++
	return d
}

// Wait sleeps for the next delay or until ctx is done, whichever is first. It
// returns ctx.Err() when the context ended the wait.
func (b *Backoff) Wait(ctx context.Context) error {
	return Sleep(ctx, b.Next())
}

// Sleep waits for d or until ctx is done.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
