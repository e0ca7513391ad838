// SPDX-License-Identifier: Apache-2.0

package wake

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestBox(t *testing.T) {
	ctx := context.Background()
	b := New([]string{"inbox", "sent"})
	if got, err := b.Wait(ctx, 10*time.Millisecond); got != nil || err != nil {
		t.Fatalf("nothing notified: %v, %v", got, err)
	}
	// Notifications coalesce, unwatched folders are ignored.
	b.Notify([]string{"inbox"}, false)
	b.Notify([]string{"inbox", "elsewhere"}, false)
	b.Notify([]string{"sent"}, false)
	got, err := b.Wait(ctx, time.Second)
	if err != nil || !slices.Equal(got, []string{"inbox", "sent"}) {
		t.Fatalf("Wait = %v, %v", got, err)
	}
	if b.Pushed().IsZero() {
		t.Error("Pushed is zero after a notification was taken")
	}
	b.Notify([]string{"elsewhere"}, false)
	if got, _ := b.Wait(ctx, 10*time.Millisecond); got != nil {
		t.Errorf("an unwatched folder woke the box: %v", got)
	}
	// all: every watched folder; a waiting caller is woken.
	go func() { time.Sleep(10 * time.Millisecond); b.Notify(nil, true) }()
	if got, _ := b.Wait(ctx, time.Second); !slices.Equal(got, []string{"inbox", "sent"}) {
		t.Errorf("catch-up all = %v", got)
	}
	// A failure wins over changes and stays.
	boom := errors.New("boom")
	b.Notify([]string{"inbox"}, false)
	b.Fail(boom)
	b.Fail(errors.New("later"))
	for range 2 {
		if _, err := b.Wait(ctx, time.Second); err != boom {
			t.Errorf("after Fail: %v", err)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := New(nil).Wait(cctx, time.Second); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled wait: %v", err)
	}
}
