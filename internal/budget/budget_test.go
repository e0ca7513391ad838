// SPDX-License-Identifier: Apache-2.0

package budget

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestBudget(t *testing.T) {
	b := New(100, prometheus.NewRegistry())
	ctx := context.Background()
	r1, err := b.Acquire(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	// 60 + 60 > 100: the second waits until the first is released.
	got := make(chan func(), 1)
	go func() {
		r, err := b.Acquire(ctx, 60)
		if err != nil {
			t.Error(err)
		}
		got <- r
	}()
	select {
	case <-got:
		t.Fatal("acquired beyond the budget")
	case <-time.After(50 * time.Millisecond):
	}
	r1()
	r2 := <-got
	r2()

	// Larger than the whole budget: takes all of it instead of blocking forever.
	r3, err := b.Acquire(ctx, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := b.Acquire(short, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire while all is taken = %v, want the context's deadline", err)
	}
	r3()
	r4, err := b.Acquire(ctx, 0) // counts as 1 byte
	if err != nil {
		t.Fatal(err)
	}
	r4()
}
