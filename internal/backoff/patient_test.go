// SPDX-License-Identifier: Apache-2.0

package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestPatient(t *testing.T) {
	errBusy, errOther := errors.New("busy"), errors.New("other")
	busy := func(err error) (time.Duration, bool) { return time.Millisecond, errors.Is(err, errBusy) }
	p := Policy{Min: time.Millisecond, Max: time.Millisecond}
	calls := 0
	v, err := Patient(context.Background(), p, time.Second, time.Second, busy, func() (int, error) {
		if calls++; calls < 3 {
			return 0, errBusy
		}
		return 7, nil
	})
	if v != 7 || err != nil || calls != 3 {
		t.Fatalf("busy twice then ok: %d, %v after %d calls", v, err, calls)
	}
	calls = 0
	if _, err := Patient(context.Background(), p, time.Second, time.Second, busy, func() (int, error) { calls++; return 0, errOther }); !errors.Is(err, errOther) || calls != 1 {
		t.Fatalf("another error: %v after %d calls", err, calls)
	}
	// Patience runs out: the busy error comes back, after waiting no more
	// than patience.
	start := time.Now()
	slow := func(error) (time.Duration, bool) { return 20 * time.Millisecond, true }
	if _, err := Patient(context.Background(), p, 50*time.Millisecond, time.Second, slow, func() (int, error) { return 0, errBusy }); !errors.Is(err, errBusy) {
		t.Fatalf("out of patience: %v", err)
	}
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("waited %s with 50ms of patience", d)
	}
}
