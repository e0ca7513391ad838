// SPDX-License-Identifier: Apache-2.0

package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/emaillistener/emaillistener/internal/clock"
	"github.com/emaillistener/emaillistener/internal/cluster"
	"github.com/emaillistener/emaillistener/internal/testenv/rediscli"
)

// slow beats rarely, so that only events can update the views within a test.
var slow = cluster.Options{TTL: 30 * time.Second, Beat: 10 * time.Second}

func withNode(o cluster.Options, id string) cluster.Options { o.NodeID = id; return o }

// Join and leave are seen by peers at once through "nodes" events.
func TestJoinLeaveThroughEvents(t *testing.T) {
	t.Parallel()
	_, c := rediscli.Start(t)
	ctx := t.Context()
	a := start(t, c, withNode(slow, "node-a"))
	if !viewIs(a, "node-a")() {
		t.Fatalf("after Start: %v", ids(a.View()))
	}
	if err := a.Ready(); err != nil {
		t.Fatal(err)
	}
	drain(a.Changes())

	bo := withNode(slow, "node-b")
	bo.Addr, bo.Capacity = "http://10.0.0.2:8080", 500
	b := start(t, c, bo)
	if !viewIs(b, "node-a", "node-b")() {
		t.Fatalf("b after Start: %v", ids(b.View()))
	}
	<-a.Changes() // the join event made a refresh
	if !viewIs(a, "node-a", "node-b")() {
		t.Fatalf("a after b joined: %v", ids(a.View()))
	}
	nb := a.View()[1]
	if nb.Addr != bo.Addr || nb.Capacity != 500 || nb.Started.IsZero() || nb.Updated.IsZero() || nb.Leaving {
		t.Fatalf("b as a sees it: %+v", nb)
	}

	// Leave: b stays a member but placement skips it.
	b.SetOwned(7)
	if err := b.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	<-a.Changes()
	view := a.View()
	if len(view) != 2 || !view[1].Leaving || view[1].Owned != 7 {
		t.Fatalf("a's view after b.Leave: %+v", view)
	}
	for _, id := range guids(100, 1) {
		if cluster.Owner(id, view) != "node-a" {
			t.Fatal("a leaving node still owns mailboxes")
		}
	}

	// Stop: b is gone from Redis and from a's view at once.
	stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := b.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	<-a.Changes()
	if !viewIs(a, "node-a")() {
		t.Fatalf("a after b left: %v", ids(a.View()))
	}
	members, err := a.Members(ctx)
	if err != nil || len(members) != 1 {
		t.Fatalf("Members = %v, %v", members, err)
	}
	if n, _ := c.Exists(ctx, "el:node:node-b").Result(); n != 0 {
		t.Fatal("b's heartbeat key survived Stop")
	}
	if _, err := c.ZScore(ctx, "el:nodes", "node-b").Result(); !errors.Is(err, redis.Nil) {
		t.Fatalf("b's registry entry survived Stop: %v", err)
	}
	if err := b.Stop(stopCtx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

// A node that stops beating (crash) drops out of its peers' views once its
// key expires, and its registry entry is pruned.
func TestCrashedNodeExpires(t *testing.T) {
	t.Parallel()
	_, c := rediscli.Start(t)
	ctx := t.Context()
	fast := cluster.Options{TTL: 300 * time.Millisecond, Beat: 100 * time.Millisecond}
	a := start(t, c, withNode(fast, "node-a"))
	// node-c beats once at Start; its simulated clock never advances, so it
	// never beats again: a crash, as far as Redis can tell.
	co := withNode(fast, "node-c")
	co.Clock = clock.NewFake(time.Now().Truncate(time.Millisecond))
	start(t, c, co)
	waitFor(t, "a sees c", viewIs(a, "node-a", "node-c"))
	drain(a.Changes())
	t0 := time.Now()
	waitFor(t, "c expires from a's view", viewIs(a, "node-a"))
	t.Logf("crashed node left the view %v after it was last seen", time.Since(t0).Round(time.Millisecond))
	select {
	case <-a.Changes():
	default:
		t.Fatal("no Changes kick for the expiry")
	}
	waitFor(t, "registry pruned", func() bool {
		n, err := c.ZCard(ctx, "el:nodes").Result()
		return err == nil && n == 1
	})
	if err := a.Ready(); err != nil {
		t.Fatal(err)
	}
}

// Members prunes registry entries without a key once they are older than the
// TTL, keeps younger ones (a join in flight), and ignores malformed records.
func TestMembersPrunesRegistry(t *testing.T) {
	t.Parallel()
	_, c := rediscli.Start(t)
	ctx := t.Context()
	a := start(t, c, withNode(slow, "node-a"))
	now := time.Now()
	c.ZAdd(ctx, "el:nodes",
		redis.Z{Score: float64(now.Add(-time.Hour).UnixMilli()), Member: "ghost-old"},
		redis.Z{Score: float64(now.UnixMilli()), Member: "ghost-new"},
		redis.Z{Score: float64(now.UnixMilli()), Member: "garbled"})
	c.Set(ctx, "el:node:garbled", "{not json", time.Minute)
	ms, err := a.Members(ctx)
	if err != nil || len(ms) != 1 || ms[0].ID != "node-a" {
		t.Fatalf("Members = %v, %v", ms, err)
	}
	got, _ := c.ZRange(ctx, "el:nodes", 0, -1).Result()
	if len(got) != 3 { // node-a, ghost-new, garbled
		t.Fatalf("registry after prune: %v", got)
	}
	// The stored record is the documented JSON.
	raw, _ := c.Get(ctx, "el:node:node-a").Bytes()
	var rec map[string]any
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "started", "capacity", "owned", "updated"} {
		if _, ok := rec[k]; !ok {
			t.Fatalf("record %s lacks %q", raw, k)
		}
	}
	if ttl, _ := c.PTTL(ctx, "el:node:node-a").Result(); ttl <= 0 || ttl > slow.TTL {
		t.Fatalf("heartbeat key TTL %v", ttl)
	}
}

// While Redis is down, beats fail but the node stays Ready until its last
// successful beat is a TTL old; the view is kept; all recovers with Redis.
func TestRedisOutageReadiness(t *testing.T) {
	t.Parallel()
	r, c := rediscli.Start(t)
	clk := clock.NewFake(time.Now().Truncate(time.Millisecond))
	reg := prometheus.NewRegistry()
	a := start(t, c, cluster.Options{NodeID: "node-a", Clock: clk, Registerer: reg}) // TTL 10 s, beat 3 s
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	beat := func(n float64) {
		t.Helper()
		clk.Advance(cluster.DefaultBeat)
		waitFor(t, "a failed beat", func() bool { return metricValue(t, reg, "emaillistener_cluster_heartbeat_failures_total") >= n })
	}
	beat(1) // t0+3
	beat(2) // t0+6
	beat(3) // t0+9
	if err := a.Ready(); err != nil {
		t.Fatalf("not ready 9 s after the last beat: %v", err)
	}
	clk.Advance(time.Second) // t0+10: a TTL since the last successful beat
	if err := a.Ready(); err == nil {
		t.Fatal("still ready a TTL after the last beat")
	} else {
		t.Logf("Ready: %v", err)
	}
	if !viewIs(a, "node-a")() {
		t.Fatalf("view lost during the outage: %v", ids(a.View()))
	}
	if err := r.Restart(); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Second) // t0+12: next beat
	waitFor(t, "ready again", func() bool { return a.Ready() == nil })
}

// A Redis restart (data lost) must not make peers look dead: no removal from
// any view, no Changes kick; subscribers are told to resync.
func TestRedisRestartKeepsView(t *testing.T) {
	t.Parallel()
	r, c := rediscli.Start(t)
	ctx := t.Context()
	o := cluster.Options{TTL: time.Second, Beat: 300 * time.Millisecond}
	a := start(t, c, withNode(o, "node-a"))
	b := start(t, c, withNode(o, "node-b"))
	waitFor(t, "a sees b", viewIs(a, "node-a", "node-b"))
	waitFor(t, "b sees a", viewIs(b, "node-a", "node-b"))
	subA := a.Subscribe(ctx)
	drain(a.Changes())
	drain(b.Changes())

	if err := r.Restart(); err != nil {
		t.Fatal(err)
	}
	// Watch both views until both nodes are back in Redis and a few more
	// beats have passed.
	deadline := time.Now().Add(10 * time.Second)
	var back time.Time
	for back.IsZero() || time.Since(back) < 4*o.Beat {
		if time.Now().After(deadline) {
			t.Fatal("nodes did not re-register after the restart")
		}
		for _, m := range []*cluster.Membership{a, b} {
			if !viewIs(m, "node-a", "node-b")() {
				t.Fatalf("%s's view lost a member across the restart: %v", m.ID(), ids(m.View()))
			}
		}
		if back.IsZero() {
			if n, _ := c.ZCard(ctx, "el:nodes").Result(); n == 2 {
				back = time.Now()
			}
		}
		time.Sleep(5 * time.Millisecond) // observation interval
	}
	for _, m := range []*cluster.Membership{a, b} {
		select {
		case <-m.Changes():
			t.Fatalf("%s: Changes kicked by the restart", m.ID())
		default:
		}
	}
	waitFor(t, "a's subscriber told to resync", func() bool { return recv(subA) == cluster.Resync })
	if err := b.Publish(ctx, "after-restart"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery after the restart", func() bool { return recv(subA) == "after-restart" })
}

func TestOptionsValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts cluster.Options
		ok   bool
	}{
		{"defaults", cluster.Options{NodeID: "n"}, true},
		{"no node id", cluster.Options{}, false},
		{"brace in id", cluster.Options{NodeID: "a{b}"}, false},
		{"space in id", cluster.Options{NodeID: "a b"}, false},
		{"beat too slow", cluster.Options{NodeID: "n", TTL: 4 * time.Second, Beat: 3 * time.Second}, false},
		{"tiny ttl", cluster.Options{NodeID: "n", TTL: time.Millisecond}, false},
	} {
		_, err := cluster.New(fakeClient{}, tc.opts)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v", tc.name, err)
		}
	}
	if _, err := cluster.New(nil, cluster.Options{NodeID: "n"}); err == nil {
		t.Error("nil client accepted")
	}
}

// fakeClient satisfies cluster.Client for tests that do no I/O.
type fakeClient struct{ cluster.Client }
