// SPDX-License-Identifier: Apache-2.0

package lease_test

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/emaillistener/emaillistener/internal/clock"
	"github.com/emaillistener/emaillistener/internal/lease"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/redisconf"
	"github.com/emaillistener/emaillistener/internal/testenv"
	"github.com/emaillistener/emaillistener/internal/testenv/rediscli"
)

// A round renews every held lease with one pipeline, i.e. one round trip,
// whatever the number of leases.
func TestBatchRenewOneRoundTrip(t *testing.T) {
	t.Parallel()
	_, c := rediscli.Start(t)
	hook := &countingHook{}
	c.AddHook(hook)
	clk := clock.NewFake(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	a := newManager(t, c, "node-a", lease.Options{Clock: clk, TTL: time.Minute})
	ctx := t.Context()
	const n = 2000
	held := obtainN(t, a, n)

	// Shorten some keys' TTL in Redis, so the round's effect is visible.
	sample := []int{0, 1, n / 2, n - 1}
	for _, i := range sample {
		if err := c.PExpire(ctx, lease.LeaseKey(redisconf.DefaultPrefix, held[i].ID()), 5*time.Second).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// The first round also loads renew.lua into the script cache (EVALSHA,
	// NOSCRIPT, SCRIPT LOAD, EVALSHA again); measure the second.
	advanceRound(t, a, clk, 20*time.Second)
	hook.reset()
	before := held[0].Deadline()
	st := advanceRound(t, a, clk, 20*time.Second)
	if got := hook.pipelines.Load(); got != 1 {
		t.Fatalf("round used %d pipelines, want 1", got)
	}
	if got := hook.pipelinedCmds.Load(); got != n {
		t.Fatalf("round pipelined %d commands, want %d", got, n)
	}
	if got := hook.cmds.Load(); got != 0 {
		t.Fatalf("round sent %d single commands, want 0", got)
	}
	if st.LastRoundSize != n || st.Held != n || st.LastErr != "" {
		t.Fatalf("stats %+v", st)
	}
	for _, i := range sample {
		pttl, err := c.PTTL(ctx, lease.LeaseKey(redisconf.DefaultPrefix, held[i].ID())).Result()
		if err != nil {
			t.Fatal(err)
		}
		if pttl < 50*time.Second {
			t.Fatalf("lease %d: PTTL %v after the round, want ~1m", i, pttl)
		}
	}
	for _, l := range held {
		if !l.Deadline().After(before) || isDone(l) {
			t.Fatalf("%s: deadline %v (was %v), err %v", l.ID(), l.Deadline(), before, l.Err())
		}
	}
	t.Logf("renewal round of %d leases: %v in 1 pipeline", n, st.LastRound)

	// The script cache is lost with a restart or SCRIPT FLUSH: the round
	// reloads the script and resends, one extra round trip, and loses nothing.
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	hook.reset()
	st = advanceRound(t, a, clk, 20*time.Second)
	if st.LastErr != "" || st.Held != n {
		t.Fatalf("after SCRIPT FLUSH: %+v", st)
	}
	if got, cmds := hook.pipelines.Load(), hook.pipelinedCmds.Load(); got != 2 || cmds != 2*n {
		t.Fatalf("after SCRIPT FLUSH: %d pipelines of %d commands, want 2 (EVALSHA, then again after SCRIPT LOAD)", got, cmds)
	}
}

// BenchmarkRenewRound measures one renewal round over EL_BENCH_LEASES leases
// (default 10000): go test -run '^$' -bench RenewRound ./internal/lease/
func BenchmarkRenewRound(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("EL_BENCH_LEASES")); err == nil && v > 0 {
		n = v
	}
	r := testenv.NewRedisT(b, testenv.RedisOptions{})
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer c.Close()
	clk := clock.NewFake(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	m, err := lease.New(c, "node-a", lease.Options{Clock: clk, TTL: time.Hour, Panics: panics})
	if err != nil {
		b.Fatal(err)
	}
	if err := m.Start(b.Context()); err != nil {
		b.Fatal(err)
	}
	defer m.Stop(b.Context())
	for i := range n {
		if _, err := m.Obtain(b.Context(), leaseID(i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		before := m.Stats().Rounds
		clk.Advance(20 * time.Minute)
		for m.Stats().Rounds == before {
			time.Sleep(100 * time.Microsecond)
		}
		st := m.Stats()
		if st.LastErr != "" || st.Held != n {
			b.Fatalf("%+v", st)
		}
		total += st.LastRound
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms/round")
	b.ReportMetric(float64(n), "leases")
}

func leaseID(i int) mail.MailboxID { return mail.MailboxID(fmt.Sprintf("mb-%06d", i)) }

// metricValue reads a counter or gauge from reg; label is the value of its
// only label, or "" for an unlabelled metric.
func metricValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && (len(m.GetLabel()) != 1 || m.GetLabel()[0].GetValue() != label) {
				continue
			}
			return value(m)
		}
	}
	t.Fatalf("metric %s{%s} not found", name, label)
	return 0
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return 0
}

// fakeClient satisfies lease.Client for tests that do no I/O.
type fakeClient struct{ lease.Client }
