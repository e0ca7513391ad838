// SPDX-License-Identifier: Apache-2.0

package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emaillistener/emaillistener/internal/cluster"
	"github.com/emaillistener/emaillistener/internal/testenv/rediscli"
)

// recv returns the next message other than "nodes", or "" if none is ready
// within a short wait (the callers poll).
func recv(ch <-chan string) string {
	t := time.NewTimer(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case msg, ok := <-ch:
			if !ok {
				return "<closed>"
			}
			if msg != cluster.EventNodes {
				return msg
			}
		case <-t.C:
			return ""
		}
	}
}

// Published messages reach every node's subscribers, the publisher's too,
// in order.
func TestPublishSubscribe(t *testing.T) {
	t.Parallel()
	_, c := rediscli.Start(t)
	ctx := t.Context()
	a := start(t, c, withNode(slow, "node-a"))
	b := start(t, c, withNode(slow, "node-b"))
	subA, subB := a.Subscribe(ctx), b.Subscribe(ctx)
	for i := range 5 {
		if err := a.Publish(ctx, fmt.Sprintf("mailbox:%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for name, sub := range map[string]<-chan string{"a": subA, "b": subB} {
		for i := range 5 {
			var got string
			waitFor(t, "a message", func() bool { got = recv(sub); return got != "" })
			if want := fmt.Sprintf("mailbox:%d", i); got != want {
				t.Fatalf("%s got %q, want %q", name, got, want)
			}
		}
	}
	if err := a.Publish(ctx, cluster.Resync); err == nil {
		t.Fatal("publishing the reserved Resync succeeded")
	}

	// A subscription ends with its context; all end with Stop.
	sctx, cancel := context.WithCancel(ctx)
	sub := b.Subscribe(sctx)
	cancel()
	waitFor(t, "closed on cancel", func() bool { return recv(sub) == "<closed>" })
	stopCtx, stop := context.WithTimeout(ctx, 5*time.Second)
	defer stop()
	if err := b.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "closed on Stop", func() bool { return recv(subB) == "<closed>" })
	if recv(b.Subscribe(ctx)) != "<closed>" {
		t.Fatal("Subscribe after Stop returned an open channel")
	}
}

// A reader that falls behind loses messages but gets Resync, and receives
// normally again once it caught up.
func TestSlowSubscriberGetsResync(t *testing.T) {
	t.Parallel()
	_, c := rediscli.Start(t)
	ctx := t.Context()
	reg := prometheus.NewRegistry()
	o := withNode(slow, "node-a")
	o.SubscriberBuffer, o.Registerer = 4, reg
	a := start(t, c, o)
	// Subscribe after a's own join event arrived, so that it takes no slot.
	waitFor(t, "the join event", func() bool {
		return metricValue(t, reg, "emaillistener_cluster_events_received_total") >= 1
	})
	sub := a.Subscribe(ctx)
	base := metricValue(t, reg, "emaillistener_cluster_events_received_total")
	for i := range 10 {
		if err := a.Publish(ctx, fmt.Sprintf("m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "all 10 dispatched", func() bool {
		return metricValue(t, reg, "emaillistener_cluster_events_received_total") >= base+10
	})
	var got []string
	for msg := recv(sub); msg != ""; msg = recv(sub) {
		got = append(got, msg)
	}
	if want := "[m0 m1 m2 m3 resync]"; fmt.Sprint(got) != want {
		t.Fatalf("slow reader got %v, want %s", got, want)
	}
	if n := metricValue(t, reg, "emaillistener_cluster_events_dropped_total"); n != 6 {
		t.Fatalf("dropped %v, want 6", n)
	}
	if err := a.Publish(ctx, "fresh"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery after catching up", func() bool { return recv(sub) == "fresh" })
}
