// SPDX-License-Identifier: Apache-2.0

package backoff

import (
	"context"
	"testing"
	"time"
)

func TestDelayLadder(t *testing.T) {
	p := Policy{Min: 100 * time.Millisecond, Max: time.Second, Factor: 2, Jitter: 0.5}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		w *= time.Millisecond
		for n := 0; n < 50; n++ {
			d := p.Delay(i)
			if d < w/2 || d > w {
				t.Fatalf("attempt %d: delay %v outside [%v, %v]", i, d, w/2, w)
			}
		}
	}
}

func TestZeroPolicyDefaults(t *testing.T) {
	var b Backoff
	d := b.Next()
	if d < defaultMin/2 || d > defaultMin {
		t.Fatalf("first delay %v, want within [%v, %v]", d, defaultMin/2, defaultMin)
	}
	if b.Attempt() != 1 {
		t.Fatalf("attempt = %d", b.Attempt())
	}
	b.Reset()
	if b.Attempt() != 0 {
		t.Fatal("reset did not reset")
	}
	if got := (Policy{}).Delay(1000); got > defaultMax {
		t.Fatalf("delay %v above cap", got)
	}
}

func TestSleepCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if err := Sleep(ctx, time.Hour); err == nil {
		t.Fatal("want context error")
	}
	if time.Since(start) > time.Second {
		t.Fatal("Sleep ignored cancellation")
	}
}
