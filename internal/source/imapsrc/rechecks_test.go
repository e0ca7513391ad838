// SPDX-License-Identifier: Apache-2.0

package imapsrc

import (
	"slices"
	"testing"
	"time"
)

func TestRechecksPauseOnBusyServers(t *testing.T) {
	var none *Rechecks
	now := time.Now()
	none.observe("a:993", time.Hour, now) // no decider: no effect, no panic
	if got := none.chain("a:993", now); !slices.Equal(got, recheckAfter) {
		t.Fatalf("without a decider: %v", got)
	}
	r := NewRechecks(nil)
	r.observe("a:993", 30*time.Millisecond, now)
	for range 5 { // slow now and then: still re-checked
		r.observe("a:993", 2*time.Second, now)
		for range 10 {
			r.observe("a:993", 30*time.Millisecond, now)
		}
	}
	if got := r.chain("a:993", now); !slices.Equal(got, recheckAfter) {
		t.Fatalf("a server slow now and then: %v", got)
	}
	for range 20 { // slow mostly: busy
		r.observe("a:993", 2*time.Second, now)
	}
	if got := r.chain("a:993", now.Add(time.Second)); got != nil {
		t.Fatalf("a busy server: %v", got)
	}
	if got := r.chain("b:993", now); !slices.Equal(got, recheckAfter) {
		t.Fatalf("another server: %v", got)
	}
	if got := r.chain("a:993", now.Add(busyHold+time.Second)); !slices.Equal(got, recheckAfter) {
		t.Fatalf("after the hold: %v", got)
	}
	for range 200 { // quick again: forgotten
		r.observe("a:993", 10*time.Millisecond, now.Add(2*busyHold))
	}
	if _, ok := r.servers["a:993"]; ok {
		t.Fatalf("a quick server kept: %v", r.servers)
	}
}
