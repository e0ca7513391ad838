// SPDX-License-Identifier: Apache-2.0

package lease_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emaillistener/emaillistener/internal/clock"
	"github.com/emaillistener/emaillistener/internal/lease"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/redisconf"
	"github.com/emaillistener/emaillistener/internal/testenv/rediscli"
)

// short are options for tests in which the Redis-side TTL must pass in real
// time: 300 ms leases renewed every 100 ms.
var short = lease.Options{TTL: 300 * time.Millisecond, RenewEvery: 100 * time.Millisecond, Skew: 30 * time.Millisecond}

func withClock(o lease.Options, clk lease.Clock) lease.Options { o.Clock = clk; return o }

// Two nodes contend: one wins, the other learns who holds it; after the Redis
// TTL passes the other obtains with a higher fence, and the first holder's next
// renewal finds the lease taken. Fences only grow.
func TestContentionAndFenceOrder(t *testing.T) {
	t.Parallel()
	_, c := rediscli.Start(t)
	clkA, clkB := clock.NewFake(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)), clock.NewFake(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	a := newManager(t, c, "node-a", withClock(short, clkA))
	b := newManager(t, c, "node-b", withClock(short, clkB))
	ctx := t.Context()
	const id = mail.MailboxID("6f1e0c8e-1111-4a4a-9b9b-000000000001")

	la, err := a.Obtain(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if la.ID() != id || la.Fence() == 0 || la.Err() != nil {
		t.Fatalf("lease %v fence %d err %v", la.ID(), la.Fence(), la.Err())
	}
	_, err = b.Obtain(ctx, id)
	var held *lease.HeldError
	if !errors.As(err, &held) || !errors.Is(err, lease.ErrHeld) {
		t.Fatalf("b.Obtain = %v, want HeldError", err)
	}
	if held.Holder != "node-a" || held.Fence != la.Fence() || held.TTL <= 0 || held.TTL > short.TTL {
		t.Fatalf("HeldError = %+v", held)
	}

	// a's simulated clock stands still, so a never renews: the key expires in
	// Redis after 300 ms real time and b gets it.
	var lb *lease.Lease
	waitFor(t, "b obtains after the TTL", func() bool {
		lb, err = b.Obtain(ctx, id)
		if err != nil && !errors.Is(err, lease.ErrHeld) {
			t.Fatal(err)
		}
		return err == nil
	})
	if lb.Fence() <= la.Fence() {
		t.Fatalf("fence after expiry %d <= %d", lb.Fence(), la.Fence())
	}
	if isDone(la) {
		t.Fatal("a's lease ended before a learned about it (its deadline is in simulated time)")
	}

	// a's next renewal is rejected: Done closes with ReasonTaken, and a
	// context derived from the lease is cancelled with that cause.
	actx, cancel := la.Context(ctx)
	defer cancel()
	advanceRound(t, a, clkA, short.RenewEvery)
	<-la.Done()
	var lost *lease.LostError
	if !errors.As(la.Err(), &lost) || lost.Reason != lease.ReasonTaken || !errors.Is(la.Err(), lease.ErrLost) {
		t.Fatalf("a's Err = %v, want taken", la.Err())
	}
	<-actx.Done()
	if !errors.Is(context.Cause(actx), lease.ErrLost) {
		t.Fatalf("derived context cause %v", context.Cause(actx))
	}
	if err := la.Release(ctx); err != nil { // harmless: it is b's now
		t.Fatal(err)
	}
	if _, err := a.Obtain(ctx, id); !errors.Is(err, lease.ErrHeld) {
		t.Fatalf("a's release of a lost lease freed b's: %v", err)
	}

	// b hands over; a obtains at once, with a still higher fence.
	if err := lb.Release(ctx); err != nil {
		t.Fatal(err)
	}
	la2, err := a.Obtain(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if la2.Fence() <= lb.Fence() {
		t.Fatalf("fence after release %d <= %d", la2.Fence(), lb.Fence())
	}
	t.Logf("fences: %d < %d < %d", la.Fence(), lb.Fence(), la2.Fence())
}

// Renewal keeps a lease alive well past its TTL, in real time.
func TestRenewalKeepsLeaseAlive(t *testing.T) {
	t.Parallel()
	_, c := rediscli.Start(t)
	a := newManager(t, c, "node-a", short)
	b := newManager(t, c, "node-b", short)
	ctx := t.Context()
	l, err := a.Obtain(ctx, "m1")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for time.Since(start) < 4*short.TTL {
		if isDone(l) {
			t.Fatalf("lease lost after %v: %v", time.Since(start), l.Err())
		}
		if _, err := b.Obtain(ctx, "m1"); !errors.Is(err, lease.ErrHeld) {
			t.Fatalf("after %v b.Obtain = %v, want ErrHeld", time.Since(start), err)
		}
		time.Sleep(20 * time.Millisecond) // observation interval, not synchronization
	}
	if st := a.Stats(); st.Rounds < 8 || st.Held != 1 || st.LastErr != "" {
		t.Fatalf("stats %+v", st)
	}
	if !l.Deadline().After(time.Now()) {
		t.Fatalf("deadline %v not in the future", l.Deadline())
	}
}

// A released lease can be obtained by another node immediately; the releaser
// sees Done with ErrReleased. Release is idempotent.
func TestReleaseHandsOver(t *testing.T) {
	t.Parallel()
	_, c := rediscli.Start(t)
	a := newManager(t, c, "node-a", lease.Options{})
	b := newManager(t, c, "node-b", lease.Options{})
	ctx := t.Context()
	la, err := a.Obtain(ctx, "m1")
	if err != nil {
		t.Fatal(err)
	}
	if err := la.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if !isDone(la) || !errors.Is(la.Err(), lease.ErrReleased) {
		t.Fatalf("after Release: done %v err %v", isDone(la), la.Err())
	}
	if err := la.Release(ctx); err != nil {
		t.Fatal(err)
	}
	lb, err := b.Obtain(ctx, "m1")
	if err != nil {
		t.Fatalf("b could not obtain the released lease: %v", err)
	}
	if lb.Fence() <= la.Fence() {
		t.Fatalf("fence %d <= %d", lb.Fence(), la.Fence())
	}
	if a.Stats().Held != 0 {
		t.Fatalf("a still counts the released lease: %+v", a.Stats())
	}
}

// A lease whose key vanished (deleted, or expired while the holder was stuck)
// is lost at the next renewal with ReasonMissing.
func TestMissingKeyLosesLease(t *testing.T) {
	t.Parallel()
	_, c := rediscli.Start(t)
	clk := clock.NewFake(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	reg := prometheus.NewRegistry()
	a := newManager(t, c, "node-a", lease.Options{Clock: clk, Registerer: reg})
	ctx := t.Context()
	l1, err := a.Obtain(ctx, "m1")
	if err != nil {
		t.Fatal(err)
	}
	l2, err := a.Obtain(ctx, "m2")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Del(ctx, lease.LeaseKey(redisconf.DefaultPrefix, "m1")).Err(); err != nil {
		t.Fatal(err)
	}
	advanceRound(t, a, clk, lease.DefaultTTL/3)
	<-l1.Done()
	var lost *lease.LostError
	if !errors.As(l1.Err(), &lost) || lost.Reason != lease.ReasonMissing || lost.ID != "m1" {
		t.Fatalf("Err = %v", l1.Err())
	}
	if isDone(l2) {
		t.Fatalf("m2 lost too: %v", l2.Err())
	}
	if got := metricValue(t, reg, "emaillistener_leases_lost_total", "missing"); got != 1 {
		t.Fatalf("leases_lost_total{missing} = %v", got)
	}
	if got := metricValue(t, reg, "emaillistener_leases_held", ""); got != 1 {
		t.Fatalf("leases_held = %v", got)
	}
	if got := metricValue(t, reg, "emaillistener_lease_obtained_total", ""); got != 2 {
		t.Fatalf("lease_obtained_total = %v", got)
	}
}

// While Redis is unreachable renewals fail, but leases are kept until their
// local deadline (last confirmed renewal + TTL - Skew), then lost as expired.
func TestUnreachableRedisExpiresAtDeadline(t *testing.T) {
	t.Parallel()
	r, c := rediscli.Start(t)
	clk := clock.NewFake(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	reg := prometheus.NewRegistry()
	opts := lease.Options{Clock: clk, Registerer: reg} // TTL 15 s, renew every 5 s, skew 1 s
	a := newManager(t, c, "node-a", opts)
	ctx := t.Context()
	t0 := clk.Now()
	l, err := a.Obtain(ctx, "m1")
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(14 * time.Second); !l.Deadline().Equal(want) {
		t.Fatalf("deadline %v, want %v", l.Deadline(), want)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ { // t0+5s, t0+10s
		st := advanceRound(t, a, clk, 5*time.Second)
		if st.LastErr == "" || isDone(l) {
			t.Fatalf("round %d with Redis down: stats %+v, done %v", i, st, isDone(l))
		}
	}
	if got := metricValue(t, reg, "emaillistener_lease_renew_failures_total", ""); got != 2 {
		t.Fatalf("renew failures %v, want 2", got)
	}
	clk.Advance(3*time.Second + 999*time.Millisecond) // t0+13.999s: not yet
	if isDone(l) {
		t.Fatalf("lost before the deadline: %v", l.Err())
	}
	clk.Advance(time.Millisecond) // t0+14s: the deadline timer fires
	waitFor(t, "lease expires at its deadline", func() bool { return isDone(l) })
	var lost *lease.LostError
	if !errors.As(l.Err(), &lost) || lost.Reason != lease.ReasonExpired {
		t.Fatalf("Err = %v", l.Err())
	}
	if got := metricValue(t, reg, "emaillistener_leases_lost_total", "expired"); got != 1 {
		t.Fatalf("leases_lost_total{expired} = %v", got)
	}
}

// Redis restarts empty: by default every lease is lost at the next renewal
// (ReasonMissing) and the holders obtain again, with fences still higher than
// before although the counters were lost too (time floor).
func TestRedisRestartLosesLeases(t *testing.T) {
	t.Parallel()
	r, c := rediscli.Start(t)
	clk := clock.NewFake(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	a := newManager(t, c, "node-a", lease.Options{Clock: clk})
	ctx := t.Context()
	const n = 50
	old := obtainN(t, a, n)
	if err := r.Restart(); err != nil {
		t.Fatal(err)
	}
	advanceRound(t, a, clk, lease.DefaultTTL/3)
	for _, l := range old {
		<-l.Done()
		var lost *lease.LostError
		if !errors.As(l.Err(), &lost) || lost.Reason != lease.ReasonMissing {
			t.Fatalf("%s: Err = %v", l.ID(), l.Err())
		}
	}
	// What the service does next: obtain again.
	for _, l := range old {
		nl, err := a.Obtain(ctx, l.ID())
		if err != nil {
			t.Fatal(err)
		}
		if nl.Fence() <= l.Fence() {
			t.Fatalf("%s: fence after restart %d <= %d", l.ID(), nl.Fence(), l.Fence())
		}
	}
}

// With RestoreMissing, leases survive a Redis restart: the first renewal
// re-creates them, unless another node obtained the mailbox in between.
func TestRedisRestartRestoresLeases(t *testing.T) {
	t.Parallel()
	r, c := rediscli.Start(t)
	clkA := clock.NewFake(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	reg := prometheus.NewRegistry()
	a := newManager(t, c, "node-a", lease.Options{Clock: clkA, RestoreMissing: true, Registerer: reg})
	b := newManager(t, c, "node-b", lease.Options{})
	ctx := t.Context()
	const n = 50
	old := obtainN(t, a, n)
	if err := r.Restart(); err != nil {
		t.Fatal(err)
	}
	// Before a renews, b obtains and releases mailbox 0: its fence counter now
	// proves a newer lease existed, so a must not restore that one.
	lb, err := b.Obtain(ctx, old[0].ID())
	if err != nil {
		t.Fatal(err)
	}
	if lb.Fence() <= old[0].Fence() {
		t.Fatalf("fence after restart %d <= %d", lb.Fence(), old[0].Fence())
	}
	if err := lb.Release(ctx); err != nil {
		t.Fatal(err)
	}
	advanceRound(t, a, clkA, lease.DefaultTTL/3)
	<-old[0].Done()
	if !errors.Is(old[0].Err(), lease.ErrLost) {
		t.Fatalf("mailbox 0: %v", old[0].Err())
	}
	for _, l := range old[1:] {
		if isDone(l) {
			t.Fatalf("%s lost: %v", l.ID(), l.Err())
		}
		v, err := c.Get(ctx, lease.LeaseKey(redisconf.DefaultPrefix, l.ID())).Result()
		if err != nil {
			t.Fatal(err)
		}
		if node, fence, _ := lease.ParseValue(v); node != "node-a" || fence != l.Fence() {
			t.Fatalf("%s restored as %q", l.ID(), v)
		}
		if _, err := b.Obtain(ctx, l.ID()); !errors.Is(err, lease.ErrHeld) {
			t.Fatalf("%s: b.Obtain after restore = %v", l.ID(), err)
		}
	}
	if got := metricValue(t, reg, "emaillistener_lease_restored_total", ""); got != n-1 {
		t.Fatalf("restored %v, want %d", got, n-1)
	}
	// Later obtains still issue higher fences than the restored ones.
	if err := old[1].Release(ctx); err != nil {
		t.Fatal(err)
	}
	l, err := b.Obtain(ctx, old[1].ID())
	if err != nil {
		t.Fatal(err)
	}
	if l.Fence() <= old[1].Fence() {
		t.Fatalf("fence %d <= restored %d", l.Fence(), old[1].Fence())
	}
}

// A process that restarts under the same node id takes its leases over at
// once, with a new fence; the old process (if it still ran) loses them.
func TestSameNodeTakesOver(t *testing.T) {
	t.Parallel()
	_, c := rediscli.Start(t)
	clkOld := clock.NewFake(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	old := newManager(t, c, "node-a", lease.Options{Clock: clkOld})
	fresh := newManager(t, c, "node-a", lease.Options{})
	ctx := t.Context()
	lo, err := old.Obtain(ctx, "m1")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := fresh.Obtain(ctx, "m1")
	if err != nil {
		t.Fatalf("same node id could not take over: %v", err)
	}
	if ln.Fence() <= lo.Fence() {
		t.Fatalf("fence %d <= %d", ln.Fence(), lo.Fence())
	}
	advanceRound(t, old, clkOld, lease.DefaultTTL/3)
	<-lo.Done()
	if !errors.Is(lo.Err(), lease.ErrLost) {
		t.Fatalf("old lease: %v", lo.Err())
	}
}

// One Manager holds a mailbox at most once; Obtain before Start and after Stop fails.
func TestObtainLocalRules(t *testing.T) {
	t.Parallel()
	_, c := rediscli.Start(t)
	ctx := t.Context()
	m, err := lease.New(c, "node-a", lease.Options{Panics: panics})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Obtain(ctx, "m1"); !errors.Is(err, lease.ErrNotRunning) {
		t.Fatalf("before Start: %v", err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	l, err := m.Obtain(ctx, "m1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Obtain(ctx, "m1"); !errors.Is(err, lease.ErrHeldLocally) {
		t.Fatalf("second Obtain: %v", err)
	}
	if _, err := m.Obtain(ctx, "bad{id}"); err == nil {
		t.Fatal("id with a hash tag accepted")
	}
	// Concurrent Obtains of one id: exactly one wins.
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, local := 0, 0
	for range 8 {
		wg.Go(func() {
			_, err := m.Obtain(ctx, "m1")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, lease.ErrHeldLocally):
				local++
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if wins != 1 || local != 7 {
		t.Fatalf("wins %d, ErrHeldLocally %d", wins, local)
	}
	stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := m.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	if err := m.Stop(stopCtx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := m.Obtain(ctx, "m2"); !errors.Is(err, lease.ErrNotRunning) {
		t.Fatalf("after Stop: %v", err)
	}
	if err := m.Start(ctx); err == nil {
		t.Fatal("Start after Stop succeeded")
	}
}

// Stop releases every lease in one pipeline (hand-off): peers obtain at once.
func TestStopReleasesAll(t *testing.T) {
	t.Parallel()
	_, c := rediscli.Start(t)
	ctx := t.Context()
	a, err := lease.New(c, "node-a", lease.Options{Panics: panics})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	b := newManager(t, c, "node-b", lease.Options{})
	held := obtainN(t, a, 20)
	stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := a.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	for _, l := range held {
		if !isDone(l) || !errors.Is(l.Err(), lease.ErrReleased) {
			t.Fatalf("%s after Stop: %v", l.ID(), l.Err())
		}
		if _, err := b.Obtain(ctx, l.ID()); err != nil {
			t.Fatalf("%s not handed over: %v", l.ID(), err)
		}
	}
}

func TestOptionsValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		node string
		opts lease.Options
		ok   bool
	}{
		{"defaults", "n", lease.Options{}, true},
		{"short", "n", short, true},
		{"no node", "", lease.Options{}, false},
		{"pipe in node", "a|b", lease.Options{}, false},
		{"renew too slow", "n", lease.Options{TTL: 3 * time.Second, RenewEvery: 1500 * time.Millisecond}, false},
		{"skew too large", "n", lease.Options{TTL: time.Second, Skew: 500 * time.Millisecond}, false},
		{"sub-millisecond TTL", "n", lease.Options{TTL: 1500 * time.Microsecond}, false},
	} {
		_, err := lease.New(fakeClient{}, tc.node, tc.opts)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v", tc.name, err)
		}
	}
	if _, err := lease.New(nil, "n", lease.Options{}); err == nil {
		t.Error("nil client accepted")
	}
}

func TestParseValue(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in    string
		node  string
		fence uint64
		ok    bool
	}{
		{"node-a|17", "node-a", 17, true},
		{"pod-0.svc|1712345678901", "pod-0.svc", 1712345678901, true},
		{"|1", "", 1, true},
		{"node-a", "", 0, false},
		{"node-a|x", "", 0, false},
		{"", "", 0, false},
	} {
		node, fence, ok := lease.ParseValue(tc.in)
		if node != tc.node || fence != tc.fence || ok != tc.ok {
			t.Errorf("ParseValue(%q) = %q, %d, %v", tc.in, node, fence, ok)
		}
	}
}

// obtainN obtains n leases concurrently and returns them in id order.
func obtainN(t *testing.T, m *lease.Manager, n int) []*lease.Lease {
	t.Helper()
	out := make([]*lease.Lease, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			l, err := m.Obtain(t.Context(), mail.MailboxID(fmt.Sprintf("mb-%05d", i)))
			if err != nil {
				t.Error(err)
				return
			}
			out[i] = l
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return out
}

// With HoldWhileUnreachable, a Redis outage longer than the TTL does not end
// leases: past the deadline they become unconfirmed and stay held. When Redis
// answers again each one is settled by the fence counter: restored when no
// other node obtained it meanwhile, lost when one did (and holds it, or held
// it and let go).
func TestHoldWhileUnreachable(t *testing.T) {
	t.Parallel()
	r, c := rediscli.Start(t)
	clk := clock.NewFake(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	reg := prometheus.NewRegistry()
	a := newManager(t, c, "node-a", lease.Options{Clock: clk, HoldWhileUnreachable: true, Registerer: reg})
	b := newManager(t, c, "node-b", lease.Options{})
	ctx := t.Context()
	held := obtainN(t, a, 3)
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	advanceRound(t, a, clk, 5*time.Second)
	advanceRound(t, a, clk, 5*time.Second)
	clk.Advance(4 * time.Second) // t0+14s: the local deadline
	waitFor(t, "leases unconfirmed", func() bool { return a.Stats().Unconfirmed == 3 })
	for i := 0; i < 3; i++ { // a minute of outage: still held
		advanceRound(t, a, clk, 20*time.Second)
	}
	for _, l := range held {
		if isDone(l) || l.Confirmed() {
			t.Fatalf("%s during the outage: done %v (%v), confirmed %v", l.ID(), isDone(l), l.Err(), l.Confirmed())
		}
	}
	if got := metricValue(t, reg, "emaillistener_leases_unconfirmed", ""); got != 3 {
		t.Fatalf("leases_unconfirmed = %v", got)
	}

	// Redis comes back (empty). Meanwhile b took mailbox 1 and held mailbox 2
	// for a moment.
	if err := r.Restart(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Obtain(ctx, held[1].ID()); err != nil {
		t.Fatal(err)
	}
	l2, err := b.Obtain(ctx, held[2].ID())
	if err != nil {
		t.Fatal(err)
	}
	if err := l2.Release(ctx); err != nil {
		t.Fatal(err)
	}
	st := advanceRound(t, a, clk, 20*time.Second)
	if st.Unconfirmed != 0 || st.Held != 1 {
		t.Fatalf("after Redis returned: %+v", st)
	}
	if isDone(held[0]) || !held[0].Confirmed() {
		t.Fatalf("mailbox 0 not restored: %v", held[0].Err())
	}
	var lost *lease.LostError
	if !errors.As(held[1].Err(), &lost) || lost.Reason != lease.ReasonTaken {
		t.Fatalf("mailbox 1: %v, want lost (taken)", held[1].Err())
	}
	if !errors.As(held[2].Err(), &lost) || lost.Reason != lease.ReasonMissing {
		t.Fatalf("mailbox 2: %v, want lost (missing)", held[2].Err())
	}
	if _, err := b.Obtain(ctx, held[0].ID()); !errors.Is(err, lease.ErrHeld) {
		t.Fatalf("b.Obtain of the restored lease = %v", err)
	}
	if got := metricValue(t, reg, "emaillistener_leases_unconfirmed", ""); got != 0 {
		t.Fatalf("leases_unconfirmed = %v", got)
	}
}
